"""GetDeviceHealth (placeholder until it lands: UNIMPLEMENTED)."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from fleetd.v1 import analytics_pb2


async def get_device_health(
    request: analytics_pb2.GetDeviceHealthRequest,
) -> analytics_pb2.GetDeviceHealthResponse:
    raise ConnectError(Code.UNIMPLEMENTED, "GetDeviceHealth is not implemented yet")
