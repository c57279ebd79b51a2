"""What a rollback gives each device, and how it ends, without a database."""

from __future__ import annotations

import itertools

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout.assign import HeldAssignment
from fleetd.domain.rollout.decide import ROLLBACK_PENDING
from fleetd.domain.rollout.rollback import (
    RollbackNote,
    RollbackPlan,
    RollbackTarget,
    plan_rollback,
    rollback_outcome,
)


def main(device: str, assignment_id: str, state: str, *, active: bool = True) -> HeldAssignment:
    spec = agent_pb2.ArtifactAssignment(
        assignment_id=assignment_id,
        name="app",
        version="2.0.0",
        sha256="20" * 32,
        target_path="app/2.0.0/any/r2/app.bin",
    )
    return HeldAssignment(assignment_id, device, "app", "2.0.0", state, active, spec)


PREVIOUS = agent_pb2.ArtifactAssignment(
    assignment_id="as_prev",
    name="app",
    version="1.0.0",
    sha256="10" * 32,
    target_path="app/1.0.0/any/r1/app.bin",
)


def plan(targets: list[RollbackTarget], mains: list[HeldAssignment]) -> RollbackPlan:
    counter = itertools.count(1)
    return plan_rollback(
        "dep-1",
        targets,
        {m.assignment_id: m for m in mains},
        {"as_prev": PREVIOUS},
        {"app/1.0.0/any/r1/app.bin": "app/1.0.0/any/r3/app.bin"},
        lambda: f"as_rb{next(counter)}",
    )


def test_a_device_gets_its_previous_version_back_under_the_re_signed_path() -> None:
    result = plan(
        [RollbackTarget("d", 1, "healthy", ("as_main",), ("as_prev",))],
        [main("d", "as_main", "healthy")],
    )
    [new] = result.new
    assert new.device_id == "d"
    assert (new.spec.version, new.spec.assignment_id, new.spec.deployment_id) == (
        "1.0.0",
        "as_rb1",
        "dep-1",
    )
    assert new.spec.target_path == "app/1.0.0/any/r3/app.bin"
    assert new.spec.previous.version == "2.0.0"
    assert result.superseded == ["as_main"]
    assert result.rollback_ids == {"d": ["as_rb1"]}
    assert result.moves.by_wave == {1: [(ROLLBACK_PENDING, 1)]}
    assert result.touched_devices == ["d"]


def test_first_installs_are_kept_when_applied_and_withdrawn_when_not() -> None:
    result = plan(
        [
            RollbackTarget("kept", 0, "healthy", ("as_a",), ("",)),
            RollbackTarget("busy", 0, "applying", ("as_b",), ("",)),
        ],
        [main("kept", "as_a", "healthy"), main("busy", "as_b", "applying")],
    )
    assert result.new == [] and result.withdrawn == ["as_b"]
    assert result.withdrawn_devices == {"busy"}
    assert result.notes == {
        "kept": RollbackNote(
            "NO_PREVIOUS_VERSION",
            "first install: there is no previous version to return to; the device keeps the update",
        )
    }
    assert result.touched_devices == ["busy"]


def test_a_superseded_assignment_is_left_alone() -> None:
    result = plan(
        [RollbackTarget("d", 0, "healthy", ("as_main",), ("as_prev",))],
        [main("d", "as_main", "healthy", active=False)],
    )
    assert result.new == [] and result.superseded == []
    assert result.notes == {"d": RollbackNote("SUPERSEDED", "a newer assignment replaced this one")}


def test_the_outcome_counts_what_was_left_and_fails_when_a_device_could_not_return() -> None:
    assert rollback_outcome({}).state == "rolled_back"
    kept = rollback_outcome({"NO_PREVIOUS_VERSION": 2, "SUPERSEDED": 1})
    assert kept.state == "rolled_back"
    assert kept.message == (
        "rolled back; 2 device(s) kept the update (first install, no previous version)"
        "; 1 device(s) have a newer assignment and were left alone"
    )
    failed = rollback_outcome({"ROLLBACK_FAILED": 3})
    assert failed.state == "failed"
    assert failed.message.startswith("rollback failed on 3 device(s) (see their statuses)")
