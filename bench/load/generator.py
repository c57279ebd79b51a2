"""The ceiling generator: many simulated devices, several processes, one shared plan.

    python -m bench.load.generator --target 127.0.0.1:9443 --devices 400 --processes 2 \\
        --mode closed --duration 10 [--rate 5000] [--reconnect] [--session-cache] \\
        [--protocol grpc|http] [--json out.json]

Each worker process runs its own uvloop and owns a slice of the provisioned devices
(``bench.load.provision``); every device has its own key, certificate and mTLS channel
(``grpc.use_local_subchannel_pool``: no connection is shared between devices). Modes:

- ``closed``: saturation. Every device sends its next heartbeat as soon as the last one is
  answered; throughput is completions inside the measured window.
- ``open``: a target rate spread over the devices, fired on schedule whatever the answers
  (open loop, no coordinated omission: latency runs from the scheduled instant).
- ``agent``: what fleetd-agent does (agent/runner.py): Register, then heartbeat at the
  server's interval with the agent's jitter, back off with full jitter on errors
  (agent/backoff.py), keep the channel. Every success is time-stamped per device, for
  the reconnect storm.

``--reconnect`` opens a new channel (TCP + TLS handshake) per heartbeat, as devices behind
NAT do; ``--session-cache`` gives each device a grpc client TLS session cache
(``grpc.experimental.ssl_session_cache_lru``) so those reconnects may resume. ``--protocol
http`` posts the heartbeat as JSON over HTTPS with the same client certificates (aiohttp,
one connection per device), for the FastAPI baseline.

Workers connect and warm up first (one call per device), then all start at one wall-clock
instant given by the parent; each reports ok/error counts (errors by status code), every
latency, a per-second timeline and its own CPU time.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing
import os
import random
import resource
import ssl
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["grpc", "http"]
Mode = Literal["closed", "open", "agent"]


@dataclass(frozen=True)
class Plan:
    """What every worker does; the parent splits ``devices`` between workers."""

    target: str
    devices: int
    processes: int = 2
    mode: Mode = "closed"
    protocol: Protocol = "grpc"
    duration: float = 10.0
    rate: float = 0.0
    """Heartbeats/s over all workers (open mode)."""
    first_device: int = 0
    reconnect: bool = False
    stream: bool = False
    """Heartbeats on one HeartbeatStream per device instead of unary calls (grpc)."""
    session_cache: bool = False
    timeout: float = 10.0
    register: bool = False
    """Call Register once per device before the run (grpc)."""
    connect_rate: float = 0.0
    """Devices/s per worker while connecting (0: all at once)."""
    http_path: str = "/v1/heartbeat"
    cache_dir: str = ""
    ca_pem: bytes = b""
    status_reports: float = 0.0
    """Fraction of heartbeats followed by a ReportArtifactStatus (UNIMPLEMENTED tolerated)."""
    warm: bool = True
    """One call per device before the window (handshakes done, channels open); off for a
    large rotating population that reconnects per heartbeat anyway."""


@dataclass
class WorkerResult:
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: bytes = b""
    """array('d') of seconds, for calls inside the window."""
    timeline_ok: list[int] = field(default_factory=list)
    timeline_err: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0
    connect_seconds: float = 0.0
    connect_errors: dict[str, int] = field(default_factory=dict)
    successes: dict[str, bytes] = field(default_factory=dict)
    """agent mode: device id -> array('d') of wall times of successful heartbeats."""
    status_ok: int = 0
    status_errors: dict[str, int] = field(default_factory=dict)
    max_lag: float = 0.0
    """open mode: the furthest the generator fell behind its schedule (seconds)."""


@dataclass
class Result:
    """All workers' results merged."""

    plan: dict[str, Any]
    window: float
    ok: int
    errors: dict[str, int]
    latencies: list[float]
    timeline_ok: list[int]
    timeline_err: list[int]
    cpu_seconds: float
    connect_seconds: float
    connect_errors: dict[str, int]
    successes: dict[str, list[float]]
    status_ok: int
    status_errors: dict[str, int]
    start_wall: float
    max_lag: float

    @property
    def throughput(self) -> float:
        return self.ok / self.window

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds (q in 0..100)."""
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q / 100 * len(data)))] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "throughput": round(self.throughput, 1),
            "ok": self.ok,
            "errors": self.errors,
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2)
            if self.latencies
            else None,
            "generator_cpu_s": round(self.cpu_seconds, 2),
            "connect_s": round(self.connect_seconds, 2),
            "connect_errors": self.connect_errors,
            "status_ok": self.status_ok,
            "status_errors": self.status_errors,
            "generator_max_lag_ms": round(self.max_lag * 1000, 1),
        }


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------------------
# The worker process.
# ---------------------------------------------------------------------------

Call = Callable[[], Awaitable[None]]


def _code(exc: Any) -> str:
    """The status code's name; CANCELLED with its details, since it can come from either
    side (the client cancelling, or the server's handler being cancelled)."""
    name: str = exc.code().name
    if name == "CANCELLED":
        return f"CANCELLED ({(exc.details() or '')[:60]})"
    return name


class CallFailed(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _heartbeat_request() -> Any:
    from fleetd.device.v1 import agent_pb2

    return agent_pb2.HeartbeatRequest(
        desired_state_revision=0,
        agent_version="0.1.0",
        boot_id="2f0c7d1e-load",
        stats=agent_pb2.DeviceStats(
            cpu_percent=23.5,
            memory_percent=41.0,
            memory_used_mb=1600,
            memory_total_mb=3900,
            disk_percent=37.5,
            disk_used_gb=11.2,
            disk_total_gb=29.8,
            uptime_seconds=86_400,
            load_avg_1m=0.4,
            load_avg_5m=0.3,
            load_avg_15m=0.2,
            network_rx_bytes=123_456_789,
            network_tx_bytes=98_765_432,
        ),
    )


class GrpcDevice:
    """One device's credentials and (unless reconnecting) its channel."""

    def __init__(self, plan: Plan, device_id: str, key_pem: bytes, cert_pem: bytes) -> None:
        import grpc

        from fleetd.device.v1 import agent_pb2, agent_pb2_grpc

        self._grpc = grpc
        self._pb = agent_pb2
        self._stub_type = agent_pb2_grpc.AgentServiceStub
        self.plan = plan
        self.device_id = device_id
        self.creds = grpc.ssl_channel_credentials(
            root_certificates=plan.ca_pem, private_key=key_pem, certificate_chain=cert_pem
        )
        from agent.runner import CHANNEL_OPTIONS

        # The agent's own channel options (keepalive, grpc's reconnect backoff bounded so
        # the agent's jittered backoff paces retries), on a subchannel of its own.
        self.options: list[tuple[str, Any]] = [
            ("grpc.use_local_subchannel_pool", 1),
            *CHANNEL_OPTIONS,
        ]
        if plan.session_cache:
            from grpc.experimental import session_cache  # type: ignore[attr-defined]

            # grpc keys its client session cache by the TLS server name: with a bare IP
            # target no SNI is sent and nothing resumes, so name the server explicitly.
            cache = session_cache.ssl_session_cache_lru(1)
            self.options.append(("grpc.ssl_session_cache", cache))
            self.options.append(("grpc.ssl_target_name_override", "localhost"))
        self.channel: Any = None
        self.stub: Any = None
        self.call: Any = None
        self.stream_lock: asyncio.Lock | None = None
        self.request = _heartbeat_request()
        self.stream_request = agent_pb2.HeartbeatStreamRequest(heartbeat=self.request)
        self.sequence = 0
        self.interval = 30.0

    def open(self) -> None:
        self.channel = self._grpc.aio.secure_channel(self.plan.target, self.creds, self.options)
        self.stub = self._stub_type(self.channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
            self.call = None
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    async def _stream_beat(self) -> Any:
        """One heartbeat on the device's stream (opened on first use, reopened if the
        server ended it). A device's beats on its stream go one at a time: in open mode a
        beat scheduled while the previous one is in flight waits for it (and its latency,
        counted from the scheduled instant, shows the wait)."""
        if self.stream_lock is None:
            self.stream_lock = asyncio.Lock()
        async with self.stream_lock:
            return await self._stream_beat_locked()

    async def _stream_beat_locked(self) -> Any:
        for _ in range(2):
            if self.call is None:
                self.call = self.stub.HeartbeatStream()
            try:
                await self.call.write(self.stream_request)
                response = await asyncio.wait_for(self.call.read(), self.plan.timeout)
            except self._grpc.aio.AioRpcError as exc:
                self.call = None
                raise CallFailed(_code(exc)) from None
            except (asyncio.InvalidStateError, TimeoutError):
                self.call.cancel()
                self.call = None
                raise CallFailed("STREAM_BROKEN") from None
            if isinstance(response, self._pb.HeartbeatStreamResponse):
                return response.heartbeat
            self.call = None  # EOF: the server ended the stream; open a new one
        raise CallFailed("STREAM_ENDED")

    async def _unary(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=self.plan.timeout)
        except self._grpc.aio.AioRpcError as exc:
            raise CallFailed(_code(exc)) from None

    async def register(self) -> float:
        """Register; returns the server's heartbeat interval in seconds."""
        response = await self._unary(
            "Register",
            self._pb.RegisterRequest(
                device_type="raspberry-pi",
                agent_version="0.1.0",
                hardware=self._pb.HardwareProfile(model="load", arch="arm64", cpu_cores=4),
            ),
        )
        return float(response.heartbeat_interval.ToTimedelta().total_seconds())

    async def heartbeat(self) -> float:
        """One heartbeat; returns the server's next interval in seconds."""
        if self.plan.reconnect:
            self.open()
            try:
                response = await self._unary("Heartbeat", self.request)
            finally:
                await self.close()
        elif self.plan.stream:
            response = await self._stream_beat()
        else:
            response = await self._unary("Heartbeat", self.request)
        return float(response.next_heartbeat_interval.ToTimedelta().total_seconds())

    async def report_status(self) -> None:
        self.sequence += 1
        await self._unary(
            "ReportArtifactStatus",
            self._pb.ReportArtifactStatusRequest(
                assignment_id="load-assignment",
                state=self._pb.ARTIFACT_STATE_DOWNLOADING,
                sequence=self.sequence,
            ),
        )


class HttpDevice:
    """One device over HTTPS/JSON (aiohttp, one connection, its own client certificate)."""

    def __init__(self, plan: Plan, device_id: str, key_pem: bytes, cert_pem: bytes, tmp: Path):
        import orjson

        pem = tmp / f"{device_id}.pem"
        pem.write_bytes(key_pem + cert_pem)
        self.ctx = ssl.create_default_context(cadata=plan.ca_pem.decode())
        self.ctx.load_cert_chain(pem)
        self.plan = plan
        self.device_id = device_id
        host = plan.target.rsplit(":", 1)
        self.url = f"https://{host[0]}:{host[1]}{plan.http_path}"
        self.body = orjson.dumps(
            {
                "device_id": device_id,
                "desired_state_revision": 0,
                "agent_version": "0.1.0",
                "stats": {
                    "cpu_percent": 23.5,
                    "memory_percent": 41.0,
                    "disk_percent": 37.5,
                    "uptime_seconds": 86_400,
                },
            }
        )
        self.session: Any = None
        self.interval = 30.0

    def open(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(ssl=self.ctx, limit=1, force_close=self.plan.reconnect)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.plan.timeout)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def register(self) -> float:
        return await self.heartbeat()

    async def heartbeat(self) -> float:
        import aiohttp

        try:
            async with self.session.post(
                self.url, data=self.body, headers={"content-type": "application/json"}
            ) as reply:
                await reply.read()
                if reply.status != 200:
                    raise CallFailed(f"HTTP_{reply.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise CallFailed(type(exc).__name__) from None
        return 30.0

    async def report_status(self) -> None:
        return None


Device = GrpcDevice | HttpDevice


class Worker:
    def __init__(self, plan: Plan, devices: list[Device]) -> None:
        self.plan = plan
        self.devices = devices
        self.result = WorkerResult()
        self.latencies = array.array("d")
        self.errors: Counter[str] = Counter()
        self.status_errors: Counter[str] = Counter()
        self.successes: dict[str, array.array[float]] = {}
        self.t0 = 0.0  # loop time of the window start
        self.t_end = 0.0
        seconds = int(plan.duration) + 2
        self.timeline_ok = [0] * seconds
        self.timeline_err = [0] * seconds
        self.tasks: set[asyncio.Task[float | None]] = set()

    def _bucket(self, now: float) -> int:
        return min(max(int(now - self.t0), 0), len(self.timeline_ok) - 1)

    async def _one(
        self, device: Device, started: float, loop: asyncio.AbstractEventLoop
    ) -> float | None:
        """One heartbeat, recorded; the server's next interval, or None if it failed."""
        try:
            interval = await device.heartbeat()
        except CallFailed as exc:
            now = loop.time()
            if self.t0 <= started < self.t_end:
                self.errors[exc.code] += 1
                self.timeline_err[self._bucket(now)] += 1
            return None
        now = loop.time()
        # Closed loop counts completions inside the window (throughput); open and agent
        # loops count every call scheduled inside it, however late it completes.
        in_window = now <= self.t_end if self.plan.mode == "closed" else started < self.t_end
        if self.t0 <= started and in_window:
            self.latencies.append(now - started)
            self.result.ok += 1
            self.timeline_ok[self._bucket(now)] += 1
        if self.plan.status_reports and random.random() < self.plan.status_reports:
            try:
                await device.report_status()
                self.result.status_ok += 1
            except CallFailed as exc:
                self.status_errors[exc.code] += 1
        return interval

    async def connect(self) -> None:
        """Open every device's channel and make one call each (handshakes before the run)."""
        start = time.perf_counter()
        connect_errors: Counter[str] = Counter()

        async def warm(device: Device) -> None:
            if not self.plan.reconnect:
                device.open()
            if not self.plan.warm:
                return
            # A device that fails to connect retries (3 tries, backing off) so the run
            # starts with the whole fleet; the failures are reported as connect errors.
            for attempt in range(3):
                try:
                    if self.plan.register:
                        device.interval = await device.register()
                    else:
                        device.interval = await device.heartbeat()
                    return
                except CallFailed as exc:
                    connect_errors[exc.code] += 1
                    await asyncio.sleep(random.uniform(0, 2.0 * 2**attempt))

        if self.plan.connect_rate > 0:
            pending = []
            for i, device in enumerate(self.devices):
                pending.append(asyncio.ensure_future(warm(device)))
                if i % 50 == 49:
                    await asyncio.sleep(50 / self.plan.connect_rate)
            await asyncio.gather(*pending)
        else:
            await asyncio.gather(*(warm(d) for d in self.devices))
        self.result.connect_seconds = time.perf_counter() - start
        self.result.connect_errors = dict(connect_errors)

    async def run(self, start_wall: float) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + (start_wall - time.time())
        self.t_end = self.t0 + self.plan.duration
        await asyncio.sleep(max(0.0, self.t0 - loop.time()))
        if self.plan.mode == "closed":
            await asyncio.gather(*(self._closed(d, loop) for d in self.devices))
        elif self.plan.mode == "open":
            await self._open(loop)
        else:
            await asyncio.gather(*(self._agent(d, loop) for d in self.devices))

    async def _closed(self, device: Device, loop: asyncio.AbstractEventLoop) -> None:
        while (started := loop.time()) < self.t_end:
            if await self._one(device, started, loop) is None:
                await asyncio.sleep(0.05)  # an error answers fast: do not spin on it

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        rate = self.plan.rate / self.plan.processes
        step = 1.0 / rate
        scheduled = self.t0
        n = len(self.devices)
        i = random.randrange(n)
        while scheduled < self.t_end:
            now = loop.time()
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
                now = loop.time()
            self.result.max_lag = max(self.result.max_lag, now - scheduled)
            while scheduled <= now and scheduled < self.t_end:
                task = asyncio.ensure_future(self._one(self.devices[i % n], scheduled, loop))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                i += 1
                scheduled += step
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.plan.timeout + 1)

    async def _agent(self, device: Device, loop: asyncio.AbstractEventLoop) -> None:
        from agent.backoff import Backoff, jittered

        successes = self.successes.setdefault(device.device_id, array.array("d"))
        backoff = Backoff()
        # Connected devices are spread over their first interval, as a running fleet is.
        await asyncio.sleep(random.uniform(0, device.interval))
        while (started := loop.time()) < self.t_end:
            interval = await self._one(device, started, loop)
            if interval is not None:
                successes.append(time.time())
                backoff.reset()
                await asyncio.sleep(jittered(interval, 0.05))
            else:
                await asyncio.sleep(jittered(backoff.next_delay(), 0.05))

    def finish(self) -> WorkerResult:
        r = self.result
        r.errors = dict(self.errors)
        r.status_errors = dict(self.status_errors)
        r.latencies = self.latencies.tobytes()
        r.timeline_ok = self.timeline_ok
        r.timeline_err = self.timeline_err
        r.successes = {k: v.tobytes() for k, v in self.successes.items()}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        r.cpu_seconds = usage.ru_utime + usage.ru_stime
        return r


def _worker_main(plan: Plan, start: int, count: int, pipe: Connection) -> None:
    import uvloop

    from bench.load.provision import read_devices

    raise_fd_limit()
    creds = read_devices(Path(plan.cache_dir), start, count)

    async def main() -> WorkerResult:
        with tempfile.TemporaryDirectory(prefix="fleetd-load-") as tmp:
            devices: list[Device] = [
                GrpcDevice(plan, c.device_id, c.key_pem, c.cert_pem)
                if plan.protocol == "grpc"
                else HttpDevice(plan, c.device_id, c.key_pem, c.cert_pem, Path(tmp))
                for c in creds
            ]
            worker = Worker(plan, devices)
            await worker.connect()
            pipe.send(("ready", worker.result.connect_seconds))
            start_wall = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
            await worker.run(float(start_wall))
            result = worker.finish()
            await asyncio.gather(*(d.close() for d in devices), return_exceptions=True)
            return result

    pipe.send(("done", uvloop.run(main())))
    pipe.close()


def run(plan: Plan, *, on_start: Callable[[float], None] | None = None) -> Result:
    """Run ``plan`` in ``plan.processes`` worker processes; merge and return their results.

    ``on_start`` is called (in this process, in a thread) with the window's wall-clock
    start once every worker is connected, e.g. to restart the server mid-run.
    """
    ctx = multiprocessing.get_context("spawn")
    per = [plan.devices // plan.processes] * plan.processes
    for i in range(plan.devices % plan.processes):
        per[i] += 1
    pipes: list[Connection] = []
    procs = []
    offset = plan.first_device
    for count in per:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(plan, offset, count, child), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
        offset += count
    connect = [pipe.recv()[1] for pipe in pipes]
    start_wall = time.time() + 0.5
    for pipe in pipes:
        pipe.send(start_wall)
    if on_start is not None:
        import threading

        threading.Thread(target=on_start, args=(start_wall,), daemon=True).start()
    results: list[WorkerResult] = []
    for pipe in pipes:
        kind, payload = pipe.recv()
        assert kind == "done"
        results.append(payload)
    for proc in procs:
        proc.join(10)
    return _merge(plan, results, max(connect), start_wall)


def _merge(plan: Plan, results: list[WorkerResult], connect: float, start_wall: float) -> Result:
    errors: Counter[str] = Counter()
    connect_errors: Counter[str] = Counter()
    status_errors: Counter[str] = Counter()
    latencies: list[float] = []
    successes: dict[str, list[float]] = {}
    seconds = len(results[0].timeline_ok)
    timeline_ok = [0] * seconds
    timeline_err = [0] * seconds
    for r in results:
        errors.update(r.errors)
        connect_errors.update(r.connect_errors)
        status_errors.update(r.status_errors)
        lat = array.array("d")
        lat.frombytes(r.latencies)
        latencies.extend(lat)
        for i in range(seconds):
            timeline_ok[i] += r.timeline_ok[i]
            timeline_err[i] += r.timeline_err[i]
        for device, raw in r.successes.items():
            times = array.array("d")
            times.frombytes(raw)
            successes[device] = list(times)
    plan_dict = asdict(plan)
    plan_dict.pop("ca_pem")
    return Result(
        plan=plan_dict,
        window=plan.duration,
        ok=sum(r.ok for r in results),
        errors=dict(errors),
        latencies=latencies,
        timeline_ok=timeline_ok,
        timeline_err=timeline_err,
        cpu_seconds=sum(r.cpu_seconds for r in results),
        connect_seconds=connect,
        connect_errors=dict(connect_errors),
        successes=successes,
        status_ok=sum(r.status_ok for r in results),
        status_errors=dict(status_errors),
        start_wall=start_wall,
        max_lag=max(r.max_lag for r in results),
    )


def main() -> None:
    from bench.load.provision import Population

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the gateway")
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--first-device", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--mode", choices=["closed", "open", "agent"], default="closed")
    parser.add_argument("--stream", action="store_true", help="heartbeats on HeartbeatStream")
    parser.add_argument("--protocol", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=0.0, help="heartbeats/s (open mode)")
    parser.add_argument("--reconnect", action="store_true", help="a new channel per heartbeat")
    parser.add_argument("--session-cache", action="store_true", help="TLS session resumption")
    parser.add_argument("--register", action="store_true", help="Register each device first")
    parser.add_argument(
        "--no-warm", action="store_true", help="skip the one call per device before the run"
    )
    parser.add_argument("--status-reports", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()
    if args.mode == "open" and args.rate <= 0:
        parser.error("--mode open needs --rate")
    population = Population()
    population.ensure(args.first_device + args.devices)
    plan = Plan(
        target=args.target,
        devices=args.devices,
        first_device=args.first_device,
        processes=args.processes,
        mode=args.mode,
        protocol=args.protocol,
        duration=args.duration,
        rate=args.rate,
        reconnect=args.reconnect,
        stream=args.stream,
        session_cache=args.session_cache,
        register=args.register,
        warm=not args.no_warm,
        status_reports=args.status_reports,
        cache_dir=str(population.cache),
        ca_pem=population.ca_pem,
    )
    result = run(plan)
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"plan": result.plan, **summary}, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
