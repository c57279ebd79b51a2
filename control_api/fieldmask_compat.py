"""Accept the seed's ``"update_mask": {"paths": [...]}`` in Connect JSON requests.

Protobuf's JSON mapping spells a FieldMask as one string (``"name,metadata.location"``);
the seed's examples use the object form, which grpcurl accepts but protobuf JSON parsers
refuse. This middleware rewrites the object form to the string form (paths in the
lowerCamelCase that form requires) in Connect unary JSON
requests (top-level ``update_mask``/``updateMask`` only) before connectrpc parses them, so
the seed's JSON works with curl as written. Other requests pass through untouched.
``MASKED_METHODS`` lists the methods concerned.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from control_api.asgi import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 4 * 1024 * 1024
# Methods whose request carries a top-level FieldMask.
MASKED_METHODS = frozenset({"/fleetd.v1.DeviceService/UpdateDevice"})
_MASK_KEYS = ("update_mask", "updateMask")


def _camel(path: str) -> str:
    """FieldMask JSON spells paths in lowerCamelCase (the parser turns them back)."""
    return ".".join(_SNAKE.sub(lambda m: m[1].upper(), part) for part in path.split("."))


_SNAKE = re.compile(r"_([a-z0-9])")


def _rewrite(body: bytes) -> bytes | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    changed = False
    for key in _MASK_KEYS:
        mask: Any = data.get(key)
        if (
            isinstance(mask, dict)
            and set(mask) == {"paths"}
            and isinstance(mask["paths"], list)
            and all(isinstance(p, str) and "," not in p for p in mask["paths"])
        ):
            data[key] = ",".join(_camel(path) for path in mask["paths"])
            changed = True
    return orjson.dumps(data) if changed else None


def _is_connect_json(scope: Scope) -> bool:
    if scope["type"] != "http" or scope.get("method") != "POST":
        return False
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bool(value.split(b";")[0].strip() == b"application/json")
    return False


class FieldMaskCompat:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") not in MASKED_METHODS or not _is_connect_json(scope):
            await self.app(scope, receive, send)
            return
        await self.app(scope, _rewriting(receive), send)


def _rewriting(receive: Receive) -> Receive:
    """A receive() whose first call gathers the whole body (up to MAX_BODY) and returns it
    rewritten as one message; later calls go straight to the server's receive()."""
    done = False

    async def wrapped() -> Message:
        nonlocal done
        if done:
            return await receive()
        done = True
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if size > MAX_BODY or not more:  # too big: hand over as is, connectrpc refuses it
                break
        body = b"".join(chunks)
        if not more:
            body = _rewrite(body) or body
        return {"type": "http.request", "body": body, "more_body": more}

    return wrapped
