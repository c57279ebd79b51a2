"""HTTP statuses the seed documents where Connect's mapping differs.

The seed lists FAILED_PRECONDITION as HTTP 412; Connect maps it to 400. Connect clients
read the code from the JSON error body, so changing the status line keeps every client
working while curl users see the seed's status. Only Connect unary JSON errors are touched
(gRPC and gRPC-Web always answer HTTP 200 with the status in trailers).
"""

from __future__ import annotations

import orjson

from control_api.asgi import ASGIApp, Message, Receive, Scope, Send

# Connect error code -> the seed's HTTP status, where they differ.
SEED_STATUS = {"failed_precondition": 412}


class SeedStatusCodes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message.get("status") == 400:
                held = message  # decide once the (single, unary) error body is known
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                if not message.get("more_body", False):
                    code = _error_code(message.get("body", b""))
                    if code in SEED_STATUS:
                        start = dict(start)
                        start["status"] = SEED_STATUS[code]
                await send(start)
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _error_code(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None
