"""The converge loop: bring the device to its desired state, one assignment at a time.

For each assignment not yet concluded: re-validate it against the device's allowlists;
report ``downloading``; fetch it through TUF (transient errors retried with backoff);
report ``verifying`` and cross-check the verified target against the assignment;
stage it; report ``applying``; swap it in; reload; probe; then report ``healthy`` — or
roll back (restore the previous version, reload again) and report ``rolled_back``, or
report ``failed`` with a reason. Nothing that did not verify is ever applied.

Every step is recorded in the agent's state (agent.state) before the next begins, and
every report goes through the durable outbox, so a crash at any point is recovered on
the next start by :meth:`Converger.recover`:

- before the swap (FETCHING, STAGED): temporary files are removed, and the operation
  resumes (a staged copy is swapped in, a fetch is redone);
- after the swap (SWAPPED): the reload and probe run again — unless the operation was
  already interrupted there before (the new version may be what brings the device
  down), in which case it is rolled back with reason INTERRUPTED;
- during rollback (ROLLING_BACK): the rollback is completed.

Filesystem work runs in threads and the loop runs as its own task, so heartbeats are
never blocked by an update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent import containers, files
from agent.backoff import Backoff
from agent.containers import ContainerRuntime
from agent.crashpoints import crash_point
from agent.instructions import (
    KINDS,
    Instruction,
    Kind,
    Policy,
    Refused,
    resolve_destination,
    validate,
)
from agent.outbox import Outbox
from agent.probes import run_probe
from agent.reload import SYSTEMCTL, ReloadFailed, reload
from agent.state import AgentState, Installed, Operation, Previous, StateStore, Step
from agent.targets import TargetFetcher, TargetRefused, TargetUnavailable, VerifiedTarget
from fleetd.device.v1 import agent_pb2

log = logging.getLogger("fleetd.agent.converge")

DOWNLOADING = agent_pb2.ARTIFACT_STATE_DOWNLOADING
VERIFYING = agent_pb2.ARTIFACT_STATE_VERIFYING
APPLYING = agent_pb2.ARTIFACT_STATE_APPLYING
HEALTHY = agent_pb2.ARTIFACT_STATE_HEALTHY
ROLLED_BACK = agent_pb2.ARTIFACT_STATE_ROLLED_BACK
FAILED = agent_pb2.ARTIFACT_STATE_FAILED
OUTCOMES = {HEALTHY: "healthy", ROLLED_BACK: "rolled_back", FAILED: "failed"}

FAILURE_PAUSE = 30.0
"""Wait after an unexpected error in the loop before recovering."""
MAX_INTERRUPTIONS = 2
"""Restarts after the swap before the new version is rolled back unprobed."""

PROBE_FAILED = "PROBE_FAILED"
RELOAD_FAILED = "RELOAD_FAILED"
APPLY_FAILED = "APPLY_FAILED"
ROLLBACK_FAILED = "ROLLBACK_FAILED"
INTERRUPTED = "INTERRUPTED"
SUPERSEDED = "SUPERSEDED"
TARGET_MISMATCH = "TARGET_MISMATCH"
DIGEST_MISMATCH = "DIGEST_MISMATCH"
NO_ARTIFACT_SOURCE = "NO_ARTIFACT_SOURCE"

_PROTO_KINDS = {kind: proto for proto, kind in KINDS.items()}


@dataclass
class Converger:
    """Applies assignments; :meth:`offer` hands it each new desired state."""

    policy: Policy
    fetcher: TargetFetcher | None
    store: StateStore
    outbox: Outbox
    device_type: str
    runtime: ContainerRuntime | None = None
    on_report: Callable[[], None] = lambda: None
    """Called after each report is in the outbox (wakes the sender)."""
    systemctl: str = SYSTEMCTL
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    retry_backoff: Callable[[], Backoff] = lambda: Backoff(base=2.0, cap=300.0)
    state: AgentState = field(init=False)
    _desired: agent_pb2.DesiredState | None = field(init=False, default=None)
    _changed: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.state = self.store.load()

    # -- the loop ---------------------------------------------------------------------

    def offer(self, desired: agent_pb2.DesiredState) -> None:
        """The latest desired state (from a heartbeat); never blocks."""
        self._desired = desired
        self._changed.set()

    def _wanted(self, assignment_id: str) -> bool:
        """Whether the latest desired state still holds the assignment (True when no
        desired state arrived yet: recovery runs before the first heartbeat)."""
        if self._desired is None:
            return True
        return any(a.assignment_id == assignment_id for a in self._desired.assignments)

    async def run(self) -> None:
        """Recover, then converge on every desired state offered, until cancelled."""
        while True:
            try:
                await self.recover()
                while True:
                    await self._changed.wait()
                    self._changed.clear()
                    await self.converge_all()
            except Exception:
                # A bug or an unexpected OS error must not end updates for good: the
                # operation is recorded, so recover from it as after a crash, later.
                log.exception("the converge loop failed; recovering in %.0fs", FAILURE_PAUSE)
                self._changed.set()
                await asyncio.sleep(FAILURE_PAUSE)

    async def converge_all(self) -> None:
        """Work through the latest desired state once."""
        desired = self._desired
        if desired is None:
            return
        for spec in desired.assignments:
            if spec.assignment_id in self.state.finished or not self._wanted(spec.assignment_id):
                continue
            await self.converge(spec)

    def installed_artifacts(self) -> list[agent_pb2.InstalledArtifact]:
        """What is installed, for Register and heartbeats."""
        return [
            agent_pb2.InstalledArtifact(
                name=a.name,
                version=a.version,
                kind=_PROTO_KINDS.get(Kind(a.kind), agent_pb2.ARTIFACT_KIND_UNSPECIFIED),
                sha256=a.sha256,
                assignment_id=a.assignment_id,
            )
            for a in self.state.installed.values()
        ]

    # -- one assignment ---------------------------------------------------------------

    async def converge(self, spec: agent_pb2.ArtifactAssignment) -> None:
        """Apply one assignment to its end (healthy, rolled back or failed)."""
        try:
            instruction = validate(spec, self.policy)
        except Refused as exc:
            await self._conclude(spec, FAILED, exc.reason, exc.message)
            return
        current = self.state.installed.get(spec.name)
        if (
            current is not None
            and current.sha256 == spec.sha256
            and current.version == spec.version
        ):
            await self._conclude(spec, HEALTHY, "", "already installed", current.version)
            return
        if self.fetcher is None:
            await self._conclude(spec, FAILED, NO_ARTIFACT_SOURCE, "no TUF repository configured")
            return
        if instruction.kind is Kind.CONTAINER and self.runtime is None:
            await self._conclude(
                spec, FAILED, containers.NO_CONTAINER_RUNTIME, "no container runtime on this device"
            )
            return
        op = Operation(assignment=spec, step=Step.FETCHING)
        await self._save(replace(self.state, operation=op))
        await self._run(op, instruction)

    async def recover(self) -> None:
        """Finish or roll back the operation a crash interrupted (see the module doc)."""
        op = self.state.operation
        if op is None:
            return
        log.warning(
            "resuming %s (%s) interrupted at %s",
            op.assignment.assignment_id,
            op.assignment.name,
            op.step.value,
        )
        try:
            instruction = validate(op.assignment, self.policy)
        except Refused as exc:
            # The device's allowlists changed since: undo what was done, follow no more.
            instruction = _unchecked(op.assignment)
            op = replace(op, reason=exc.reason, message=exc.message)
            if op.step in (Step.FETCHING, Step.STAGED):
                await self._discard(instruction)
                await self._conclude(op.assignment, FAILED, exc.reason, exc.message, op=op)
                return
            instruction = replace(instruction, reload=type(instruction.reload)())
            op = replace(op, step=Step.ROLLING_BACK)
        if op.step is Step.SWAPPED:
            op = replace(op, interruptions=op.interruptions + 1)
            if op.interruptions >= MAX_INTERRUPTIONS:
                op = replace(
                    op,
                    step=Step.ROLLING_BACK,
                    reason=INTERRUPTED,
                    message=f"the agent was interrupted {op.interruptions} times after the swap",
                )
            await self._save(replace(self.state, operation=op))
        await self._run(op, instruction)

    async def _run(self, op: Operation, ins: Instruction) -> None:
        spec = op.assignment
        if op.step is Step.FETCHING:
            await self._discard(ins)
            op = await self._report(op, DOWNLOADING)
            try:
                target = await self._fetch(spec)
                op = await self._report(op, VERIFYING)
                _cross_check(spec, ins, target)
                op = await self._stage(op, ins, target)
                # Staged is our own copy: the cache's is no longer needed (device disks
                # are small; a later fetch downloads it again).
                if self.fetcher is not None:
                    await asyncio.to_thread(self.fetcher.evict, target)
            except Refused as exc:
                await self._discard(ins)
                await self._conclude(spec, FAILED, exc.reason, exc.message, op=op)
                return
            except (files.ApplyFailed, OSError) as exc:
                await self._discard(ins)
                await self._conclude(spec, FAILED, APPLY_FAILED, str(exc), op=op)
                return
            op = replace(op, step=Step.STAGED)
            await self._save(replace(self.state, operation=op))
            crash_point("stage:recorded")
        if op.step is Step.STAGED:
            op = await self._report(op, APPLYING)
            try:
                await self._swap(op, ins)
            except (files.ApplyFailed, OSError) as exc:
                await self._discard(ins)
                await self._conclude(spec, FAILED, APPLY_FAILED, str(exc), op=op)
                return
            op = replace(op, step=Step.SWAPPED)
            await self._save(replace(self.state, operation=op))
            crash_point("swap:recorded")
        if op.step is Step.SWAPPED:
            try:
                await reload(ins.reload, systemctl=self.systemctl)
            except ReloadFailed as exc:
                op = replace(op, step=Step.ROLLING_BACK, reason=RELOAD_FAILED, message=str(exc))
            else:
                crash_point("probe:started")
                result = await run_probe(ins.probe, self.sleep)
                if result.healthy:
                    await self._healthy(op, ins, result.detail)
                    return
                op = replace(op, step=Step.ROLLING_BACK, reason=PROBE_FAILED, message=result.detail)
        await self._rollback(op, ins)

    async def _fetch(self, spec: agent_pb2.ArtifactAssignment) -> VerifiedTarget:
        fetcher = self.fetcher
        assert fetcher is not None
        current = self.state.installed.get(spec.name)
        backoff = self.retry_backoff()
        while True:
            try:
                return await asyncio.to_thread(
                    fetcher.fetch,
                    spec.target_path,
                    expected_sha256=spec.sha256,
                    expected_length=spec.length,
                    device_type=self.device_type,
                    min_release_counter=current.release_counter if current else 0,
                )
            except TargetRefused as exc:
                raise Refused(exc.reason, str(exc)) from None
            except TargetUnavailable as exc:
                delay = backoff.next_delay()
                log.warning(
                    "fetching %s failed (%s); retrying in %.1fs", spec.target_path, exc, delay
                )
            if not self._wanted(spec.assignment_id):
                raise Refused(SUPERSEDED, "the assignment left the desired state while downloading")
            await self.sleep(delay)

    async def _stage(self, op: Operation, ins: Instruction, target: VerifiedTarget) -> Operation:
        spec = op.assignment
        op = replace(op, release_counter=target.release_counter)
        current = self.state.installed.get(spec.name)
        previous_version = current.version if current else ""
        if ins.kind is Kind.CONTAINER:
            assert self.runtime is not None
            containers.check_reference(target.path, ins)
            old = await self.runtime.image_of(ins.container_name)
            op = replace(
                op,
                had_previous=old is not None,
                previous_sha256=old.rpartition("@sha256:")[2] if old and "@sha256:" in old else "",
                previous_version=previous_version,
            )
            await self._save(replace(self.state, operation=op))
            await containers.stage(self.runtime, ins.reference)
            return op
        dest = ins.destination
        assert dest is not None
        resolve_destination(dest, self.policy)
        old_sha = await asyncio.to_thread(files.file_sha256, dest)
        op = replace(
            op,
            had_previous=old_sha is not None,
            previous_sha256=old_sha or "",
            previous_version=previous_version if old_sha else "",
        )
        await self._save(replace(self.state, operation=op))
        await asyncio.to_thread(
            files.stage, target.path, dest, sha256=spec.sha256, length=spec.length, mode=ins.mode
        )
        return op

    async def _swap(self, op: Operation, ins: Instruction) -> None:
        if ins.kind is Kind.CONTAINER:
            assert self.runtime is not None
            await containers.swap(self.runtime, ins.container_name, ins.reference)
            return
        assert ins.destination is not None
        await asyncio.to_thread(
            files.swap, ins.destination, sha256=op.assignment.sha256, had_previous=op.had_previous
        )

    async def _healthy(self, op: Operation, ins: Instruction, detail: str) -> None:
        spec = op.assignment
        if ins.kind is Kind.CONTAINER:
            location, kept = ins.container_name, containers.previous_name(ins.container_name)
        else:
            assert ins.destination is not None
            location, kept = str(ins.destination), str(files.previous_path(ins.destination))
        previous = (
            Previous(op.previous_version, op.previous_sha256, kept) if op.had_previous else None
        )
        installed = Installed(
            name=spec.name,
            version=spec.version,
            sha256=spec.sha256,
            kind=ins.kind.value,
            location=location,
            release_counter=op.release_counter,
            assignment_id=spec.assignment_id,
            previous=previous,
        )
        await self._put_report(spec, HEALTHY, "", detail, spec.version)
        crash_point("healthy:reported")
        state = self.state.with_installed(installed).with_finished(spec.assignment_id, "healthy")
        await self._save(state)
        log.info("%s %s is installed and healthy", spec.name, spec.version)

    async def _rollback(self, op: Operation, ins: Instruction) -> None:
        spec = op.assignment
        await self._save(replace(self.state, operation=op))
        crash_point("rollback:recorded")
        log.warning("rolling back %s %s: %s: %s", spec.name, spec.version, op.reason, op.message)
        try:
            if ins.kind is Kind.CONTAINER:
                assert self.runtime is not None
                await containers.rollback(
                    self.runtime, ins.container_name, ins.reference, had_previous=op.had_previous
                )
            else:
                assert ins.destination is not None
                await asyncio.to_thread(
                    files.rollback,
                    ins.destination,
                    had_previous=op.had_previous,
                    previous_sha256=op.previous_sha256,
                )
        except (files.RollbackFailed, OSError) as exc:
            message = f"{op.reason}: {op.message}; the rollback failed too: {exc}"
            await self._conclude(spec, FAILED, ROLLBACK_FAILED, message, op=op)
            return
        crash_point("rollback:restored")
        message = op.message
        if op.had_previous:
            try:
                await reload(ins.reload, systemctl=self.systemctl)
            except ReloadFailed as exc:
                message += f"; reloading the restored version failed: {exc}"
        crash_point("rollback:reloaded")
        current = self.state.installed.get(spec.name)
        if current is not None and ins.kind is not Kind.CONTAINER:
            # The kept copy was renamed back into place: there is no older one now.
            self.state = self.state.with_installed(replace(current, previous=None))
        await self._conclude(spec, ROLLED_BACK, op.reason, message, op.previous_version, op=op)

    async def _discard(self, ins: Instruction) -> None:
        if ins.destination is not None:
            await asyncio.to_thread(files.discard, ins.destination)

    # -- reports and state ------------------------------------------------------------

    async def _save(self, state: AgentState) -> None:
        self.state = state
        await asyncio.to_thread(self.store.save, state)

    async def _put_report(
        self,
        spec: agent_pb2.ArtifactAssignment,
        state: agent_pb2.ArtifactState,
        reason: str = "",
        message: str = "",
        installed_version: str = "",
    ) -> None:
        report = agent_pb2.ReportArtifactStatusRequest(
            assignment_id=spec.assignment_id,
            state=state,
            reason=reason[:64],
            message=_clip(message),
            installed_version=installed_version[:128],
        )
        await asyncio.to_thread(self.outbox.add, report)
        self.on_report()

    async def _report(self, op: Operation, state: agent_pb2.ArtifactState) -> Operation:
        """Report a progress state once per operation (not again after a resume)."""
        if op.reported >= state:
            return op
        await self._put_report(op.assignment, state)
        op = replace(op, reported=state)
        await self._save(replace(self.state, operation=op))
        return op

    async def _conclude(
        self,
        spec: agent_pb2.ArtifactAssignment,
        state: agent_pb2.ArtifactState,
        reason: str,
        message: str,
        installed_version: str = "",
        *,
        op: Operation | None = None,
    ) -> None:
        """The final report, then the assignment is finished and the operation over."""
        if state == FAILED:
            log.warning("%s %s failed: %s: %s", spec.name, spec.version, reason, message)
        await self._put_report(spec, state, reason, message, installed_version)
        await self._save(self.state.with_finished(spec.assignment_id, OUTCOMES[state]))


def _clip(message: str, limit: int = 4000) -> str:
    data = message.encode()
    return message if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _cross_check(
    spec: agent_pb2.ArtifactAssignment, ins: Instruction, target: VerifiedTarget
) -> None:
    """Defence in depth: what TUF verified must be what the assignment says."""
    if target.sha256 != spec.sha256 or target.length != spec.length:
        raise Refused(
            DIGEST_MISMATCH,
            f"the verified target is sha256 {target.sha256[:16]}... ({target.length} bytes); "
            f"the assignment expects {spec.sha256[:16]}... ({spec.length} bytes)",
        )
    if target.kind != ins.kind.value or target.name != spec.name:
        raise Refused(
            TARGET_MISMATCH,
            f"the signed target is {target.kind} {target.name!r}, "
            f"the assignment is {ins.kind.value} {spec.name!r}",
        )


def _unchecked(spec: agent_pb2.ArtifactAssignment) -> Instruction:
    """Where an operation recorded before a policy change put things, to undo it."""
    kind = KINDS.get(spec.kind, Kind.FILE)
    if kind is Kind.CONTAINER:
        c = spec.container
        return Instruction(kind, image=c.image, digest=c.digest, container_name=c.container_name)
    return Instruction(kind, destination=Path(spec.config.destination_path))
