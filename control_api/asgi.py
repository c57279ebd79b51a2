"""Typed ASGI aliases and the path router that composes the control API into one app.

The router matches exact paths first, then the longest prefix; it runs lifespan hooks
itself (pyvoy runs lifespan once per event loop it creates, so hooks must be per-loop
safe) and exposes the current ASGI scope to handlers through a ContextVar, because
connectrpc's RequestContext does not carry the scope or its TLS extension.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]

current_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar("current_scope")


async def send_text(send: Send, status: int, body: str, content_type: str = "text/plain") -> None:
    data = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", f"{content_type}; charset=utf-8".encode()),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


SERVED_VERSIONS = ("fleetd.v1",)


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


async def rpc_error(scope: Scope, send: Send, code: int, name: str, message: str) -> None:
    """An RPC error in the caller's protocol: gRPC (trailers-only) or Connect JSON."""
    content_type = _header(scope, b"content-type")
    if content_type.startswith(b"application/grpc"):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.split(b";")[0]),
                    (b"grpc-status", str(code).encode()),
                    (b"grpc-message", quote(message).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return
    status = {12: 501, 5: 404}.get(code, 400)
    body = json.dumps({"code": name, "message": message})
    await send_text(send, status, body, "application/json")


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    path = scope.get("path", "")
    package, _, rest = path.lstrip("/").partition("/")
    if rest and package.startswith("fleetd.") and package.count(".") >= 2:
        version = ".".join(package.split(".")[:2])
        if version not in SERVED_VERSIONS:
            served = ", ".join(SERVED_VERSIONS)
            await rpc_error(
                scope,
                send,
                12,
                "unimplemented",
                f"API version {version} is not served; this server serves {served}",
            )
            return
        await rpc_error(scope, send, 12, "unimplemented", f"unknown method {path}")
        return
    await send_text(send, 404, "not found\n")


class Router:
    """Exact paths, then the longest matching prefix, else 404; plus lifespan hooks."""

    def __init__(
        self,
        exact: dict[str, ASGIApp],
        prefixes: dict[str, ASGIApp],
        *,
        startup: list[Hook] | None = None,
        shutdown: list[Hook] | None = None,
    ) -> None:
        self.exact = exact
        self.prefixes = sorted(prefixes.items(), key=lambda kv: -len(kv[0]))
        self.startup = startup or []
        self.shutdown = shutdown or []

    def route(self, path: str) -> ASGIApp:
        app = self.exact.get(path)
        if app is not None:
            return app
        for prefix, candidate in self.prefixes:
            if path.startswith(prefix):
                return candidate
        return not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        token = current_scope.set(scope)
        try:
            await self.route(scope["path"])(scope, receive, send)
        finally:
            current_scope.reset(token)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.startup:
                        await hook()
                except Exception as exc:  # report any start-up failure to the server
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return
