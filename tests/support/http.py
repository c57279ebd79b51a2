"""A plain HTTPS client for Connect JSON calls, as curl would make them (stdlib only)."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def _post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    ca_pem: bytes,
    client_cert: tuple[Path, Path] | None,
) -> Response:
    raw = _post_raw(url, body, headers, ca_pem, client_cert)
    return Response(raw.status, raw.headers, json.loads(raw.body) if raw.body else {})


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _post_raw(
    url: str,
    body: bytes,
    headers: dict[str, str],
    ca_pem: bytes,
    client_cert: tuple[Path, Path] | None = None,
) -> RawResponse:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if client_cert is not None:
        context.load_cert_chain(certfile=client_cert[0], keyfile=client_cert[1])
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            return RawResponse(reply.status, dict(reply.headers.items()), reply.read())
    except urllib.error.HTTPError as err:
        return RawResponse(err.code, dict(err.headers.items()), err.read())


async def raw_post(url: str, body: bytes, headers: dict[str, str], ca_pem: bytes) -> RawResponse:
    """POST bytes over HTTPS/1.1 (e.g. a gRPC-Web frame) and return the raw reply."""
    return await asyncio.to_thread(_post_raw, url, body, headers, ca_pem)


async def connect_json(
    endpoint: str,
    method: str,
    payload: dict[str, Any],
    *,
    ca_pem: bytes,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    client_cert: tuple[Path, Path] | None = None,
) -> Response:
    """POST a Connect JSON unary call, e.g. method="fleetd.v1.DeviceService/ListDevices"."""
    all_headers = {"content-type": "application/json", **(headers or {})}
    if api_key is not None:
        all_headers["x-api-key"] = api_key
    body = json.dumps(payload).encode()
    return await asyncio.to_thread(
        _post, f"{endpoint}/{method}", body, all_headers, ca_pem, client_cert
    )
