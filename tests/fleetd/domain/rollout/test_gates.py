"""The IO-bound promotion gates, judged without a database."""

from __future__ import annotations

import datetime as dt

from fleetd.domain.rollout.decide import Counts
from fleetd.domain.rollout.gates import (
    WaveHeartbeats,
    failure_percentage,
    gate_failure,
    heartbeat_failure,
    heartbeat_since,
)
from fleetd.domain.rollout.policy import Policy, effective_config
from fleetd.v1 import update_pb2 as U

NOW = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)


def policy(**fields: object) -> Policy:
    return Policy.of(effective_config(U.DeploymentConfig(**fields), U.UpdateStrategy()))  # type: ignore[arg-type]


def test_heartbeats_count_from_the_settling_when_the_window_holds_one() -> None:
    settled = NOW - dt.timedelta(seconds=30)
    long = policy(validation_duration={"seconds": 30})
    short = policy(validation_duration={"seconds": 0})
    assert heartbeat_since(long, settled, NOW, heartbeat_interval=10, offline_after=3) == settled
    since = heartbeat_since(short, settled, NOW, heartbeat_interval=10, offline_after=3)
    assert since == NOW - dt.timedelta(seconds=3)


def test_silent_devices_fail_the_wave_beyond_the_failure_budget() -> None:
    budget = policy(max_failure_percentage=10)
    assert heartbeat_failure(WaveHeartbeats(10, 1), budget) is None
    assert heartbeat_failure(WaveHeartbeats(10, 2), budget) == (
        "2 of 10 updated devices stopped heartbeating"
    )
    assert heartbeat_failure(WaveHeartbeats(0, 0), budget) is None
    assert WaveHeartbeats(0, 0).offline_percentage == 0.0


def test_failure_percentage_is_of_the_waves_finished_devices() -> None:
    counts = Counts({0: {"healthy": 6, "failed": 1, "rolled_back": 1, "applying": 2}})
    assert failure_percentage(counts, 0) == 25.0
    assert failure_percentage(counts, 1) == 0.0


def test_a_gate_fails_out_of_bounds_or_without_data() -> None:
    gate = U.HealthGate(metric="cpu_usage", aggregation="AVG", max_value=80)
    assert gate_failure(gate, 79.5) is None
    assert gate_failure(gate, 90.0) == "health gate AVG(cpu_usage) = 90.00 outside [-inf, 80.0]"
    assert gate_failure(gate, None) == "health gate AVG(cpu_usage): no data from the wave's devices"
