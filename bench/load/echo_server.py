"""The bare baseline: grpc.aio on uvloop serving AgentService.Heartbeat (and
HeartbeatStream) with no work.

    python -m bench.load.echo_server --port 9450 --data-dir build/bench-load/data

Same server options, same mTLS credentials (the bench CA, client certificates required)
and the same response shape as the gateway (next interval + server time), but no
identity parsing, no standing lookup, no batcher, no storage: what grpc.aio itself costs.
With ``--report-session-reuse`` it answers whether the TLS session was resumed in the
trailing metadata ``x-session-reused`` (to check the generator's session cache).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import uvloop
from google.protobuf import duration_pb2, timestamp_pb2

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.settings import Paths


class EchoAgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, report_session_reuse: bool) -> None:
        self._report = report_session_reuse
        self._interval = duration_pb2.Duration(seconds=30)

    async def Register(
        self, request: agent_pb2.RegisterRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.RegisterResponse:
        return agent_pb2.RegisterResponse(device_id="echo", heartbeat_interval=self._interval)

    async def Heartbeat(
        self, request: agent_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.HeartbeatResponse:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        if self._report:
            reused = next(iter(context.auth_context().get("ssl_session_reused", [b"false"])))
            context.set_trailing_metadata((("x-session-reused", reused.decode()),))
        return agent_pb2.HeartbeatResponse(
            unchanged=True, next_heartbeat_interval=self._interval, server_time=now
        )

    async def HeartbeatStream(
        self,
        request_iterator: AsyncIterator[agent_pb2.HeartbeatStreamRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        async for _ in request_iterator:
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            await context.write(
                agent_pb2.HeartbeatStreamResponse(
                    heartbeat=agent_pb2.HeartbeatResponse(
                        unchanged=True, next_heartbeat_interval=self._interval, server_time=now
                    )
                )
            )


async def serve(port: int, paths: Paths, report_session_reuse: bool) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
    )
    agent_pb2_grpc.add_AgentServiceServicer_to_server(
        EchoAgentService(report_session_reuse), server
    )
    creds = grpc.ssl_server_credentials(
        [(paths.server_key.read_bytes(), paths.server_cert.read_bytes())],
        root_certificates=paths.ca_cert.read_bytes(),
        require_client_auth=True,
    )
    server.add_secure_port(f"127.0.0.1:{port}", creds)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--report-session-reuse", action="store_true")
    args = parser.parse_args()
    uvloop.run(serve(args.port, Paths(args.data_dir), args.report_session_reuse))


if __name__ == "__main__":
    main()
