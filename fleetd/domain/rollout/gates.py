"""The promotion gates that need data from outside the counters, judged without IO.

Once a wave's validation window passed, :func:`fleetd.domain.rollout.decide.decide` asks
for these (``CheckGates``); the engine fetches the figures (its wave's heartbeats, each
HealthGate's aggregate of the devices' latest stats) and judges them here, in order:

1. the wave's updated (HEALTHY) devices still heartbeat: the share of silent ones stays
   within ``max_failure_percentage``;
2. every HealthGate in the configured order: the metric's value within its bounds, and
   some value at all (no data fails the gate).

The first failure names the gate; the deployment then halts with that reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fleetd.domain.rollout.decide import FINISHED, Counts
from fleetd.domain.rollout.policy import Policy
from fleetd.v1 import update_pb2

DEVICE_METRICS = frozenset({"cpu_usage", "memory_usage", "disk_usage"})
"""Gate metrics aggregated from the wave's devices' latest stats (by the store); the
others (offline and failure percentages) follow from figures the engine already has."""


@dataclass(frozen=True, slots=True)
class WaveHeartbeats:
    """The wave's updated (HEALTHY) devices, and how many of them went silent."""

    devices: int
    silent: int

    @property
    def offline_percentage(self) -> float:
        return 100.0 * self.silent / self.devices if self.devices else 0.0


def heartbeat_since(
    policy: Policy,
    settled_at: dt.datetime,
    now: dt.datetime,
    *,
    heartbeat_interval: float,
    offline_after: float,
) -> dt.datetime:
    """Since when a device must have heartbeated to count as alive: the wave's settling
    when the window holds at least one heartbeat interval, else the offline threshold."""
    if policy.validation_seconds >= heartbeat_interval:
        return settled_at  # every updated device heartbeated during the window
    return now - dt.timedelta(seconds=offline_after)


def heartbeat_failure(heard: WaveHeartbeats, policy: Policy) -> str | None:
    """Why the silent devices fail the wave, or None."""
    if heard.silent and heard.offline_percentage > policy.max_failure_percentage:
        return f"{heard.silent} of {heard.devices} updated devices stopped heartbeating"
    return None


def failure_percentage(counts: Counts, wave: int) -> float:
    """The wave's failed and rolled-back devices among those that finished."""
    finished = sum(counts.get(s, wave) for s in FINISHED)
    failures = counts.get("failed", wave) + counts.get("rolled_back", wave)
    return 100.0 * failures / finished if finished else 0.0


def gate_failure(gate: update_pb2.HealthGate, value: float | None) -> str | None:
    """Why ``gate`` fails with ``value`` (None: no data), or None when it holds."""
    name = f"health gate {gate.aggregation}({gate.metric})"
    if value is None:
        return f"{name}: no data from the wave's devices"
    if (gate.HasField("min_value") and value < gate.min_value) or (
        gate.HasField("max_value") and value > gate.max_value
    ):
        low = gate.min_value if gate.HasField("min_value") else "-inf"
        high = gate.max_value if gate.HasField("max_value") else "inf"
        return f"{name} = {value:.2f} outside [{low}, {high}]"
    return None
