"""What a deployment does next, decided without IO from its counters and timings.

The engine (``fleetd.services.rollout.engine``) reads a :class:`Snapshot` of one deployment (its
row and the summed ``deployment_counters``), asks :func:`decide`, carries the decision
out in PostgreSQL and asks again on the next tick. Each decision is idempotent against
the stored state, so a crash between two ticks only repeats a decision, never skips or
doubles one. The rules (docs/rollouts.md):

- **halt** (FAILED, or ROLLING_BACK with auto_rollback) when the unacknowledged failures
  (failed + rolled back - acknowledged) exceed ``max_failure_percentage`` of the devices
  that finished (healthy + failed + rolled back), once at least
  :data:`MIN_SAMPLE` devices finished (or every device to update, when fewer);
- **assign** the current wave's waiting devices, at most ``max_parallel`` in flight
  across the deployment (0: no limit);
- a wave whose devices all ended is **settled**; after ``validation_duration`` its gates
  are checked: no unacknowledged rollback, the wave's own failure share within budget,
  then the gates that need IO (devices still heartbeating, HealthGate metrics: the
  engine evaluates them and asks again with a :class:`GateResult`);
- then the next wave is **promoted**, or **awaits approval** when it is MANUAL;
- the last wave ending within budget **completes** the deployment;
- a rollback **finishes** when no target's rollback assignments are still in flight.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleetd.domain.rollout.policy import Policy

WAITING = "waiting"
IN_FLIGHT = ("pending", "downloading", "verifying", "applying")
FINISHED = ("healthy", "rolled_back", "failed")
"""The outcomes the failure budget counts."""
TERMINAL = frozenset({*FINISHED, "cancelled", "skipped"})
"""Target states nothing moves out of (but a rollback: healthy -> rolled_back)."""
ROLLBACK_PENDING = "rollback_pending"
"""Counter of targets whose rollback assignments have not all ended."""
MIN_SAMPLE = 10
"""Devices that must have finished before the failure budget can halt a deployment."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Summed deployment counters: wave -> state -> devices."""

    by_wave: Mapping[int, Mapping[str, int]] = field(default_factory=dict)

    def get(self, state: str, wave: int | None = None) -> int:
        """Devices in ``state``, in ``wave`` or across all waves."""
        if wave is not None:
            return self.by_wave.get(wave, {}).get(state, 0)
        return sum(states.get(state, 0) for states in self.by_wave.values())

    def in_flight(self, wave: int | None = None) -> int:
        return sum(self.get(s, wave) for s in IN_FLIGHT)

    def total(self, wave: int | None = None) -> int:
        """Every target (of ``wave``), skipped ones included."""
        waves = self.by_wave.values() if wave is None else [self.by_wave.get(wave, {})]
        return sum(n for states in waves for s, n in states.items() if s != ROLLBACK_PENDING)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One deployment as stored, at ``now``."""

    state: str
    current_wave: int
    total_waves: int
    wave_settled_at: dt.datetime | None
    now: dt.datetime
    counts: Counts
    acknowledged_failures: int = 0
    acknowledged_rolled_back: int = 0


@dataclass(frozen=True, slots=True)
class GateResult:
    """The IO-bound gates of a wave (heartbeats, HealthGate metrics), as the engine found
    them; ``reason`` says which failed."""

    passed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do now."""

    why: str


@dataclass(frozen=True, slots=True)
class Start:
    """PENDING -> RUNNING: the first wave starts."""


@dataclass(frozen=True, slots=True)
class Assign:
    """Assign up to ``count`` waiting devices of ``wave``."""

    wave: int
    count: int


@dataclass(frozen=True, slots=True)
class Settle:
    """Every device of ``wave`` ended: its validation window starts now."""

    wave: int


@dataclass(frozen=True, slots=True)
class CheckGates:
    """The validation window of ``wave`` passed: evaluate the IO-bound gates and decide
    again with their :class:`GateResult`."""

    wave: int


@dataclass(frozen=True, slots=True)
class Promote:
    """Start ``wave`` (the next one)."""

    wave: int


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    """``wave`` waits for ApproveWave (the deployment is PAUSED, awaiting_approval)."""

    wave: int


@dataclass(frozen=True, slots=True)
class Halt:
    """The failure budget or a gate failed: FAILED (or ROLLING_BACK with auto_rollback)."""

    reason: str
    rollback: bool


@dataclass(frozen=True, slots=True)
class Complete:
    """Every target ended within the failure budget."""


@dataclass(frozen=True, slots=True)
class FinishRollback:
    """ROLLING_BACK -> ROLLED_BACK: every rollback assignment ended."""


Decision = (
    Wait
    | Start
    | Assign
    | Settle
    | CheckGates
    | Promote
    | AwaitApproval
    | Halt
    | Complete
    | FinishRollback
)


