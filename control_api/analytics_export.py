"""ExportData: queue an export job and answer at once with its signed download URL.

docs/analytics.md, section 5. The request is checked by the domain's rules
(``fleetd.domain.analytics.exports.checked_request``: format and data type required,
fields known, a time range except for DEVICE_INVENTORY); the job is inserted ``queued``
for the caller (RESOURCE_EXHAUSTED beyond ten waiting); the audit log already has the
call (AuditStart) and gets the export id as its target. The answer carries the URL
(``https://<host>/exports/<id>?expires=<unix>&sig=<HMAC>``, the host being the one the
caller reached — its ``:authority`` / ``Host`` — so the URL works from where the caller is,
behind a proxy too; ``Settings.api_endpoint`` when it is missing or malformed),
``size_bytes`` 0 (the file does not exist yet) and ``expires_at``. Any control API
replica's export worker (``fleetd.services.analytics.export_jobs``) produces the file;
``control_api/exports_http.py`` serves it to whoever holds the URL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf.timestamp_pb2 import Timestamp

from control_api.asgi import current_scope
from control_api.auth import audit_target, current_principal
from control_api.errors import invalid
from control_api.resources import resources
from fleetd.domain.analytics.exports import (
    ExportSpec,
    InvalidExport,
    checked_request,
    export_url,
)
from fleetd.storage.analytics.exports import TooManyExports, insert_job
from fleetd.storage.server_secrets import shared_secret
from fleetd.storage.types import Pool
from fleetd.v1 import analytics_pb2

EXPORT_URL_SECRET = "export_urls"  # noqa: S105 - the name of a secret, not one
"""The ``server_secrets`` row that keys every replica's export URL signatures."""

_url_keys: dict[asyncio.AbstractEventLoop, tuple[Pool, bytes]] = {}


async def url_key(pool: Pool) -> bytes:
    """The export URL signing key, read once per event loop (and pool)."""
    loop = asyncio.get_running_loop()
    cached = _url_keys.get(loop)
    if cached is not None and cached[0] is pool:
        return cached[1]
    key = await shared_secret(pool, EXPORT_URL_SECRET)
    _url_keys[loop] = (pool, key)
    return key


def _enum_name(
    enum: type[analytics_pb2.ExportFormat] | type[analytics_pb2.DataType], value: int
) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return ""


def _instant(request: analytics_pb2.ExportDataRequest, name: str) -> dt.datetime | None:
    if not request.HasField(name):
        return None
    stamp: Timestamp = getattr(request, name)
    return stamp.ToDatetime(tzinfo=dt.UTC)


def spec_of(request: analytics_pb2.ExportDataRequest) -> ExportSpec:
    """The request as an export spec; INVALID_ARGUMENT naming the field otherwise."""
    try:
        return checked_request(
            format=_enum_name(analytics_pb2.ExportFormat, request.format),
            data_type=_enum_name(analytics_pb2.DataType, request.data_type),
            fields=list(request.fields),
            start=_instant(request, "start_time"),
            end=_instant(request, "end_time"),
        )
    except InvalidExport as refused:
        raise invalid(str(refused)) from None


_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")


def _public_endpoint(configured: str) -> str:
    """``https://`` + the host the caller reached us by, else the configured endpoint."""
    scope = current_scope.get(None)
    headers = dict(scope.get("headers", ())) if scope is not None else {}
    host = (headers.get(b":authority") or headers.get(b"host") or b"").decode("latin-1")
    return f"https://{host}" if _HOST.match(host) else configured


async def export_data(request: analytics_pb2.ExportDataRequest) -> analytics_pb2.ExportDataResponse:
    spec = spec_of(request)
    res = resources()
    principal = current_principal()
    caller = f"{principal.kind}:{principal.id}"
    try:
        async with res.pool.acquire() as conn:
            job = await insert_job(conn, principal=caller, spec=spec, ttl=res.settings.export_ttl)
    except TooManyExports as refused:
        raise ConnectError(Code.RESOURCE_EXHAUSTED, str(refused)) from None
    audit_target(str(job.export_id))
    expires = int(job.expires_at.timestamp())
    url = export_url(
        _public_endpoint(res.settings.api_endpoint),
        await url_key(res.pool),
        str(job.export_id),
        expires,
    )
    expires_at = Timestamp()
    expires_at.FromDatetime(job.expires_at)
    return analytics_pb2.ExportDataResponse(export_url=url, size_bytes=0, expires_at=expires_at)
