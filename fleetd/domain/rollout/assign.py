"""What the engine assigns to the devices of a wave, decided without IO.

For each device taken from its wave (``fleetd.storage.deployment_batches.assign_batch``
reads the devices and their active assignments, runs this, and writes the plan):

- an offboarded device, or one whose type has no artifact, is skipped with a reason;
- per artifact that fits its type (:func:`fleetd.domain.rollout.artifacts.applicable`) it
  gets a new assignment of this deployment, superseding its active assignment of that
  name, unless that one already runs the artifact's version (HEALTHY);
- a device that already runs every fitting artifact is skipped (ALREADY_RUNNING);
- each new assignment's ``previous`` is what the device **ran** (:func:`previous_of`),
  and the target records the superseded assignment as its rollback source only when that
  one was HEALTHY (a rollback copies it back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout import reasons
from fleetd.domain.rollout.artifacts import Artifact, applicable


@dataclass(frozen=True, slots=True)
class HeldAssignment:
    """An assignment a device holds, as stored."""

    assignment_id: str
    device_id: str
    name: str
    version: str
    state: str
    active: bool
    """False once superseded or withdrawn (no longer part of the desired state)."""
    spec: agent_pb2.ArtifactAssignment


@dataclass(frozen=True, slots=True)
class NewAssignment:
    """An assignment to insert for ``device_id`` (``spec`` carries its id, name, version)."""

    device_id: str
    spec: agent_pb2.ArtifactAssignment


@dataclass(frozen=True, slots=True)
class TargetAssignment:
    """One new assignment as its target records it: position ``index`` in the target's
    ``assignment_ids``, beside the assignment it superseded (``''``: none to return to)."""

    device_id: str
    assignment_id: str
    previous_assignment_id: str
    index: int
    previous_version: str


@dataclass(frozen=True, slots=True)
class AssignmentPlan:
    """What one assignment batch writes."""

    new: list[NewAssignment] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    """Active assignments the new ones replace (they leave the desired state)."""
    targets: list[TargetAssignment] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    """reason -> devices skipped for it, in the order first met."""


def previous_of(old: agent_pb2.ArtifactAssignment, state: str) -> agent_pb2.PreviousVersion:
    """What a device runs when ``old`` (its active assignment of a name) is superseded:
    ``old`` itself once healthy, else what ``old`` replaced (unset for a first install)."""
    if state == "healthy":
        return agent_pb2.PreviousVersion(
            version=old.version, sha256=old.sha256, target_path=old.target_path
        )
    return old.previous


def plan_assignments(
    deployment_id: str,
    device_ids: Sequence[str],
    device_types: Mapping[str, str],
    actives: Mapping[tuple[str, str], HeldAssignment],
    artifacts: Sequence[Artifact],
    new_id: Callable[[], str],
) -> AssignmentPlan:
    """The assignments for ``device_ids`` (see the module docstring).

    ``device_types``: device -> type, for devices not offboarded; ``actives``: (device,
    name) -> the device's active assignment of that name; ``new_id`` makes assignment ids.
    """
    plan = AssignmentPlan()
    templates = {
        a.artifact_id: agent_pb2.ArtifactAssignment.FromString(a.assignment_template)
        for a in artifacts
    }
    for device_id in device_ids:
        if device_id not in device_types:
            plan.skipped.setdefault(reasons.DEVICE_OFFBOARDED, []).append(device_id)
            continue
        fitting = applicable(artifacts, device_types[device_id])
        if not fitting:
            plan.skipped.setdefault(reasons.NO_ARTIFACT_FOR_TYPE, []).append(device_id)
            continue
        index = 0
        for artifact in fitting:
            old = actives.get((device_id, artifact.name))
            if old is not None and old.state == "healthy" and old.version == artifact.version:
                continue  # this artifact is already in place
            spec = agent_pb2.ArtifactAssignment()
            spec.CopyFrom(templates[artifact.artifact_id])
            spec.assignment_id = new_id()
            spec.deployment_id = deployment_id
            previous_id, previous_version = "", ""
            if old is not None:
                previous = previous_of(old.spec, old.state)
                if previous.version:
                    spec.previous.CopyFrom(previous)
                    previous_version = previous.version
                if old.state == "healthy":
                    previous_id = old.assignment_id
                plan.superseded.append(old.assignment_id)
            plan.new.append(NewAssignment(device_id, spec))
            plan.targets.append(
                TargetAssignment(
                    device_id, spec.assignment_id, previous_id, index, previous_version
                )
            )
            index += 1
        if index == 0:
            plan.skipped.setdefault(reasons.ALREADY_RUNNING, []).append(device_id)
    return plan