def budget_exceeded(counts: Counts, policy: Policy, acknowledged_failures: int) -> str | None:
    """Why the failure budget halts the deployment, or None while it holds."""
    finished = sum(counts.get(s) for s in FINISHED)
    failures = counts.get("failed") + counts.get("rolled_back") - acknowledged_failures
    to_update = counts.total() - counts.get("skipped") - counts.get("cancelled")
    if finished == 0 or finished < min(MIN_SAMPLE, to_update) or failures <= 0:
        return None
    share = 100.0 * failures / finished
    if share <= policy.max_failure_percentage:
        return None
    return (
        f"halted: {failures} of {finished} finished devices failed or rolled back "
        f"({share:.1f}% > max_failure_percentage {policy.max_failure_percentage:g}%)"
    )


def _wave_gates(snapshot: Snapshot, policy: Policy, wave: int) -> str | None:
    counts = snapshot.counts
    rolled_back = counts.get("rolled_back") - snapshot.acknowledged_rolled_back
    if rolled_back > 0:
        return f"halted: wave {wave} did not validate: {rolled_back} device(s) rolled back"
    finished = sum(counts.get(s, wave) for s in FINISHED)
    unacknowledged = (
        counts.get("failed") + counts.get("rolled_back") - snapshot.acknowledged_failures
    )
    failures = min(counts.get("failed", wave) + counts.get("rolled_back", wave), unacknowledged)
    if finished and failures > 0 and 100.0 * failures / finished > policy.max_failure_percentage:
        return (
            f"halted: wave {wave} did not validate: {failures} of its {finished} devices "
            f"failed ({100.0 * failures / finished:.1f}% > "
            f"{policy.max_failure_percentage:g}%)"
        )
    return None


def decide(snapshot: Snapshot, policy: Policy, gates: GateResult | None = None) -> Decision:
    """The next step of a deployment; see the module docstring for the rules."""
    counts = snapshot.counts
    if snapshot.state == "pending":
        return Start()
    if snapshot.state == "rolling_back":
        pending = counts.get(ROLLBACK_PENDING)
        if pending > 0:
            return Wait(f"{pending} device(s) still rolling back")
        return FinishRollback()
    if snapshot.state != "running":
        return Wait(f"deployment is {snapshot.state}")
    reason = budget_exceeded(counts, policy, snapshot.acknowledged_failures)
    if reason is not None:
        return Halt(reason, policy.auto_rollback)
    wave = snapshot.current_wave
    waiting = counts.get(WAITING, wave)
    if waiting > 0:
        room = waiting
        if policy.max_parallel:
            room = min(waiting, policy.max_parallel - counts.in_flight())
        if room <= 0:
            return Wait(f"max_parallel ({policy.max_parallel}) devices in flight")
        return Assign(wave, room)
    if counts.in_flight(wave) > 0:
        return Wait(f"wave {wave}: {counts.in_flight(wave)} device(s) in flight")
    if wave >= snapshot.total_waves - 1:
        return Complete()
    if snapshot.wave_settled_at is None:
        return Settle(wave)
    remaining = (
        policy.validation_seconds - (snapshot.now - snapshot.wave_settled_at).total_seconds()
    )
    if remaining > 0:
        return Wait(f"wave {wave} validating for {remaining:.1f} s more")
    reason = _wave_gates(snapshot, policy, wave)
    if reason is not None:
        return Halt(reason, policy.auto_rollback)
    if gates is None:
        return CheckGates(wave)
    if not gates.passed:
        return Halt(f"halted: wave {wave} did not validate: {gates.reason}", policy.auto_rollback)
    if policy.manual_approval[wave + 1]:
        return AwaitApproval(wave + 1)
    return Promote(wave + 1)


def target_state(states: list[str]) -> str:
    """A device's state in a deployment from the states of its assignments (one per
    artifact of the update that fits its type): the least advanced while any is in
    flight; once all ended, failed if any failed, else rolled_back if any rolled back,
    else cancelled if all were cancelled, else healthy."""
    if not states:
        return "pending"
    open_states = [s for s in states if s in IN_FLIGHT]
    if open_states:
        return min(open_states, key=IN_FLIGHT.index)
    for outcome in ("failed", "rolled_back"):
        if outcome in states:
            return outcome
    if all(s == "cancelled" for s in states):
        return "cancelled"
    return "healthy"


@dataclass(frozen=True, slots=True)
class TargetStates:
    """A target as stored, beside the current states of its assignments."""

    device_id: str
    wave: int
    state: str
    assignment_states: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StateChange:
    """A target whose state follows from its assignments' and differs from the stored one."""

    device_id: str
    wave: int
    old: str
    new: str


def state_changes(targets: Iterable[TargetStates]) -> list[StateChange]:
    """The targets whose :func:`target_state` changed (after assignments were withdrawn)."""
    changes: list[StateChange] = []
    for t in targets:
        new = target_state(list(t.assignment_states))
        if new != t.state:
            changes.append(StateChange(t.device_id, t.wave, t.state, new))
    return changes
