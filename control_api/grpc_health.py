"""``grpc.health.v1.Health`` on connectrpc, reusing grpcio-health-checking's messages.

No connectrpc health package exists, and generating health.proto ourselves would clash
with grpcio's copy in the descriptor pool, so the ASGI application is written here the
way protoc-gen-connectrpc writes one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_health.v1.health_pb2 import (
    HealthCheckRequest,
    HealthCheckResponse,
    HealthListRequest,
    HealthListResponse,
)

from control_api.request_codecs import CODECS

SERVING = HealthCheckResponse.SERVING
NOT_SERVING = HealthCheckResponse.NOT_SERVING
DESCRIPTOR = health_pb2.DESCRIPTOR
SERVICE = "grpc.health.v1.Health"
WATCH_POLL_SECONDS = 1.0


class HealthService:
    """Serving status per service name ("" is the whole server)."""

    def __init__(self, services: list[str]) -> None:
        self._status: dict[str, int] = dict.fromkeys(["", *services], SERVING)

    def set_all(self, status: int) -> None:
        for name in self._status:
            self._status[name] = status

    async def check(
        self,
        request: HealthCheckRequest,
        ctx: RequestContext[HealthCheckRequest, HealthCheckResponse],
    ) -> HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            raise ConnectError(Code.NOT_FOUND, f"unknown service {request.service!r}")
        return HealthCheckResponse(status=status)

    async def list(
        self, request: HealthListRequest, ctx: RequestContext[HealthListRequest, HealthListResponse]
    ) -> HealthListResponse:
        response = HealthListResponse()
        for name, status in self._status.items():
            response.statuses[name].status = status
        return response

    async def watch(
        self,
        request: HealthCheckRequest,
        ctx: RequestContext[HealthCheckRequest, HealthCheckResponse],
    ) -> AsyncIterator[HealthCheckResponse]:
        last: int | None = None
        while True:
            current = self._status.get(request.service, HealthCheckResponse.SERVICE_UNKNOWN)
            if current != last:
                yield HealthCheckResponse(status=current)
                last = current
            await asyncio.sleep(WATCH_POLL_SECONDS)


def _method(
    name: str, stream: StreamType, req: type[Message], res: type[Message]
) -> MethodInfo[Any, Any]:
    return MethodInfo(
        name=name,
        service_name=SERVICE,
        input=req,
        output=res,
        idempotency_level=IdempotencyLevel.UNKNOWN,
        stream_type=stream,
    )


class HealthASGIApplication(ConnectASGIApplication[HealthService]):
    def __init__(self, service: HealthService) -> None:
        super().__init__(
            service=service,
            endpoints=lambda svc: {
                f"/{SERVICE}/Check": Endpoint.unary(
                    method=_method(
                        "Check", StreamType.UNARY, HealthCheckRequest, HealthCheckResponse
                    ),
                    function=svc.check,
                ),
                f"/{SERVICE}/List": Endpoint.unary(
                    method=_method("List", StreamType.UNARY, HealthListRequest, HealthListResponse),
                    function=svc.list,
                ),
                f"/{SERVICE}/Watch": Endpoint.server_stream(
                    method=_method(
                        "Watch", StreamType.SERVER_STREAM, HealthCheckRequest, HealthCheckResponse
                    ),
                    function=svc.watch,
                ),
            },
            codecs=CODECS,
        )

    @property
    def path(self) -> str:
        return f"/{SERVICE}"
