"""What a rollback gives each device, and how it ends, decided without IO.

A ROLLING_BACK deployment returns the devices that applied (or are applying) its update
to the version they ran before (docs/rollouts.md, "Rollback"). The service
(``fleetd.services.rollout.rollback``) reads a batch of targets and their assignments,
asks :func:`plan_rollback`, and has storage write the plan. Per assignment of a target:

- superseded since by a newer assignment (inactive): left alone — rolling back an old
  deployment never undoes a newer one (the target is noted SUPERSEDED);
- no previous version (a first install): kept when applied (noted NO_PREVIOUS_VERSION),
  withdrawn when still in flight;
- otherwise: a new assignment of this deployment, a copy of the previous one (its kind,
  config and probe), pointing at the re-signed previous target, with ``previous`` naming
  the update's version; the target then counts as ``rollback_pending`` until they end.

:func:`rollback_outcome` turns the notes counted at the end into the final state:
ROLLED_BACK promises every touched device is back on its previous version, so any device
that could not return makes the rollback FAILED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout import reasons
from fleetd.domain.rollout.assign import HeldAssignment, NewAssignment
from fleetd.domain.rollout.counter_moves import CounterMoves
from fleetd.domain.rollout.decide import IN_FLIGHT, ROLLBACK_PENDING

ROLLBACK_FROM = (*IN_FLIGHT, "healthy")
"""Target states a rollback batch takes: the devices that applied or are applying."""
COUNTED_AT_START = ("downloading", "verifying", "applying", "healthy")
"""Target states RollbackDeployment counts in its answer (pending assignments were just
withdrawn in the same transaction)."""
LEFT_ALONE = (reasons.NO_PREVIOUS_VERSION, reasons.SUPERSEDED)
"""Reasons of targets a rollback already looked at and leaves as they are."""
OUTCOME_REASONS = (reasons.NO_PREVIOUS_VERSION, reasons.SUPERSEDED, reasons.ROLLBACK_FAILED)
"""Reasons the final message counts."""

_KEPT_MESSAGE = (
    "first install: there is no previous version to return to; the device keeps the update"
)
_SUPERSEDED_MESSAGE = "a newer assignment replaced this one"


@dataclass(frozen=True, slots=True)
class RollbackTarget:
    """A target a rollback batch considers: its assignments of this deployment, each
    beside the one it superseded (``''``: none, a first install)."""

    device_id: str
    wave: int
    state: str
    assignment_ids: tuple[str, ...]
    previous_assignment_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RollbackNote:
    """Why a target gets no rollback assignment."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """What one rollback batch writes."""

    new: list[NewAssignment] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    """The deployment's assignments the rollback assignments replace."""
    withdrawn: list[str] = field(default_factory=list)
    """First installs still in flight: cancelled (reason ROLLED_BACK)."""
    withdrawn_devices: set[str] = field(default_factory=set)
    rollback_ids: dict[str, list[str]] = field(default_factory=dict)
    """device -> its new rollback assignments."""
    notes: dict[str, RollbackNote] = field(default_factory=dict)
    moves: CounterMoves = field(default_factory=CounterMoves)

    @property
    def touched_devices(self) -> list[str]:
        """Devices whose desired state changes (their revisions are bumped)."""
        return sorted({*self.rollback_ids, *self.withdrawn_devices})


def rollback_spec(
    deployment_id: str,
    previous: agent_pb2.ArtifactAssignment,
    current: agent_pb2.ArtifactAssignment,
    target_path: str,
    assignment_id: str,
) -> agent_pb2.ArtifactAssignment:
    """The assignment that returns a device from ``current`` to ``previous``."""
    spec = agent_pb2.ArtifactAssignment()
    spec.CopyFrom(previous)
    spec.target_path = target_path
    spec.assignment_id = assignment_id
    spec.deployment_id = deployment_id
    spec.previous.CopyFrom(
        agent_pb2.PreviousVersion(
            version=current.version, sha256=current.sha256, target_path=current.target_path
        )
    )
    return spec


def plan_rollback(
    deployment_id: str,
    targets: Sequence[RollbackTarget],
    mains: Mapping[str, HeldAssignment],
    previous: Mapping[str, agent_pb2.ArtifactAssignment],
    paths: Mapping[str, str],
    new_id: Callable[[], str],
) -> RollbackPlan:
    """The rollback of ``targets`` (see the module docstring).

    ``mains``: the deployment's assignments by id; ``previous``: the assignments they
    superseded, by id; ``paths``: previous target path -> the re-signed one to assign
    (a path missing keeps its own); ``new_id`` makes assignment ids.
    """
    plan = RollbackPlan()
    for t in targets:
        ids: list[str] = []
        kept = superseded = 0
        for main_id, previous_id in zip(t.assignment_ids, t.previous_assignment_ids, strict=True):
            main = mains.get(main_id)
            if main is None:
                continue
            if not main.active:
                superseded += 1  # a newer assignment replaced it: leave that alone
                continue
            before = previous.get(previous_id)
            if before is None:
                if main.state in IN_FLIGHT:
                    plan.withdrawn.append(main_id)
                    plan.withdrawn_devices.add(t.device_id)
                else:
                    kept += 1
                continue
            path = paths.get(before.target_path, before.target_path)
            spec = rollback_spec(deployment_id, before, main.spec, path, new_id())
            plan.superseded.append(main_id)
            plan.new.append(NewAssignment(t.device_id, spec))
            ids.append(spec.assignment_id)
        if ids:
            plan.rollback_ids[t.device_id] = ids
            plan.moves.add(t.wave, ROLLBACK_PENDING, 1)
        elif kept:
            plan.notes[t.device_id] = RollbackNote(reasons.NO_PREVIOUS_VERSION, _KEPT_MESSAGE)
        elif superseded:
            plan.notes[t.device_id] = RollbackNote(reasons.SUPERSEDED, _SUPERSEDED_MESSAGE)
    return plan


@dataclass(frozen=True, slots=True)
class RollbackOutcome:
    """How a finished rollback ends: ``rolled_back`` or ``failed``, and its message."""

    state: str
    message: str


def rollback_outcome(noted: Mapping[str, int]) -> RollbackOutcome:
    """The final state from the count of targets per reason (:data:`OUTCOME_REASONS`)."""
    message = "rolled back"
    if noted.get(reasons.NO_PREVIOUS_VERSION):
        message += (
            f"; {noted[reasons.NO_PREVIOUS_VERSION]} device(s) kept the update "
            "(first install, no previous version)"
        )
    if noted.get(reasons.SUPERSEDED):
        message += (
            f"; {noted[reasons.SUPERSEDED]} device(s) have a newer assignment and were left alone"
        )
    failed = noted.get(reasons.ROLLBACK_FAILED, 0)
    if failed:
        # ROLLED_BACK promises every touched device is back on its previous version;
        # when some could not be, the rollback failed.
        return RollbackOutcome(
            "failed", f"rollback failed on {failed} device(s) (see their statuses); {message}"
        )
    return RollbackOutcome("rolled_back", message)
