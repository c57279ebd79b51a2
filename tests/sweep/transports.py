"""Sending one raw request body over each transport, and what came back.

Each call is bounded: an answer that takes longer than :data:`HANG_SECONDS` is reported as
``hang``. Answers are normalised to Connect's code names (``invalid_argument``...), so one
rule judges every transport.

Streams get one message and a half-close. A server stream that neither answers nor ends
within :data:`STREAM_QUIET_SECONDS` is ``open``: the server accepted the request and
waits for something to send (StreamEvents with nothing to report), which is no failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import struct
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import grpc
from google.protobuf.descriptor import MethodDescriptor
from pyqwest import Client

HANG_SECONDS: Final = 5.0
STREAM_QUIET_SECONDS: Final = 0.5

FORBIDDEN: Final = frozenset({"internal", "unknown", "unavailable", "hang", "no_answer"})
"""Answers no malformed request may get: the server failed, not the request."""

LEAK: Final = re.compile(
    r"Traceback|\b[A-Z][A-Za-z0-9]*(?:Error|Exception)\b|asyncpg|psycopg|\bredis\b"
    r"|File \"|<[a-zA-Z_.]+ object at 0x|maximum recursion depth|object is not iterable"
    r"|object is not subscriptable|has no attribute|unhashable type|positional argument"
    r"|returned a result with an exception set"
)
"""Python internals in an error message: an exception's class or the text of a built-in
exception (a TypeError's, a RecursionError's) reached the user."""
SQL: Final = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT INTO\b|\bUPDATE\b.*\bSET\b|\bDELETE FROM\b"
    r"|syntax error at or near|invalid byte sequence for encoding|violates \w+ constraint"
    r"|invalid input syntax for type|value too long for type|out of range for type"
    r"|\brelation \"|\bcolumn \"|null character not permitted",
    re.DOTALL,
)
"""PostgreSQL in an error message: storage was the first to notice the bad input."""


class Kind(Enum):
    UNARY = "unary"
    CLIENT_STREAM = "client-stream"
    SERVER_STREAM = "server-stream"
    BIDI = "bidi"

    @staticmethod
    def of(method: MethodDescriptor) -> Kind:
        client, server = method.client_streaming, method.server_streaming
        if client and server:
            return Kind.BIDI
        if client:
            return Kind.CLIENT_STREAM
        return Kind.SERVER_STREAM if server else Kind.UNARY


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server answered: a Connect code name (or ``open``, ``hang``,
    ``no_answer``), its message and how long it took."""

    code: str
    message: str
    seconds: float

    def problems(self) -> list[str]:
        """Why this answer is a failure (empty when it is not)."""
        found: list[str] = []
        if self.code in FORBIDDEN:
            found.append(self.code)
        elif self.seconds > HANG_SECONDS:
            found.append(f"slow ({self.seconds:.1f} s)")
        if self.code not in ("ok", "open"):
            if LEAK.search(self.message):
                found.append("leaks Python internals")
            if SQL.search(self.message):
                found.append("leaks SQL")
        return found


# ---------------------------------------------------------------------------------------
# Connect (JSON over HTTP/1.1 or HTTP/2, as the server negotiates)
# ---------------------------------------------------------------------------------------

HTTP_CODES: Final = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    429: "unavailable",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}
"""The Connect protocol's code for an HTTP error without a Connect error body."""


def _connect_error(status: int, body: bytes) -> tuple[str, str]:
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return parsed["code"], str(parsed.get("message", ""))
    text = body[:300].decode("utf-8", "replace")
    return HTTP_CODES.get(status, "unknown"), f"HTTP {status} without a Connect error: {text!r}"


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


