"""The agent's life: enrol once, then register and heartbeat until told to stop.

Errors never crash the loop: every failed call waits a jittered exponential backoff
(no reconnect storms after a gateway restart) and tries again. The gateway sets the
heartbeat interval; the agent adds its own jitter on top.

Beside the heartbeat loop run three tasks that never delay it: the converge loop
(agent.converge, fed each new desired state), the outbox sender (agent.outbox, status
reports until acknowledged) and the log uploader (agent.logs, fed each log request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import grpc

from agent import sysstats
from agent.backoff import Backoff, jittered
from agent.config import AGENT_VERSION, AgentConfig
from agent.containers import ContainerRuntime, resolve_runtime
from agent.converge import Converger
from agent.credentials import CredentialStore, Enrollment
from agent.logs import LogSources, LogUploader, running_unit
from agent.outbox import Outbox, OutboxSender
from agent.renewal import CHECK_EVERY, Renewal, renewal_due
from agent.state import StateStore
from agent.targets import TargetFetcher
from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.v1 import device_pb2, device_pb2_grpc

log = logging.getLogger("fleetd.agent")

RPC_TIMEOUT = 15.0
RECONNECT_GRACE = 5.0
"""Seconds calls on the old channel get after a certificate renewal."""

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    # grpc's own reconnect backoff (default up to 120 s) would add to the agent's: keep it
    # short and let the agent's jittered backoff pace retries after a gateway restart.
    ("grpc.initial_reconnect_backoff_ms", 1_000),
    ("grpc.max_reconnect_backoff_ms", 10_000),
]


class Offboarded(Exception):
    """The server says this device was offboarded."""


class _StreamStalled(Exception):
    """No answer on the heartbeat stream for longer than an interval and a timeout."""


def _raise_if_offboarded(exc: grpc.aio.AioRpcError) -> None:
    """The gateway tells an offboarded device once; afterwards it refuses it with
    PERMISSION_DENIED "device was offboarded", which means the same."""
    if exc.code() == grpc.StatusCode.PERMISSION_DENIED and "offboarded" in (exc.details() or ""):
        raise Offboarded from None


class EnrolmentFailed(Exception):
    """Enrolment was refused for a reason retrying will not fix."""


def _system_info(hw: sysstats.Hardware) -> device_pb2.SystemInfo:
    return device_pb2.SystemInfo(
        os=hw.os,
        arch=hw.arch,
        cpu_cores=hw.cpu_cores,
        memory_mb=hw.memory_mb,
        hostname=hw.hostname,
        os_version=hw.os_version,
        kernel=hw.kernel,
        model=hw.model,
        disk_gb=hw.disk_gb,
    )


def _hardware_profile(hw: sysstats.Hardware) -> agent_pb2.HardwareProfile:
    return agent_pb2.HardwareProfile(
        model=hw.model,
        arch=hw.arch,
        cpu_cores=hw.cpu_cores,
        memory_mb=hw.memory_mb,
        disk_gb=hw.disk_gb,
        os=hw.os,
        os_version=hw.os_version,
        kernel=hw.kernel,
        hostname=hw.hostname,
    )


def _stats(s: sysstats.Stats) -> agent_pb2.DeviceStats:
    return agent_pb2.DeviceStats(
        cpu_percent=s.cpu_percent,
        memory_percent=s.memory_percent,
        memory_used_mb=s.memory_used_mb,
        memory_total_mb=s.memory_total_mb,
        disk_percent=s.disk_percent,
        disk_used_gb=s.disk_used_gb,
        disk_total_gb=s.disk_total_gb,
        uptime_seconds=s.uptime_seconds,
        load_avg_1m=s.load_1,
        load_avg_5m=s.load_5,
        load_avg_15m=s.load_15,
    )


_PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}


async def enrol(config: AgentConfig, store: CredentialStore) -> Enrollment:
    """Key generated here; CSR + token to RegisterDevice; certificate saved."""
    if not config.enrollment_token:
        raise EnrolmentFailed("not enrolled and no enrolment token given")
    if config.ca_cert is None:
        raise EnrolmentFailed("not enrolled and no --ca-cert to trust the control API with")
    store.ensure_dir()
    _, csr = store.pending_key(config.device_id)
    hw = sysstats.hardware()
    request = device_pb2.RegisterDeviceRequest(
        device_id=config.device_id,
        device_name=config.device_id,
        device_type=config.device_type,
        version=AGENT_VERSION,
        system_info=_system_info(hw),
        csr=csr.decode(),
        enrollment_token=config.enrollment_token,
    )
    creds = grpc.ssl_channel_credentials(root_certificates=config.ca_cert.read_bytes())
    backoff = Backoff()
    while True:
        async with grpc.aio.secure_channel(config.api_target, creds) as channel:
            stub = device_pb2_grpc.DeviceServiceStub(channel)
            try:
                response = await stub.RegisterDevice(request, timeout=RPC_TIMEOUT)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _PERMANENT:
                    raise EnrolmentFailed(f"{exc.code().name}: {exc.details()}") from None
                delay = backoff.next_delay()
                log.warning("enrolment failed (%s); retrying in %.1fs", exc.code().name, delay)
        await asyncio.sleep(delay)
    enrollment = Enrollment(
        device_id=response.device_id,
        fleet=response.fleet,
        gateway=config.gateway or response.gateway_endpoint,
    )
    store.save_enrollment(
        enrollment,
        response.certificate.encode(),
        response.ca_certificate.encode(),
        tuf_root=response.tuf_root,
    )
    log.info("enrolled as %s in fleet %s", enrollment.device_id, enrollment.fleet)
    return enrollment


def build_converger(config: AgentConfig, fetcher: TargetFetcher | None) -> Converger:
    """The converge loop over the agent's data directory and allowlists."""
    runtime = resolve_runtime(config.container_runtime)
    return Converger(
        policy=config.policy,
        fetcher=fetcher,
        store=StateStore(config.data_dir),
        outbox=Outbox(config.data_dir / "outbox"),
        device_type=config.device_type,
        runtime=ContainerRuntime(runtime) if runtime else None,
    )


