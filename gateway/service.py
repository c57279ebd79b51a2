"""The device API (``fleetd.device.v1.AgentService``) as the gateway serves it.

Every call starts by authenticating the peer certificate (gateway.device_auth); request
bodies never carry identity. Heartbeats go into the compiled batcher and return at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.domain import device_fields
from fleetd.storage.devices import mark_offboard_notified, refresh_registration
from fleetd.storage.errors import STORE_DOWN
from fleetd.storage.types import Pool
from fleetd.v1 import device_pb2
from gateway.aborts import abort, offboarded, store_down
from gateway.desired_state import UNCHANGED, DesiredStateLookup, Unavailable
from gateway.device_auth import CallerDevice, DeviceAuthenticator, Refused, StandingUnavailable
from gateway.device_limits import DeviceRateLimiter
from gateway.heartbeats import HeartbeatPipeline
from gateway.log_uploads import LogUploads
from gateway.pushes import PushHub
from gateway.renewals import BadRequest, CannotIssue, CertificateIssuer
from gateway.status_reports import StatusReports
from gateway.verified import VerifiedRevisions

ONLINE = device_pb2.ONLINE

REPORT_LIMIT = (2.0, 60)
"""Status reports per device: 2/s sustained, bursts of 60."""
UPLOAD_LIMIT = (1 / 60, 4)
"""Log uploads per device: one a minute sustained, bursts of 4."""

DRAINING = "gateway is shutting down; reconnect"


def hardware_to_system_info(hw: agent_pb2.HardwareProfile) -> dict[str, object]:
    """The device's profile, stored as fleetd.v1.SystemInfo's JSON field names."""
    return {
        "os": device_fields.text("hardware.os", hw.os),
        "arch": device_fields.text("hardware.arch", hw.arch),
        "cpu_cores": device_fields.non_negative("hardware.cpu_cores", hw.cpu_cores, 4096),
        "memory_mb": device_fields.non_negative("hardware.memory_mb", hw.memory_mb),
        "hostname": device_fields.text("hardware.hostname", hw.hostname),
        "os_version": device_fields.text("hardware.os_version", hw.os_version),
        "kernel": device_fields.text("hardware.kernel", hw.kernel),
        "model": device_fields.text("hardware.model", hw.model),
        "serial": device_fields.text("hardware.serial", hw.serial),
        "disk_gb": hw.disk_gb if hw.disk_gb >= 0 else 0.0,
    }


class AgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        pool: Pool,
        authenticator: DeviceAuthenticator,
        pipeline: HeartbeatPipeline,
        desired: DesiredStateLookup,
        pushes: PushHub,
        verified: VerifiedRevisions,
        *,
        heartbeat_interval: float,
        stream_lifetime: float = 3600.0,
        device_limit: tuple[float, int] | None = None,
        jitter: float = 0.1,
        status_reports: StatusReports,
        log_uploads: LogUploads,
        issuer: CertificateIssuer | None = None,
    ) -> None:
        self._issuer = issuer
        self._status_reports = status_reports
        self._log_uploads = log_uploads
        self._pool = pool
        self._auth = authenticator
        self._pipeline = pipeline
        self._desired = desired
        self._pushes = pushes
        self._streams: set[_OpenStream] = set()
        self._draining = False
        self._verified = verified
        self._stream_lifetime = stream_lifetime
        self.pushed = 0
        self._interval = heartbeat_interval
        self._jitter = jitter
        self._heartbeat_limits: DeviceRateLimiter | None = None
        self._register_limits: DeviceRateLimiter | None = None
        self._report_limits: DeviceRateLimiter | None = None
        self._upload_limits: DeviceRateLimiter | None = None
        if device_limit is not None:
            self._heartbeat_limits = DeviceRateLimiter(*device_limit)
            self._register_limits = DeviceRateLimiter(*device_limit)
            # Status reports come in bursts (four states per assignment, retries from the
            # outbox after an outage); log bundles are rare and large.
            self._report_limits = DeviceRateLimiter(*REPORT_LIMIT)
            self._upload_limits = DeviceRateLimiter(*UPLOAD_LIMIT)

    async def _caller(
        self, context: grpc.aio.ServicerContext[Any, Any], pem: bytes | None = None
    ) -> CallerDevice:
        """The calling device; ``pem`` when the caller already read the peer certificate
        (a stream re-checks its standing per beat without grpc rebuilding the whole
        auth context)."""
        if pem is None:
            pem = _peer_pem(context)
        try:
            return await self._auth.authenticate(pem)
        except Refused as exc:
            await abort(context, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except StandingUnavailable as exc:
            await store_down(
                context, exc, "the certificate's standing cannot be read right now; retry later"
            )

    async def _limit(
        self,
        limiter: DeviceRateLimiter | None,
        caller: CallerDevice,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        """RESOURCE_EXHAUSTED with ``grpc-retry-pushback-ms`` past the device's limit."""
        if limiter is None:
            return
        wait = limiter.check(caller.device_id)
        if wait > 0:
            pushback_ms = max(1, math.ceil(wait * 1000))
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many calls from this device: retry in {pushback_ms} ms",
                trailing_metadata=(("grpc-retry-pushback-ms", str(pushback_ms)),),
            )

    def _next_interval(self) -> duration_pb2.Duration:
        seconds = self._interval * (1.0 + random.uniform(-self._jitter, self._jitter))
        interval = duration_pb2.Duration()
        interval.FromMilliseconds(int(seconds * 1000))
        return interval

    async def Register(
        self, request: agent_pb2.RegisterRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.RegisterResponse:
        caller = await self._caller(context)
        if caller.offboarded:
            await offboarded(context)
        await self._limit(self._register_limits, caller, context)
        try:
            system_info = hardware_to_system_info(request.hardware)
            tags = device_fields.tags(request.tags)
            metadata = device_fields.metadata(request.metadata)
            device_type = device_fields.text(
                "device_type", request.device_type, device_fields.MAX_DEVICE_TYPE
            )
            agent_version = device_fields.text(
                "agent_version", request.agent_version, device_fields.MAX_VERSION
            )
        except device_fields.InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            device = await refresh_registration(
                self._pool,
                caller.device_id,
                device_type=device_type,
                agent_version=agent_version,
                system_info=system_info,
                tags=tags,
                metadata=metadata,
            )
        except STORE_DOWN as exc:
            await store_down(context, exc)
        if device is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, "device record no longer exists")
        registered_at = timestamp_pb2.Timestamp()
        registered_at.FromDatetime(device.registered_at)
        return agent_pb2.RegisterResponse(
            device_id=caller.device_id,
            fleet=caller.fleet,
            registered_at=registered_at,
            heartbeat_interval=self._next_interval(),
        )

    async def Heartbeat(
        self, request: agent_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.HeartbeatResponse:
        return await self._beat(await self._caller(context), request, context)

    async def HeartbeatStream(
        self,
        request_iterator: AsyncIterator[agent_pb2.HeartbeatStreamRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        """Heartbeat's answers, one per request, plus pushes when the state changes."""
        pem = _peer_pem(context)
        caller = await self._caller(context, pem)
        stream = _OpenStream(caller.device_id, context)
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self._stream_lifetime * random.uniform(0.8, 1.2)
        notify = functools.partial(self._schedule_push, stream)
        self._pushes.register(caller.device_id, notify)
        self._streams.add(stream)
        try:
            if self._draining:
                await abort(context, grpc.StatusCode.UNAVAILABLE, DRAINING)
            messages = aiter(request_iterator)
            while True:
                stream.idle = True
                try:
                    message = await anext(messages)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if not stream.draining:
                        raise
                    # end_streams() cancelled the wait for the next beat: end the stream
                    # with a status the agent retries, not CANCELLED.
                    await abort(context, grpc.StatusCode.UNAVAILABLE, DRAINING)
                finally:
                    stream.idle = False
                request = message.heartbeat
                # Standing re-checked per beat (cached): revocation ends the stream.
                caller = await self._caller(context, pem)
                response = await self._beat(caller, request, context)
                async with stream.lock:
                    await context.write(agent_pb2.HeartbeatStreamResponse(heartbeat=response))
                    stream.held = (
                        response.desired_state.revision
                        if response.HasField("desired_state")
                        else request.desired_state_revision
                    )
                if response.offboarded or loop.time() >= ends_at:
                    return
                if stream.draining:
                    await abort(context, grpc.StatusCode.UNAVAILABLE, DRAINING)
        finally:
            self._streams.discard(stream)
            self._pushes.unregister(caller.device_id, notify)
            if stream.push is not None:
                stream.push.cancel()

    async def RenewCertificate(
        self,
        request: agent_pb2.RenewCertificateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> agent_pb2.RenewCertificateResponse:
        caller = await self._caller(context)
        if caller.offboarded:
            await offboarded(context)
        await self._limit(self._register_limits, caller, context)
        if self._issuer is None:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, "renewal is not enabled")
        try:
            issued = await self._issuer.renew(self._pool, caller.device_id, request.csr.encode())
        except CannotIssue as exc:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except BadRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except STORE_DOWN as exc:
            await store_down(context, exc)
        not_after = timestamp_pb2.Timestamp()
        not_after.FromSeconds(int(issued.not_after_unix))
        return agent_pb2.RenewCertificateResponse(
            certificate=issued.certificate,
            ca_certificate=issued.ca_certificate,
            not_after=not_after,
        )

    def end_streams(self) -> int:
        """Drain: end every open heartbeat stream with UNAVAILABLE (which agents retry,
        with backoff, against whichever gateway answers) rather than letting the server's
        shutdown cancel them. A stream waiting for its next beat ends now; one answering
        a beat ends right after the answer. Streams opened later are refused the same
        way. Returns how many streams were open."""
        self._draining = True
        for stream in list(self._streams):
            stream.draining = True
            if stream.idle and stream.task is not None:
                stream.task.cancel()
        return len(self._streams)

    def _schedule_push(self, stream: _OpenStream) -> None:
        if stream.push is None or stream.push.done():
            stream.push = asyncio.create_task(self._push(stream))

    async def _push(self, stream: _OpenStream) -> None:
        """Send the device its new desired state now rather than at its next beat."""
        started, held = time.monotonic(), stream.held
        try:
            answer = await self._desired.answer(stream.device_id, held)
        except Unavailable:
            return  # the next beat will ask again
        if answer.unchanged:
            self._verified.verified(stream.device_id, held, started)
            return
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        response = agent_pb2.HeartbeatResponse(
            next_heartbeat_interval=self._next_interval(), server_time=now
        )
        answer.apply(response)
        async with stream.lock:
            with contextlib.suppress(grpc.aio.AbortError, RuntimeError, grpc.aio.UsageError):
                await stream.context.write(
                    agent_pb2.HeartbeatStreamResponse(heartbeat=response, pushed=True)
                )
                stream.held = response.desired_state.revision
                self.pushed += 1

    async def _beat(
        self,
        caller: CallerDevice,
        request: agent_pb2.HeartbeatRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> agent_pb2.HeartbeatResponse:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        if caller.offboarded:
            return await self._tell_offboarded(caller, now, context)
        await self._limit(self._heartbeat_limits, caller, context)
        stats = request.stats
        try:
            cpu = device_fields.percent("stats.cpu_percent", stats.cpu_percent)
            mem = device_fields.percent("stats.memory_percent", stats.memory_percent)
            disk = device_fields.percent("stats.disk_percent", stats.disk_percent)
            uptime = device_fields.non_negative("stats.uptime_seconds", stats.uptime_seconds)
        except device_fields.InvalidRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        # The other fields' ranges were checked with the message (fleetd.domain.message_rules).
        self._pipeline.add(
            caller.device_id,
            caller.group,
            ONLINE,
            cpu,
            mem,
            disk,
            uptime,
            stats.memory_used_mb,
            stats.memory_total_mb,
            stats.disk_used_gb,
            stats.disk_total_gb,
            stats.load_avg_1m,
            stats.load_avg_5m,
            stats.load_avg_15m,
            stats.temperature_celsius if stats.HasField("temperature_celsius") else math.nan,
            stats.network_rx_bytes,
            stats.network_tx_bytes,
        )
        held, started = request.desired_state_revision, time.monotonic()
        if self._verified.current(caller.device_id, held, started):
            answer = UNCHANGED  # verified since, and no change notice came
        else:
            try:
                answer = await self._desired.answer(caller.device_id, held)
            except Unavailable as exc:
                await store_down(
                    context, exc, "the desired state cannot be read right now; retry later"
                )
            if answer.unchanged:
                self._verified.verified(caller.device_id, held, started)
        response = agent_pb2.HeartbeatResponse(
            next_heartbeat_interval=self._next_interval(), server_time=now
        )
        answer.apply(response)
        return response

    async def _tell_offboarded(
        self,
        caller: CallerDevice,
        now: timestamp_pb2.Timestamp,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> agent_pb2.HeartbeatResponse:
        """The first heartbeat after offboarding is told so; every later call is refused."""
        try:
            first = await mark_offboard_notified(self._pool, caller.device_id)
        except STORE_DOWN as exc:
            await store_down(context, exc)
        if not first:
            await offboarded(context)
        return agent_pb2.HeartbeatResponse(offboarded=True, server_time=now)

    async def ReportArtifactStatus(
        self,
        request: agent_pb2.ReportArtifactStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> agent_pb2.ReportArtifactStatusResponse:
        caller = await self._caller(context)
        await self._limit(self._report_limits, caller, context)
        return await self._status_reports.report(caller, request, context)

    async def UploadLogs(
        self,
        request_iterator: AsyncIterator[agent_pb2.UploadLogsRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> agent_pb2.UploadLogsResponse:
        caller = await self._caller(context)
        await self._limit(self._upload_limits, caller, context)
        return await self._log_uploads.upload(caller, request_iterator, context)


def _peer_pem(context: grpc.aio.ServicerContext[Any, Any]) -> bytes | None:
    certs = context.auth_context().get("x509_pem_cert", ())
    for cert in certs:
        return cert
    return None


class _OpenStream:
    """One device's heartbeat stream: what it holds, and one writer at a time."""

    def __init__(self, device_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.device_id = device_id
        self.context = context
        self.held = 0
        self.lock = asyncio.Lock()
        self.push: asyncio.Task[None] | None = None
        # The handler's task, and whether it is waiting for the next beat (the only
        # point where end_streams() may cancel it: never mid-answer).
        self.task = asyncio.current_task()
        self.idle = False
        self.draining = False
