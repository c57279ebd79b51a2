"""Export downloads: ``GET`` / ``HEAD /exports/<export_id>?expires=<unix>&sig=<sig>``.

The signed URL that ExportData answered (``control_api/analytics_export.py``) is the
capability: no API key is asked, so the URL can be handed to a browser or curl. It is
checked before anything is looked up (docs/analytics.md, section 5):

- a missing or wrong signature: 403; a valid one past ``expires``, or an expired job: 410;
- queued or running: 202 with ``Retry-After: 5``, ``X-Export-State`` and a JSON status;
- failed: 500 with the job's error;
- ready: 200 with ``Content-Length``, ``ETag`` (the file's SHA-256, quoted),
  ``Accept-Ranges: bytes`` and ``Last-Modified``. One ``Range`` (``bytes=a-b``, ``a-``,
  ``-n``) gives 206 with ``Content-Range``; several ranges give the whole file (200, as
  RFC 9110 allows); an unsatisfiable one 416 with ``Content-Range: bytes */<size>``; a
  malformed one is ignored. ``If-Range`` (the ETag, or the Last-Modified date) that no
  longer matches gives the whole file.

The file is streamed in 64 kB chunks read in a worker thread. Errors are JSON
``{"code": ..., "message": ...}``, as ``fleetd.export_download`` reads them.

Mounted by ``control_api/app.py`` under :data:`PREFIX` (``Router`` prefixes).
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs

from connectrpc.errors import ConnectError

from control_api.analytics_export import url_key
from control_api.asgi import Receive, Scope, Send
from control_api.resources import resources
from fleetd.domain.analytics.exports import CONTENT_TYPE, FILE_SUFFIX, signature_holds
from fleetd.services.analytics.export_jobs import export_files
from fleetd.storage.analytics.exports import ExportFiles, ExportJob, get_job, read_file
from fleetd.storage.errors import is_store_down
from fleetd.storage.types import Pool

log = logging.getLogger(__name__)

PREFIX = "/exports/"
CHUNK = 64 * 1024
RETRY_AFTER_SECONDS = 5
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``first`` to ``last`` inclusive, as Content-Range counts."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


class Unsatisfiable(Exception):
    """A Range none of whose bytes exist: 416."""


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range ``header`` asks of a ``size``-byte file; None for the whole
    file (no header, several ranges, another unit, or a malformed header: ignored).

    Raises:
        Unsatisfiable: the range starts at or beyond the end (or is ``-0``).
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE.match(spec)
    if match is None or match[1] == match[2] == "":
        return None
    first_text, last_text = match[1], match[2]
    if first_text == "":  # "-n": the last n bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(first_text)
    if last_text != "" and int(last_text) < first:
        return None  # invalid: ignored
    if first >= size:
        raise Unsatisfiable
    last = size - 1 if last_text == "" else min(int(last_text), size - 1)
    return ByteRange(first, last)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _http_date(instant: float) -> str:
    return email.utils.formatdate(instant, usegmt=True)


async def _send(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    head: bool = False,
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _json(
    send: Send,
    status: int,
    payload: dict[str, object],
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    body = (json.dumps(payload) + "\n").encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    await _send(send, status, headers + (extra or []), body, head=head)


async def _refuse(send: Send, status: int, code: str, message: str, head: bool) -> None:
    await _json(send, status, {"code": code, "message": message}, head=head)


class ExportDownloads:
    """The ASGI app mounted at ``/exports/``.

    ``pool`` and ``files`` default to this event loop's resources (the deployment's pool
    and export directory); tests pass their own.
    """

    def __init__(self, pool: Pool | None = None, files: ExportFiles | None = None) -> None:
        self._pool = pool
        self._files = files

    def _stores(self) -> tuple[Pool, ExportFiles]:
        if self._pool is not None and self._files is not None:
            return self._pool, self._files
        res = resources()
        return self._pool or res.pool, self._files or export_files(res.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await _send(send, 405, [(b"allow", b"GET, HEAD")], b"GET or HEAD only\n")
            return
        try:
            pool, files = self._stores()
        except ConnectError:  # resources not open yet (start-up, shutdown)
            await _refuse(send, 503, "unavailable", "starting or stopping; retry shortly", head)
            return
        try:
            await self._answer(scope, send, pool, files, head)
        except Exception as exc:
            if not is_store_down(exc):
                log.exception("export download %s failed", str(scope.get("path"))[:200])
                await _refuse(send, 500, "internal", "internal error", head)
                return
            log.warning("export download: store unavailable: %r", exc)
            await _refuse(send, 503, "unavailable", "storage unavailable; retry shortly", head)

    async def _answer(
        self, scope: Scope, send: Send, pool: Pool, files: ExportFiles, head: bool
    ) -> None:
        path: str = scope["path"]
        try:
            export_id = uuid.UUID(path[len(PREFIX) :])
        except ValueError:
            await _refuse(send, 404, "not_found", "no such export", head)
            return
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        expires_text = query.get("expires", [""])[0]
        signature = query.get("sig", [""])[0]
        if not expires_text.isdigit() or not signature_holds(
            await url_key(pool), str(export_id), int(expires_text), signature
        ):
            await _refuse(
                send, 403, "permission_denied", "the export URL's signature is not valid", head
            )
            return
        if time.time() >= int(expires_text):
            await _refuse(send, 410, "expired", "the export URL has expired", head)
            return
        job = await get_job(pool, export_id)
        if job is None or job.state == "expired":
            await _refuse(send, 410, "expired", "the export has expired", head)
            return
        if job.state == "failed":
            await _refuse(send, 500, "failed", job.error or "the export failed", head)
            return
        if job.state != "ready":
            await _pending(send, job, head)
            return
        await _file(scope, send, files, job, head)


async def _pending(send: Send, job: ExportJob, head: bool) -> None:
    status = {"export_id": str(job.export_id), "state": job.state, "attempts": job.attempts}
    extra = [
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        (b"x-export-state", job.state.encode()),
    ]
    await _json(send, 202, status, extra, head=head)


async def _file(scope: Scope, send: Send, files: ExportFiles, job: ExportJob, head: bool) -> None:
    assert job.sha256 is not None and job.finished_at is not None
    fmt = str(job.request.get("format", "CSV"))
    path = files.path(job.export_id, job.sha256, fmt)
    size = job.size_bytes
    etag = f'"{job.sha256}"'
    last_modified = _http_date(job.finished_at.timestamp())
    headers = [
        (b"content-type", CONTENT_TYPE[fmt].encode()),
        (b"etag", etag.encode()),
        (b"last-modified", last_modified.encode()),
        (b"accept-ranges", b"bytes"),
        (b"cache-control", b"private, no-transform"),
        (
            b"content-disposition",
            f'attachment; filename="export-{job.export_id}.{FILE_SUFFIX[fmt]}"'.encode(),
        ),
    ]
    request_headers = scope.get("headers", ())
    range_header = _header(request_headers, b"range")
    if_range = _header(request_headers, b"if-range")
    if if_range is not None and if_range.strip() not in (etag, last_modified):
        range_header = None  # the file changed since the client's copy: send it whole
    try:
        wanted = requested_range(range_header, size)
    except Unsatisfiable:
        await _send(send, 416, [*headers, (b"content-range", f"bytes */{size}".encode())])
        return
    first, length, status = 0, size, 200
    if wanted is not None:
        first, length, status = wanted.first, wanted.length, 206
        headers.append((b"content-range", f"bytes {wanted.first}-{wanted.last}/{size}".encode()))
    headers.append((b"content-length", str(length).encode()))
    chunks = read_file(path, first, length, CHUNK)
    if not head:
        try:  # open before answering: a file gone (expired meanwhile) is still a clean 410
            first_chunk = await anext(chunks, b"")
        except FileNotFoundError:
            await _refuse(send, 410, "expired", "the export file is gone", head)
            return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if not head:
        if first_chunk:
            await send({"type": "http.response.body", "body": first_chunk, "more_body": True})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
