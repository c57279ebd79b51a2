"""The seed's HTTP statuses on Connect JSON errors, around a real connectrpc application."""

from __future__ import annotations

import json
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from control_api.asgi import Message
from control_api.status_codes import SeedStatusCodes
from fleetd.v1 import device_pb2
from fleetd.v1.device_connect import DeviceService, DeviceServiceASGIApplication


class Refusing(DeviceService):
    def __init__(self, code: Code) -> None:
        self.code = code

    async def get_device(self, request: device_pb2.GetDeviceRequest, ctx: Any) -> Any:
        raise ConnectError(self.code, "refused")


async def _status(code: Code) -> tuple[int, dict[str, Any]]:
    app = SeedStatusCodes(DeviceServiceASGIApplication(Refusing(code)))
    body = json.dumps({"device_id": "x"}).encode()
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/fleetd.v1.DeviceService/GetDevice",
        "raw_path": b"/fleetd.v1.DeviceService/GetDevice",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "server": ("127.0.0.1", 443),
        "client": ("127.0.0.1", 5000),
    }
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(payload)


async def test_failed_precondition_answers_412_with_the_connect_body() -> None:
    status, body = await _status(Code.FAILED_PRECONDITION)
    assert status == 412
    assert body["code"] == "failed_precondition"


async def test_other_errors_keep_connects_status() -> None:
    assert (await _status(Code.INVALID_ARGUMENT))[0] == 400
    assert (await _status(Code.NOT_FOUND))[0] == 404