@dataclass
class Agent:
    config: AgentConfig
    store: CredentialStore
    enrollment: Enrollment
    revision: int = 0
    converger: Converger | None = None
    _sender: OutboxSender | None = field(default=None, init=False)
    _connection: grpc.aio.Channel = field(init=False)
    _stub: agent_pb2_grpc.AgentServiceStub = field(init=False)
    _logs: LogUploader | None = field(default=None, init=False)

    def _channel(self) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.store.ca(),
            private_key=self.store.key(),
            certificate_chain=self.store.cert(),
        )
        gateway = self.config.gateway or self.enrollment.gateway
        return grpc.aio.secure_channel(gateway, creds, options=CHANNEL_OPTIONS)

    async def run(self) -> None:
        self._connection = self._channel()
        self._stub = agent_pb2_grpc.AgentServiceStub(self._connection)
        tasks = self._start_beside(self._stub)
        tasks.append(asyncio.create_task(self._renew_certificate(), name="renewal"))
        try:
            await self._heartbeat_loop()
            if self.config.once and self._sender is not None:
                await self._sender.flush()
        finally:
            for task in tasks:
                task.cancel()
            if self._logs is not None:
                self._logs.close()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._connection.close(None)

    async def _renew_certificate(self) -> None:
        """Renew the certificate when it is due (agent/renewal.py), then move every call
        to a channel presenting the new one."""
        renewal = Renewal(self.config.data_dir, self.enrollment.device_id)
        while True:
            if renewal_due(self.store.cert()):
                try:
                    response = await self._stub.RenewCertificate(
                        agent_pb2.RenewCertificateRequest(csr=renewal.csr().decode()),
                        timeout=RPC_TIMEOUT,
                    )
                    renewal.install(response.certificate.encode(), response.ca_certificate.encode())
                except grpc.aio.AioRpcError as exc:
                    log.warning(
                        "certificate renewal failed (%s: %s); retrying in %.0fs",
                        exc.code().name,
                        exc.details(),
                        CHECK_EVERY,
                    )
                except ValueError as exc:
                    log.error("certificate renewal answer refused: %s", exc)
                else:
                    log.info("certificate renewed; reconnecting with it")
                    await self._reconnect()
            await asyncio.sleep(CHECK_EVERY)

    async def _reconnect(self) -> None:
        old = self._connection
        self._connection = self._channel()
        self._stub = agent_pb2_grpc.AgentServiceStub(self._connection)
        if self._logs is not None:
            self._logs.stub = self._stub
        # Calls in flight on the old channel get a moment to finish; the heartbeat
        # stream then ends and reopens on the new one.
        await old.close(RECONNECT_GRACE)

    def _start_beside(self, stub: agent_pb2_grpc.AgentServiceStub) -> list[asyncio.Task[None]]:
        """The converge loop and the outbox sender, as tasks beside the heartbeats."""
        self._logs = LogUploader(
            LogSources(self.config.log_unit, self.config.log_file, running_unit()), stub
        )
        if self.converger is None:
            return []

        async def send(report: agent_pb2.ReportArtifactStatusRequest) -> object:
            return await self._stub.ReportArtifactStatus(report, timeout=RPC_TIMEOUT)

        self._sender = OutboxSender(self.converger.outbox, send)
        self.converger.on_report = self._sender.wake
        return [
            asyncio.create_task(self._sender.run(), name="outbox"),
            asyncio.create_task(self.converger.run(), name="converge"),
        ]

    async def _heartbeat_loop(self) -> None:
        sampler = sysstats.StatsSampler()
        backoff = Backoff()
        interval = await self._register(self._stub, backoff)
        stream = self.config.heartbeat_stream
        while True:
            try:
                # self._stub each time: a certificate renewal replaces the channel.
                if stream:
                    interval = await self._stream_heartbeats(self._stub, sampler, interval, backoff)
                else:
                    await asyncio.sleep(jittered(interval, 0.05))
                    interval = await self._heartbeat(self._stub, sampler, backoff)
            except grpc.aio.AioRpcError as exc:
                _raise_if_offboarded(exc)
                if stream and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    log.info("the gateway has no heartbeat stream; using unary heartbeats")
                    stream = False
                    continue
                interval = backoff.next_delay()
                log.warning(
                    "heartbeat failed (%s: %s); next try in %.1fs",
                    exc.code().name,
                    exc.details(),
                    interval,
                )
                if stream:
                    await asyncio.sleep(interval)
                continue
            except _StreamStalled:
                interval = backoff.next_delay()
                log.warning("heartbeat stream stalled; reopening in %.1fs", interval)
                await asyncio.sleep(interval)
                continue
            if self.config.once:
                return

    def _request(self, sampler: sysstats.StatsSampler) -> agent_pb2.HeartbeatRequest:
        return agent_pb2.HeartbeatRequest(
            desired_state_revision=self.revision,
            stats=_stats(sampler.sample()),
            agent_version=AGENT_VERSION,
            installed_artifacts=self._installed(),
        )

    def _installed(self) -> list[agent_pb2.InstalledArtifact]:
        return self.converger.installed_artifacts() if self.converger else []

    def _handle(self, response: agent_pb2.HeartbeatResponse) -> float:
        """Apply one heartbeat answer; the interval until the next heartbeat."""
        if response.offboarded:
            raise Offboarded
        if self._sender is not None and self._sender.offboarded:
            raise Offboarded
        if response.HasField("desired_state"):
            self.revision = response.desired_state.revision
            if self.converger is not None:
                self.converger.offer(response.desired_state)
        if response.log_requests and self._logs is not None:
            self._logs.offer(list(response.log_requests))
        return response.next_heartbeat_interval.ToTimedelta().total_seconds()

    async def _heartbeat(
        self,
        stub: agent_pb2_grpc.AgentServiceStub,
        sampler: sysstats.StatsSampler,
        backoff: Backoff,
    ) -> float:
        response = await stub.Heartbeat(self._request(sampler), timeout=RPC_TIMEOUT)
        backoff.reset()
        return self._handle(response)

    async def _stream_heartbeats(
        self,
        stub: agent_pb2_grpc.AgentServiceStub,
        sampler: sysstats.StatsSampler,
        interval: float,
        backoff: Backoff,
    ) -> float:
        """Heartbeat on one stream until the server ends it (returns the interval) or it
        fails (raises). Pushed answers between beats are applied as they arrive."""
        loop = asyncio.get_running_loop()
        call = stub.HeartbeatStream()
        reading: asyncio.Future[object] = asyncio.ensure_future(call.read())
        try:
            while True:
                await call.write(agent_pb2.HeartbeatStreamRequest(heartbeat=self._request(sampler)))
                sent_at = heard_at = loop.time()
                next_beat = sent_at + jittered(interval, 0.05)
                while (wait := next_beat - loop.time()) > 0:
                    done, _ = await asyncio.wait({reading}, timeout=wait)
                    if not done:
                        if loop.time() - heard_at > RPC_TIMEOUT + interval:
                            raise _StreamStalled
                        continue
                    message = reading.result()
                    if not isinstance(message, agent_pb2.HeartbeatStreamResponse):  # EOF
                        return interval  # the server ended the stream: open a new one
                    backoff.reset()
                    heard_at = loop.time()
                    interval = self._handle(message.heartbeat)
                    next_beat = sent_at + jittered(interval, 0.05)
                    if self.config.once:
                        return interval
                    reading = asyncio.ensure_future(call.read())
        finally:
            reading.cancel()
            call.cancel()

    async def _register(self, stub: agent_pb2_grpc.AgentServiceStub, backoff: Backoff) -> float:
        hw = sysstats.hardware()
        request = agent_pb2.RegisterRequest(
            hardware=_hardware_profile(hw),
            device_type=self.config.device_type,
            agent_version=AGENT_VERSION,
            tags=list(self.config.tags),
            installed_artifacts=self._installed(),
        )
        while True:
            try:
                response = await stub.Register(request, timeout=RPC_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                _raise_if_offboarded(exc)
                delay = backoff.next_delay()
                log.warning(
                    "register failed (%s: %s); retrying in %.1fs",
                    exc.code().name,
                    exc.details(),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            log.info("registered %s", response.device_id)
            interval: float = response.heartbeat_interval.ToTimedelta().total_seconds()
            return interval


async def run_agent(config: AgentConfig, fetcher: TargetFetcher | None = None) -> int:
    """Run the agent until cancelled or offboarded; the exit status. ``fetcher`` is the
    TUF client artifacts are fetched with (None: assignments fail NO_ARTIFACT_SOURCE)."""
    store = CredentialStore(config.data_dir)
    enrollment = store.enrollment()
    if enrollment is None:
        try:
            enrollment = await enrol(config, store)
        except EnrolmentFailed as exc:
            log.error("enrolment failed: %s", exc)
            return 2
    Renewal(config.data_dir, enrollment.device_id).recover()
    converger = build_converger(config, fetcher)
    try:
        await Agent(config, store, enrollment, converger=converger).run()
    except Offboarded:
        log.warning("this device was offboarded: wiping key material and exiting")
        extra = (config.enrollment_token_file,) if config.enrollment_token_file else ()
        store.wipe(extra)
    return 0
