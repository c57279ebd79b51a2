"""The rollout's decisions from counters and timings, without a database."""

from __future__ import annotations

import datetime as dt

from fleetd.domain.rollout.decide import (
    Assign,
    AwaitApproval,
    CheckGates,
    Complete,
    Counts,
    FinishRollback,
    GateResult,
    Halt,
    Promote,
    Settle,
    Snapshot,
    Start,
    StateChange,
    TargetStates,
    Wait,
    decide,
    state_changes,
    target_state,
)
from fleetd.domain.rollout.policy import Policy, effective_config
from fleetd.v1 import update_pb2 as U

NOW = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)


def policy(**fields: object) -> Policy:
    return Policy.of(effective_config(U.DeploymentConfig(**fields), U.UpdateStrategy()))  # type: ignore[arg-type]


def snap(
    counts: dict[int, dict[str, int]],
    *,
    state: str = "running",
    wave: int = 0,
    waves: int = 1,
    settled: dt.datetime | None = None,
    acked: int = 0,
    acked_rb: int = 0,
) -> Snapshot:
    return Snapshot(state, wave, waves, settled, NOW, Counts(counts), acked, acked_rb)


def test_pending_deployment_starts() -> None:
    assert decide(snap({0: {"waiting": 5}}, state="pending"), policy()) == Start()


def test_rolling_keeps_at_most_max_parallel_in_flight() -> None:
    rolling = policy(strategy=U.ROLLING, max_parallel=3)
    assert decide(snap({0: {"waiting": 10}}), rolling) == Assign(0, 3)
    assert decide(snap({0: {"waiting": 8, "applying": 2}}), rolling) == Assign(0, 1)
    assert isinstance(decide(snap({0: {"waiting": 7, "pending": 3}}), rolling), Wait)


def test_no_halt_before_the_minimum_sample() -> None:
    counts = {0: {"failed": 3, "healthy": 6, "waiting": 91}}
    assert decide(snap(counts), policy()) == Assign(0, 91)


def test_halts_when_failures_exceed_the_budget_of_finished_devices() -> None:
    counts = {0: {"failed": 1, "rolled_back": 1, "healthy": 8, "waiting": 90}}
    decision = decide(snap(counts), policy(max_failure_percentage=10))
    assert isinstance(decision, Halt) and not decision.rollback
    assert "2 of 10 finished" in decision.reason


def test_at_the_budget_exactly_it_does_not_halt() -> None:
    counts = {0: {"failed": 1, "healthy": 9, "waiting": 90}}
    assert decide(snap(counts), policy(max_failure_percentage=10)) == Assign(0, 90)


def test_acknowledged_failures_do_not_count_again() -> None:
    counts = {0: {"failed": 5, "healthy": 10, "waiting": 85}}
    assert isinstance(decide(snap(counts), policy()), Halt)
    assert decide(snap(counts, acked=5), policy()) == Assign(0, 85)


def test_small_deployment_waits_for_every_device_before_judging() -> None:
    counts = {0: {"failed": 1, "healthy": 1, "applying": 1}}
    assert isinstance(decide(snap(counts), policy()), Wait)
    assert isinstance(decide(snap({0: {"failed": 1, "healthy": 2}}), policy()), Halt)


def test_auto_rollback_halts_into_a_rollback() -> None:
    counts = {0: {"failed": 5, "healthy": 5}}
    decision = decide(snap(counts), policy(auto_rollback=True))
    assert isinstance(decision, Halt) and decision.rollback


def test_last_wave_terminal_completes() -> None:
    assert decide(snap({0: {"healthy": 99, "failed": 1, "skipped": 4}}), policy()) == Complete()


def test_canary_settles_validates_then_checks_gates_then_promotes() -> None:
    canary = policy(strategy=U.CANARY, auto_promote=True, validation_duration={"seconds": 60})
    counts = {0: {"healthy": 10}, 1: {"waiting": 90}}
    assert decide(snap(counts, waves=2), canary) == Settle(0)
    early = snap(counts, waves=2, settled=NOW - dt.timedelta(seconds=59))
    assert isinstance(decide(early, canary), Wait)
    due = snap(counts, waves=2, settled=NOW - dt.timedelta(seconds=60))
    assert decide(due, canary) == CheckGates(0)
    assert decide(due, canary, GateResult(True)) == Promote(1)
    failed = decide(due, canary, GateResult(False, "3 of 10 updated devices stopped"))
    assert isinstance(failed, Halt) and "stopped" in failed.reason


def test_canary_without_auto_promote_awaits_approval() -> None:
    canary = policy(strategy=U.CANARY, validation_duration={"seconds": 0})
    due = snap({0: {"healthy": 10}, 1: {"waiting": 90}}, waves=2, settled=NOW)
    assert decide(due, canary, GateResult(True)) == AwaitApproval(1)


def test_a_rollback_in_the_canary_blocks_promotion() -> None:
    canary = policy(
        strategy=U.CANARY,
        auto_promote=True,
        max_failure_percentage=50,
        validation_duration={"seconds": 0},
    )
    due = snap({0: {"healthy": 9, "rolled_back": 1}, 1: {"waiting": 90}}, waves=2, settled=NOW)
    decision = decide(due, canary)
    assert isinstance(decision, Halt) and "rolled back" in decision.reason
    acknowledged = snap(
        {0: {"healthy": 9, "rolled_back": 1}, 1: {"waiting": 90}},
        waves=2,
        settled=NOW,
        acked=1,
        acked_rb=1,
    )
    assert decide(acknowledged, canary) == CheckGates(0)


def test_paused_and_ended_deployments_wait() -> None:
    for state in ("paused", "failed", "completed", "cancelled", "rolled_back"):
        assert isinstance(decide(snap({0: {"waiting": 5}}, state=state), policy()), Wait)


def test_rollback_finishes_when_no_device_is_still_rolling_back() -> None:
    rolling_back = snap({0: {"healthy": 2, "rollback_pending": 3}}, state="rolling_back")
    assert isinstance(decide(rolling_back, policy()), Wait)
    done = snap({0: {"rolled_back": 5, "rollback_pending": 0}}, state="rolling_back")
    assert decide(done, policy()) == FinishRollback()


def test_target_state_of_several_assignments() -> None:
    assert target_state(["downloading", "applying"]) == "downloading"
    assert target_state(["healthy", "applying"]) == "applying"
    assert target_state(["healthy", "failed"]) == "failed"
    assert target_state(["rolled_back", "healthy"]) == "rolled_back"
    assert target_state(["cancelled", "cancelled"]) == "cancelled"
    assert target_state(["healthy", "cancelled"]) == "healthy"


def test_state_changes_lists_only_targets_whose_derived_state_moved() -> None:
    targets = [
        TargetStates("a", 0, "pending", ("cancelled",)),
        TargetStates("b", 1, "healthy", ("healthy", "cancelled")),
        TargetStates("c", 0, "pending", ("cancelled", "downloading")),
    ]
    assert state_changes(targets) == [
        StateChange("a", 0, "pending", "cancelled"),
        StateChange("c", 0, "pending", "downloading"),
    ]