async def connect_call(
    client: Client,
    url: str,
    kind: Kind,
    body: bytes,
    headers: dict[str, str],
) -> Answer:
    """POST ``body`` to ``url`` as Connect JSON: plain for unary methods, in one envelope
    (``application/connect+json``) for streaming ones."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(HANG_SECONDS):
            if kind is Kind.UNARY:
                code, message = await _connect_unary(client, url, body, headers)
            else:
                code, message = await _connect_stream(client, url, kind, body, headers)
    except TimeoutError:
        code, message = "hang", f"no answer within {HANG_SECONDS} s"
    except Exception as exc:
        code, message = "no_answer", f"{type(exc).__name__}: {exc}"
    return Answer(code, message, time.monotonic() - start)


async def _connect_unary(
    client: Client, url: str, body: bytes, headers: dict[str, str]
) -> tuple[str, str]:
    all_headers = {"content-type": "application/json", **headers}
    response = await client.post(url, all_headers, content=body)
    if response.status == 200:
        return "ok", ""
    return _connect_error(response.status, response.content)


async def _connect_stream(
    client: Client, url: str, kind: Kind, body: bytes, headers: dict[str, str]
) -> tuple[str, str]:
    all_headers = {
        "content-type": "application/connect+json",
        "connect-protocol-version": "1",
        **headers,
    }
    # A server stream with nothing to send yet sends no headers either (connectrpc under
    # pyvoy): a quiet stream is "open" from the start. A client stream must answer.
    quiet = STREAM_QUIET_SECONDS if kind is not Kind.CLIENT_STREAM else HANG_SECONDS
    async with contextlib.AsyncExitStack() as stack:
        try:
            async with asyncio.timeout(quiet):
                response = await stack.enter_async_context(
                    client.stream("POST", url, all_headers, content=envelope(body))
                )
        except TimeoutError:
            if kind is Kind.CLIENT_STREAM:
                raise
            return "open", ""
        if response.status != 200:
            content = b"".join([bytes(chunk) async for chunk in response.content])
            return _connect_error(response.status, content)
        chunks = aiter(response.content)
        buffered = b""
        while True:
            try:
                async with asyncio.timeout(quiet):
                    chunk = await anext(chunks, None)
            except TimeoutError:
                if kind is Kind.CLIENT_STREAM:
                    raise
                return "open", ""
            if chunk is None:
                return "internal", "the stream ended without an end-of-stream message"
            buffered += bytes(chunk)
            while len(buffered) >= 5:
                flags, size = struct.unpack(">BI", buffered[:5])
                if len(buffered) < 5 + size:
                    break
                payload, buffered = buffered[5 : 5 + size], buffered[5 + size :]
                if flags & 0x02:
                    end: Any = json.loads(payload or b"{}")
                    error = end.get("error") if isinstance(end, dict) else None
                    if not error:
                        return "ok", ""
                    return str(error.get("code", "unknown")), str(error.get("message", ""))


# ---------------------------------------------------------------------------------------
# gRPC (grpcio, raw bytes: no serializer, so any body can be sent)
# ---------------------------------------------------------------------------------------


async def grpc_call(
    channel: grpc.aio.Channel,
    path: str,
    kind: Kind,
    body: bytes,
    metadata: tuple[tuple[str, str], ...] = (),
) -> Answer:
    """Send ``body`` as the (first and only) request message of ``path``."""
    start = time.monotonic()
    call: Any = None
    try:
        async with asyncio.timeout(HANG_SECONDS):
            if kind is Kind.UNARY:
                await channel.unary_unary(path, None, None)(body, metadata=metadata)
                code, message = "ok", ""
            elif kind is Kind.CLIENT_STREAM:
                await channel.stream_unary(path, None, None)(_one(body), metadata=metadata)
                code, message = "ok", ""
            else:
                if kind is Kind.SERVER_STREAM:
                    call = channel.unary_stream(path, None, None)(body, metadata=metadata)
                else:
                    call = channel.stream_stream(path, None, None)(
                        _one_async(body), metadata=metadata
                    )
                code, message = await _grpc_stream(call)
    except grpc.aio.AioRpcError as err:
        code, message = err.code().name.lower(), err.details() or ""
    except TimeoutError:
        code, message = "hang", f"no answer within {HANG_SECONDS} s"
    finally:
        if call is not None:
            call.cancel()
    return Answer(code, message, time.monotonic() - start)


def _one(body: bytes) -> Iterator[bytes]:
    yield body


async def _one_async(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _grpc_stream(call: Any) -> tuple[str, str]:
    while True:
        try:
            async with asyncio.timeout(STREAM_QUIET_SECONDS):
                message = await call.read()
        except TimeoutError:
            return "open", ""
        if message is grpc.aio.EOF:  # type: ignore[attr-defined]
            status = await call.code()
            return status.name.lower(), await call.details() or ""
