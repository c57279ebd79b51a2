"""A plain HTTPS client for Connect JSON calls, as curl would make them (stdlib only)."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def _post(url: str, body: bytes, headers: dict[str, str], ca_pem: bytes) -> Response:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            return Response(reply.status, dict(reply.headers.items()), json.loads(reply.read()))
    except urllib.error.HTTPError as err:
        raw = err.read()
        return Response(err.code, dict(err.headers.items()), json.loads(raw) if raw else {})


async def connect_json(
    endpoint: str,
    method: str,
    payload: dict[str, Any],
    *,
    ca_pem: bytes,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """POST a Connect JSON unary call, e.g. method="fleetd.v1.DeviceService/ListDevices"."""
    all_headers = {"content-type": "application/json", **(headers or {})}
    if api_key is not None:
        all_headers["x-api-key"] = api_key
    body = json.dumps(payload).encode()
    return await asyncio.to_thread(_post, f"{endpoint}/{method}", body, all_headers, ca_pem)
