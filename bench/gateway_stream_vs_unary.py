"""Unary heartbeats against one long-lived stream per device: the server's cost per beat.

    python -m bench.gateway_stream_vs_unary [--devices 200] [--beats 20000]

Issue 4 asks to measure before offering a streaming heartbeat. One grpc.aio server (uvloop,
mutual TLS with the fleet's certificates, in its own process so that its CPU time can be
read) serves the real ``HeartbeatRequest``/``HeartbeatResponse`` messages two ways, with
the same trivial handler work: a unary method, and a bidirectional stream per device. The
client process drives ``--devices`` devices, each on its own mTLS channel, closed loop,
``--beats`` heartbeats per mode, modes alternating over several rounds. The figure is the
server's CPU time per heartbeat (user + system, from ``getrusage`` in the server process)
and the throughput, each mode against the other.

Both modes run over channels kept open: the per-heartbeat reconnect of NAT'd devices (the
headline scenario) costs a TLS handshake per beat that a stream cannot save. Before
timing it asserts that every heartbeat got its response in both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc

from agent.credentials import generate_key_and_csr
from bench.harness import Report
from fleetd.device.v1 import agent_pb2
from fleetd.services.pki import cert_pem, init_pki
from fleetd.settings import Paths

SERVICE = "bench.HeartbeatModes"
ROUNDS = 3


def _response() -> bytes:
    response = agent_pb2.HeartbeatResponse(unchanged=True)
    response.next_heartbeat_interval.FromSeconds(30)
    response.server_time.GetCurrentTime()
    return response.SerializeToString()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(paths_root: str, port_out: Connection) -> None:
    import uvloop

    paths = Paths(Path(paths_root))

    async def unary(request: agent_pb2.HeartbeatRequest, context: Any) -> bytes:
        del request, context
        return _response()

    async def stream(requests: AsyncIterator[agent_pb2.HeartbeatRequest], context: Any) -> Any:
        del context
        async for _ in requests:
            yield _response()

    async def cpu(request: bytes, context: Any) -> bytes:
        del request, context
        return repr(_cpu_seconds()).encode()

    async def main() -> None:
        server = grpc.aio.server()
        decode = agent_pb2.HeartbeatRequest.FromString
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(unary, decode, None),
                "Stream": grpc.stream_stream_rpc_method_handler(stream, decode, None),
                "Cpu": grpc.unary_unary_rpc_method_handler(cpu, None, None),
            },
        )
        server.add_generic_rpc_handlers((handler,))
        credentials = grpc.ssl_server_credentials(
            [(paths.server_key.read_bytes(), paths.server_cert.read_bytes())],
            root_certificates=paths.ca_cert.read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        port_out.send(port)
        await server.wait_for_termination()

    uvloop.run(main())


class Devices:
    def __init__(self, paths: Paths, count: int, port: int) -> None:
        from fleetd.services.pki import CertificateAuthority

        ca = CertificateAuthority.load(paths, "default")
        self.channels: list[grpc.aio.Channel] = []
        for n in range(count):
            key, csr = generate_key_and_csr(f"dev-{n:05d}")
            cert = cert_pem(ca.sign_device_csr(csr, f"dev-{n:05d}"))
            credentials = grpc.ssl_channel_credentials(
                root_certificates=paths.ca_cert.read_bytes(),
                private_key=key,
                certificate_chain=cert,
            )
            self.channels.append(grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials))
        decode = agent_pb2.HeartbeatResponse.FromString
        encode = agent_pb2.HeartbeatRequest.SerializeToString
        self.unary = [
            c.unary_unary(
                f"/{SERVICE}/Unary", request_serializer=encode, response_deserializer=decode
            )
            for c in self.channels
        ]
        self.stream = [
            c.stream_stream(
                f"/{SERVICE}/Stream", request_serializer=encode, response_deserializer=decode
            )
            for c in self.channels
        ]
        self.cpu = self.channels[0].unary_unary(f"/{SERVICE}/Cpu", None, None)

    async def server_cpu(self) -> float:
        return float(await self.cpu(b"", timeout=10))


def _request() -> agent_pb2.HeartbeatRequest:
    return agent_pb2.HeartbeatRequest(
        desired_state_revision=3,
        stats=agent_pb2.DeviceStats(cpu_percent=12.5, memory_percent=40.0, disk_percent=10.0),
        agent_version="0.3.1",
        boot_id="8c1f6a0e-2f0b-4c57-9d0c-3e4b5a6f7081",
    )


async def run_unary(devices: Devices, beats: int) -> int:
    per_device = beats // len(devices.unary)
    request = _request()

    async def one(call: Any) -> int:
        for _ in range(per_device):
            response = await call(request, timeout=30)
            assert response.unchanged
        return per_device

    return sum(await asyncio.gather(*(one(c) for c in devices.unary)))


async def run_stream(devices: Devices, beats: int) -> int:
    per_device = beats // len(devices.stream)
    request = _request()

    async def one(method: Any) -> int:
        call = method(timeout=60)
        for _ in range(per_device):
            await call.write(request)
            response = await call.read()
            assert response.unchanged
        await call.done_writing()
        return per_device

    return sum(await asyncio.gather(*(one(m) for m in devices.stream)))


async def measure(devices: Devices, beats: int) -> dict[str, list[tuple[float, float]]]:
    """Per mode and round: (server CPU µs per beat, beats per second)."""
    results: dict[str, list[tuple[float, float]]] = {"unary": [], "stream": []}
    await run_unary(devices, len(devices.unary) * 10)  # warm up both paths
    await run_stream(devices, len(devices.stream) * 10)
    for _ in range(ROUNDS):
        for mode, runner in (("unary", run_unary), ("stream", run_stream)):
            cpu0, start = await devices.server_cpu(), time.perf_counter()
            done = await runner(devices, beats)
            elapsed, cpu1 = time.perf_counter() - start, await devices.server_cpu()
            results[mode].append(((cpu1 - cpu0) / done * 1e6, done / elapsed))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--beats", type=int, default=20_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleetd-bench-stream-"))
    paths = Paths(root)
    paths.pki.mkdir(parents=True)
    init_pki(paths, "default", ("localhost", "127.0.0.1"))
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    server = ctx.Process(target=_serve, args=(str(root), send), daemon=True)
    server.start()
    port = receive.recv()
    try:
        import uvloop

        async def go() -> dict[str, list[tuple[float, float]]]:
            devices = Devices(paths, args.devices, port)
            return await measure(devices, args.beats)

        results = uvloop.run(go())
    finally:
        server.terminate()
        server.join()
    unary_cpu = statistics.median(r[0] for r in results["unary"])
    stream_cpu = statistics.median(r[0] for r in results["stream"])
    unary_rate = statistics.median(r[1] for r in results["unary"])
    stream_rate = statistics.median(r[1] for r in results["stream"])
    ratio = unary_cpu / stream_cpu
    report = Report(
        "gateway_stream_vs_unary",
        f"python -m bench.gateway_stream_vs_unary --devices {args.devices} --beats {args.beats}",
    )
    report.add(
        "server CPU per heartbeat, unary / stream",
        f"unary {unary_cpu:.0f} µs, stream {stream_cpu:.0f} µs: x{ratio:.2f}; "
        f"{unary_rate:.0f} vs {stream_rate:.0f} beats/s (client-bound, same process)",
        "measure first (decision in docs/design.md)",
        True,
        unary_cpu_us=unary_cpu,
        stream_cpu_us=stream_cpu,
        cpu_ratio=ratio,
        unary_beats_per_s=unary_rate,
        stream_beats_per_s=stream_rate,
        devices=args.devices,
    )
    report.write()


if __name__ == "__main__":
    main()
