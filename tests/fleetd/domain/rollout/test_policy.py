"""Effective deployment configuration: request over the update's strategy over defaults."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2

from fleetd.domain.rollout.policy import InvalidConfig, Policy, effective_config
from fleetd.v1 import update_pb2 as U

AUTO, MANUAL = U.Wave.AUTO, U.Wave.MANUAL


def test_defaults_are_one_wave_five_percent_budget_and_an_hour_timeout() -> None:
    config = effective_config(U.DeploymentConfig(), U.UpdateStrategy())
    assert config.strategy == U.ALL_AT_ONCE
    assert [w.cumulative_percentage for w in config.waves] == [100.0]
    assert config.max_failure_percentage == 5.0
    assert config.device_timeout.seconds == 3600
    assert config.max_parallel == 0


def test_request_overrides_the_update_strategy_field_by_field() -> None:
    strategy = U.UpdateStrategy(
        type=U.CANARY,
        canary_percentage=25,
        max_failure_percentage=2,
        validation_duration=duration_pb2.Duration(seconds=30),
    )
    config = effective_config(U.DeploymentConfig(max_failure_percentage=7), strategy)
    assert config.strategy == U.CANARY
    assert config.max_failure_percentage == 7
    assert config.validation_duration.seconds == 30
    assert [(w.cumulative_percentage, w.approval) for w in config.waves] == [
        (25.0, AUTO),
        (100.0, MANUAL),  # no auto_promote: the rest waits for ApproveWave
    ]


def test_canary_with_auto_promote_releases_the_rest_automatically() -> None:
    config = effective_config(
        U.DeploymentConfig(strategy=U.CANARY, auto_promote=True), U.UpdateStrategy()
    )
    assert [w.approval for w in config.waves] == [AUTO, AUTO]
    assert config.waves[0].cumulative_percentage == 10.0


def test_explicit_waves_override_the_strategy_and_resolve_approvals() -> None:
    config = effective_config(
        U.DeploymentConfig(
            strategy=U.CANARY,
            waves=[
                U.Wave(cumulative_percentage=1),
                U.Wave(cumulative_percentage=10, approval=MANUAL),
                U.Wave(name="rest", cumulative_percentage=100),
            ],
        ),
        U.UpdateStrategy(),
    )
    assert [(w.name, w.approval) for w in config.waves] == [
        ("wave 0", AUTO),
        ("wave 1", MANUAL),
        ("rest", AUTO),
    ]
    assert Policy.of(config).manual_approval == (False, True, False)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (U.DeploymentConfig(max_failure_percentage=101), "config.max_failure_percentage"),
        (U.DeploymentConfig(max_parallel=-1), "config.max_parallel"),
        (U.DeploymentConfig(canary_percentage=100), "config.canary_percentage"),
        (
            U.DeploymentConfig(device_timeout=duration_pb2.Duration(seconds=0)),
            "config.device_timeout",
        ),
        (
            U.DeploymentConfig(validation_duration=duration_pb2.Duration(seconds=-1)),
            "config.validation_duration",
        ),
        (U.DeploymentConfig(waves=[U.Wave(cumulative_percentage=50)]), "config.waves"),
        (
            U.DeploymentConfig(
                waves=[U.Wave(cumulative_percentage=50), U.Wave(cumulative_percentage=50)]
            ),
            "config.waves[1].cumulative_percentage",
        ),
        (
            U.DeploymentConfig(health_gates=[U.HealthGate(metric="temperature", max_value=1)]),
            "config.health_gates[0].metric",
        ),
        (
            U.DeploymentConfig(
                health_gates=[U.HealthGate(metric="cpu_usage", aggregation="P42", max_value=1)]
            ),
            "config.health_gates[0].aggregation",
        ),
        (
            U.DeploymentConfig(health_gates=[U.HealthGate(metric="cpu_usage")]),
            "config.health_gates[0]",
        ),
    ],
)
def test_invalid_configuration_names_the_field(config: U.DeploymentConfig, field: str) -> None:
    with pytest.raises(InvalidConfig, match=field.replace("[", r"\[").replace("]", r"\]")):
        effective_config(config, U.UpdateStrategy())
