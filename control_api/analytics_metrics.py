"""GetMetrics (placeholder until it lands: UNIMPLEMENTED)."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from fleetd.v1 import analytics_pb2


async def get_metrics(request: analytics_pb2.GetMetricsRequest) -> analytics_pb2.GetMetricsResponse:
    raise ConnectError(Code.UNIMPLEMENTED, "GetMetrics is not implemented yet")
