"""A deployment's effective configuration: the request's DeploymentConfig over the
update's UpdateStrategy over server defaults, validated, with the waves made explicit.

IO-free. :func:`effective_config` raises :class:`InvalidConfig` naming the field; the
result is stored with the deployment (``deployments.config``) so a restart decides with
exactly what was accepted. :class:`Policy` is the part the engine decides with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf import duration_pb2

from fleetd.v1 import update_pb2

DEFAULT_STRATEGY = update_pb2.ALL_AT_ONCE
DEFAULT_MAX_FAILURE_PERCENTAGE = 5.0
DEFAULT_CANARY_PERCENTAGE = 10.0
DEFAULT_VALIDATION_SECONDS = 600
DEFAULT_DEVICE_TIMEOUT_SECONDS = 3600
MAX_WAVES = 20
MAX_HEALTH_GATES = 16
MAX_PARALLEL = 1_000_000
MAX_DURATION_SECONDS = 7 * 24 * 3600
MAX_WAVE_NAME = 64

GATE_METRICS = frozenset(
    {"cpu_usage", "memory_usage", "disk_usage", "failure_percentage", "offline_percentage"}
)
"""Metrics a HealthGate may name: latest device stats (cpu/memory/disk, percent) over the
wave's updated devices, and the wave's failure and offline shares (percent)."""
GATE_AGGREGATIONS = frozenset({"AVG", "MIN", "MAX", "P50", "P90", "P95", "P99"})


class InvalidConfig(ValueError):
    """The configuration cannot be used; the message names the field and the rule."""


def _seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def effective_config(
    request: update_pb2.DeploymentConfig, strategy: update_pb2.UpdateStrategy
) -> update_pb2.DeploymentConfig:
    """``request`` over ``strategy`` over the server defaults, validated.

    Numbers and durations fall back when unset (0 / absent); booleans (auto_promote) are
    on when either layer turns them on. The result always has explicit ``waves`` (from
    the strategy unless the request lists its own), every approval resolved to AUTO or
    MANUAL, and every gate's aggregation named.

    Raises:
        InvalidConfig: naming the offending field.
    """
    out = update_pb2.DeploymentConfig()
    out.strategy = request.strategy or strategy.type or DEFAULT_STRATEGY
    if out.strategy not in (update_pb2.ALL_AT_ONCE, update_pb2.ROLLING, update_pb2.CANARY):
        raise InvalidConfig(f"config.strategy: unknown strategy {out.strategy}")
    out.canary_percentage = (
        request.canary_percentage or strategy.canary_percentage or DEFAULT_CANARY_PERCENTAGE
    )
    if not 0 < out.canary_percentage < 100:
        raise InvalidConfig("config.canary_percentage must be above 0 and below 100")
    if request.HasField("validation_duration"):
        validation = _seconds(request.validation_duration)
    elif strategy.HasField("validation_duration"):
        validation = _seconds(strategy.validation_duration)
    else:
        validation = DEFAULT_VALIDATION_SECONDS
    if not 0 <= validation <= MAX_DURATION_SECONDS:
        raise InvalidConfig("config.validation_duration must be between 0 and 7 days")
    out.validation_duration.CopyFrom(_duration(validation))
    out.auto_promote = request.auto_promote or strategy.auto_promote
    out.max_parallel = request.max_parallel or strategy.max_parallel
    if not 0 <= out.max_parallel <= MAX_PARALLEL:
        raise InvalidConfig(f"config.max_parallel must be between 0 (no limit) and {MAX_PARALLEL}")
    out.max_failure_percentage = (
        request.max_failure_percentage
        or strategy.max_failure_percentage
        or DEFAULT_MAX_FAILURE_PERCENTAGE
    )
    if not 0 < out.max_failure_percentage <= 100 or math.isnan(out.max_failure_percentage):
        raise InvalidConfig("config.max_failure_percentage must be above 0 and at most 100")
    if request.HasField("device_timeout"):
        timeout = _seconds(request.device_timeout)
        if not 1 <= timeout <= MAX_DURATION_SECONDS:
            raise InvalidConfig("config.device_timeout must be between 1 second and 7 days")
    else:
        timeout = DEFAULT_DEVICE_TIMEOUT_SECONDS
    out.device_timeout.CopyFrom(_duration(timeout))
    out.auto_rollback = request.auto_rollback
    out.waves.extend(_waves(request, out))
    out.health_gates.extend(_gates(request.health_gates))
    return out


def _waves(
    request: update_pb2.DeploymentConfig, out: update_pb2.DeploymentConfig
) -> list[update_pb2.Wave]:
    auto, manual = update_pb2.Wave.AUTO, update_pb2.Wave.MANUAL
    if not request.waves:
        if out.strategy == update_pb2.CANARY:
            return [
                update_pb2.Wave(
                    name="canary", cumulative_percentage=out.canary_percentage, approval=auto
                ),
                update_pb2.Wave(
                    name="rest",
                    cumulative_percentage=100.0,
                    approval=auto if out.auto_promote else manual,
                ),
            ]
        return [update_pb2.Wave(name="all", cumulative_percentage=100.0, approval=auto)]
    if len(request.waves) > MAX_WAVES:
        raise InvalidConfig(f"config.waves: at most {MAX_WAVES} waves")
    waves: list[update_pb2.Wave] = []
    previous = 0.0
    for index, wave in enumerate(request.waves):
        field = f"config.waves[{index}]"
        pct = wave.cumulative_percentage
        if math.isnan(pct) or not previous < pct <= 100:
            raise InvalidConfig(
                f"{field}.cumulative_percentage must be above the previous wave's "
                f"({previous:g}) and at most 100"
            )
        if len(wave.name) > MAX_WAVE_NAME:
            raise InvalidConfig(f"{field}.name must be at most {MAX_WAVE_NAME} characters")
        if wave.approval not in (update_pb2.Wave.APPROVAL_UNSPECIFIED, auto, manual):
            raise InvalidConfig(f"{field}.approval: unknown value {wave.approval}")
        waves.append(
            update_pb2.Wave(
                name=wave.name or f"wave {index}",
                cumulative_percentage=pct,
                approval=manual if wave.approval == manual else auto,
            )
        )
        previous = pct
    if previous != 100:
        raise InvalidConfig("config.waves: the last wave's cumulative_percentage must be 100")
    return waves


def _gates(gates: Iterable[update_pb2.HealthGate]) -> list[update_pb2.HealthGate]:
    checked: list[update_pb2.HealthGate] = []
    items = list(gates)
    if len(items) > MAX_HEALTH_GATES:
        raise InvalidConfig(f"config.health_gates: at most {MAX_HEALTH_GATES} gates")
    for index, gate in enumerate(items):
        field = f"config.health_gates[{index}]"
        if gate.metric not in GATE_METRICS:
            raise InvalidConfig(
                f"{field}.metric: unknown metric {gate.metric!r}; known: "
                f"{', '.join(sorted(GATE_METRICS))}"
            )
        aggregation = (gate.aggregation or "AVG").upper()
        if aggregation not in GATE_AGGREGATIONS:
            raise InvalidConfig(
                f"{field}.aggregation: unknown aggregation {gate.aggregation!r}; known: "
                f"{', '.join(sorted(GATE_AGGREGATIONS))}"
            )
        if not gate.HasField("min_value") and not gate.HasField("max_value"):
            raise InvalidConfig(f"{field}: set min_value, max_value or both")
        if (
            gate.HasField("min_value")
            and gate.HasField("max_value")
            and gate.min_value > gate.max_value
        ):
            raise InvalidConfig(f"{field}: min_value is above max_value")
        copy = update_pb2.HealthGate()
        copy.CopyFrom(gate)
        copy.aggregation = aggregation
        checked.append(copy)
    return checked


@dataclass(frozen=True, slots=True)
class Policy:
    """What the engine decides with, read from the stored effective config."""

    max_parallel: int
    max_failure_percentage: float
    validation_seconds: float
    device_timeout_seconds: float
    manual_approval: tuple[bool, ...]
    """Per wave: whether it waits for ApproveWave (wave 0's is never used: DeployUpdate
    itself starts it)."""
    auto_rollback: bool
    health_gates: tuple[update_pb2.HealthGate, ...]

    @classmethod
    def of(cls, config: update_pb2.DeploymentConfig) -> Policy:
        return cls(
            max_parallel=config.max_parallel,
            max_failure_percentage=config.max_failure_percentage,
            validation_seconds=_seconds(config.validation_duration),
            device_timeout_seconds=_seconds(config.device_timeout),
            manual_approval=tuple(w.approval == update_pb2.Wave.MANUAL for w in config.waves),
            auto_rollback=config.auto_rollback,
            health_gates=tuple(config.health_gates),
        )
