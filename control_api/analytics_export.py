"""ExportData (placeholder until it lands: UNIMPLEMENTED)."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from fleetd.v1 import analytics_pb2


async def export_data(request: analytics_pb2.ExportDataRequest) -> analytics_pb2.ExportDataResponse:
    raise ConnectError(Code.UNIMPLEMENTED, "ExportData is not implemented yet")
