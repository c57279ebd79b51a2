"""A fast in-process device simulator for rollout tests: real gateway over mTLS, real
storage.

Each :class:`SimulatedDevice` heartbeats (unary ``Heartbeat``) every ``interval``
seconds with the revision it holds, takes the assignments of a changed desired state,
and walks each new one through DOWNLOADING -> VERIFYING -> APPLYING -> HEALTHY, or ends
it FAILED / ROLLED_BACK as its :class:`Behaviour` decides (seeded: the same seed, device
and assignment always give the same outcome). It records every assignment it received and
every report it sent, and can stop (and resume) heartbeating.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import grpc

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from tests.support.deployment import Deployment
from tests.support.devices import device_channel, enrol_device

S = agent_pb2


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a device fares with an assignment: ``failure_rate`` of them end FAILED,
    ``rollback_rate`` ROLLED_BACK (probe failed, previous restored), the rest HEALTHY.
    The rates apply to the versions in ``faulty_versions`` (all when None)."""

    failure_rate: float = 0.0
    rollback_rate: float = 0.0
    faulty_versions: frozenset[str] | None = None
    step_delay: float = 0.02
    cpu_percent: float = 20.0
    silent_after_versions: frozenset[str] = frozenset()
    """The device stops heartbeating once it receives an assignment of one of these
    versions (it still applies and reports it): a device the update knocked offline."""
    seed: int = 1

    def outcome(self, device_id: str, assignment: S.ArtifactAssignment) -> S.ArtifactState:
        if self.faulty_versions is not None and assignment.version not in self.faulty_versions:
            return S.ARTIFACT_STATE_HEALTHY
        draw = random.Random(f"{self.seed}/{device_id}/{assignment.version}").random()
        if draw < self.failure_rate:
            return S.ARTIFACT_STATE_FAILED
        if draw < self.failure_rate + self.rollback_rate:
            return S.ARTIFACT_STATE_ROLLED_BACK
        return S.ARTIFACT_STATE_HEALTHY


@dataclass
class SimulatedDevice:
    device_id: str
    stub: agent_pb2_grpc.AgentServiceStub
    channel: grpc.aio.Channel
    behaviour: Behaviour
    interval: float
    heartbeating: bool = True
    revision: int = 0
    sequence: int = 0
    installed: dict[str, str] = field(default_factory=dict)
    received: list[S.ArtifactAssignment] = field(default_factory=list)
    reports: list[tuple[str, int]] = field(default_factory=list)
    _handled: set[str] = field(default_factory=set)
    _queue: asyncio.Queue[S.ArtifactAssignment] = field(default_factory=asyncio.Queue)

    def outcome_of(self, assignment_id: str) -> int | None:
        """The terminal state this device reported for an assignment, if any."""
        for reported, state in reversed(self.reports):
            if reported == assignment_id and state in (
                S.ARTIFACT_STATE_HEALTHY,
                S.ARTIFACT_STATE_FAILED,
                S.ARTIFACT_STATE_ROLLED_BACK,
            ):
                return state
        return None

    async def heartbeat_forever(self) -> None:
        while True:
            if self.heartbeating:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await self._beat()
            await asyncio.sleep(self.interval)

    async def _beat(self) -> None:
        response = await self.stub.Heartbeat(
            S.HeartbeatRequest(
                desired_state_revision=self.revision,
                stats=S.DeviceStats(
                    cpu_percent=self.behaviour.cpu_percent, memory_percent=30.0, disk_percent=40.0
                ),
                installed_artifacts=[
                    S.InstalledArtifact(name=n, version=v)
                    for n, v in sorted(self.installed.items())
                ],
            ),
            timeout=5,
        )
        if response.unchanged or not response.HasField("desired_state"):
            return
        self.revision = response.desired_state.revision
        for assignment in response.desired_state.assignments:
            if assignment.assignment_id not in self._handled:
                self._handled.add(assignment.assignment_id)
                self.received.append(assignment)
                self._queue.put_nowait(assignment)
                if assignment.version in self.behaviour.silent_after_versions:
                    self.heartbeating = False

    async def apply_forever(self) -> None:
        while True:
            assignment = await self._queue.get()
            # A refused report (the assignment was withdrawn): on to the next one.
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self._apply(assignment)

    async def _apply(self, assignment: S.ArtifactAssignment) -> None:
        for state in (
            S.ARTIFACT_STATE_DOWNLOADING,
            S.ARTIFACT_STATE_VERIFYING,
            S.ARTIFACT_STATE_APPLYING,
        ):
            await asyncio.sleep(self.behaviour.step_delay)
            await self._report(assignment.assignment_id, state)
        await asyncio.sleep(self.behaviour.step_delay)
        outcome = self.behaviour.outcome(self.device_id, assignment)
        if outcome == S.ARTIFACT_STATE_HEALTHY:
            self.installed[assignment.name] = assignment.version
            installed, reason = assignment.version, ""
        elif outcome == S.ARTIFACT_STATE_ROLLED_BACK:
            installed, reason = assignment.previous.version, "PROBE_FAILED"
        else:
            installed, reason = self.installed.get(assignment.name, ""), "DOWNLOAD_FAILED"
        await self._report(
            assignment.assignment_id, outcome, reason=reason, installed_version=installed
        )

    async def _report(
        self, assignment_id: str, state: int, *, reason: str = "", installed_version: str = ""
    ) -> None:
        self.sequence += 1
        await self.stub.ReportArtifactStatus(
            S.ReportArtifactStatusRequest(
                assignment_id=assignment_id,
                state=state,  # type: ignore[arg-type]
                sequence=self.sequence,
                reason=reason,
                installed_version=installed_version,
            ),
            timeout=5,
        )
        self.reports.append((assignment_id, state))


@dataclass
class Simulator:
    """Simulated devices, running while inside :meth:`running`."""

    devices: list[SimulatedDevice]

    def __getitem__(self, device_id: str) -> SimulatedDevice:
        return next(d for d in self.devices if d.device_id == device_id)

    def received(self, version: str | None = None) -> list[tuple[str, S.ArtifactAssignment]]:
        """(device id, assignment) for every assignment received (of ``version``)."""
        return [
            (d.device_id, a)
            for d in self.devices
            for a in d.received
            if version is None or a.version == version
        ]

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        deployment: Deployment,
        pool: asyncpg.Pool,
        ca: CertificateAuthority,
        device_ids: Sequence[str],
        *,
        behaviour: Behaviour | None = None,
        interval: float = 0.3,
    ) -> AsyncIterator[Simulator]:
        """Enrol ``device_ids`` (type raspberry-pi) and run them until the block ends."""
        devices = []
        for device_id in device_ids:
            creds = await enrol_device(pool, ca, device_id)
            channel = device_channel(deployment.gateway_target, deployment.ca_pem, creds)
            devices.append(
                SimulatedDevice(
                    device_id,
                    agent_pb2_grpc.AgentServiceStub(channel),
                    channel,
                    behaviour or Behaviour(),
                    interval,
                )
            )
        simulator = cls(devices)
        tasks = [
            asyncio.create_task(run())
            for d in devices
            for run in (d.heartbeat_forever, d.apply_forever)
        ]
        try:
            yield simulator
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for d in devices:
                await d.channel.close(None)
