"""Pure-Python reference for the heartbeat batcher.

``core_ext._batcher`` (Cython) is the hot-path twin of this module and must behave
identically; this module defines what "identically" means. The outputs are the shared types
of ``core_ext.heartbeat_types``, so results of the two compare equal.

The batcher is a two-stage buffer over the stream of heartbeats ``add`` accepts:

    add() --> flush window --drain()--> Flush (Redis commands, transitions, rollups)
                                 \\--> COPY window --drain_copy_records()--> COPY records

The gateway drains the flush window every few tens of milliseconds (one Redis pipeline)
and the COPY window about once a second (one PostgreSQL COPY), so the second coalescing
level lives here too and the gateway does no per-heartbeat Python work besides ``add``.

Invariants:

* **Flush window.** At most one pending entry per device. ``len(batcher)`` is the number
  of distinct devices added since the last ``drain()`` and not forgotten since. A pending
  entry holds the values of the heartbeat with the greatest ``seen_at`` among those
  coalesced into it; on a tie the later ``add`` call wins. Its ``count`` is the number of
  heartbeats coalesced into it (always >= 1). ``drain()`` reports the pending devices in
  the order of their first arrival since the last drain (a device forgotten and re-added
  counts from its re-add), then empties the window.
* **Redis commands.** For the drained devices, in that order: one ``ZADD last_seen_key
  seen_at device_id ...`` (all devices in one command), then per device ``HSET
  <stats key> seen_at .. state .. cpu .. mem .. disk .. uptime .. count ..`` and ``EXPIRE
  <stats key> stats_ttl``, the stats key being ``stats_key_prefix + device_id +
  stats_key_suffix``. No commands when nothing was pending.
* **Transitions.** The batcher remembers, per device, the state it last drained for it,
  until ``forget``. Draining a device whose state differs from that memory yields a
  transition; a device with no memory yields one with previous state -1 (valid states are
  never negative). Transitions follow the drain order.
* **COPY window.** Every record ``drain()`` drains also enters the COPY window, replacing
  that device's entry there (the later drain wins, whatever its ``seen_at``: PostgreSQL's
  merge never moves ``last_seen`` backwards) but keeping its position: devices appear in
  the order of their first arrival since the last ``drain_copy_records()``. Heartbeats
  still in the flush window are not in it: ``drain()`` first, then
  ``drain_copy_records()``, flushes everything.
* **COPY records** carry ``seen_at`` as ``datetime.fromtimestamp(seen_at, timezone.utc)``
  (rounded half-even to the microsecond), which is why ``add`` refuses a ``seen_at``
  outside years 1-9999.
* **Groups.** ``group_id(device_type, version)`` interns a device group: ids are 0, 1, 2...
  in first-call order and are never forgotten; at most ``MAX_GROUPS`` exist. ``add`` takes
  the device's group id, so a heartbeat costs no string work for its group.
* **Rollups.** Every accepted heartbeat counts (coalesced or not, forgotten later or not:
  rollups describe the heartbeats received) into the accumulator of its group and its
  bucket ``floor(seen_at / rollup_interval)``. ``drain()`` reports, per (bucket, group) in
  order of first appearance since the last drain, one row per metric of ``METRICS``:
  ``(bucket_start, device_type, version, metric, count, sum, min, max)``. ``sum`` adds in
  ``add`` order starting from -0.0; ``min``/``max`` keep the first of equal values
  (``-0.0``/``0.0``). A per-minute writer folds rows with equal ``(bucket_start,
  device_type, version, metric)`` across drains exactly: counts and sums add, mins and
  maxes combine. ``rollup_interval`` divides a day, so buckets align to calendar minutes,
  hours or days.
* **Age.** ``oldest_pending_age(now)`` is ``now`` minus the least ``seen_at`` accepted
  since the last drain (0.0 when none): a caller that stamps ``seen_at`` with its clock
  flushes by age with it, and by size with ``add``'s result.
* ``add`` validates everything before it changes anything: a refused heartbeat raises and
  leaves the batcher untouched (it is not counted anywhere). Values are never clamped.
* ``add`` never blocks and never drops: it only signals (returns True) once ``max_pending``
  or more devices are pending in the flush window; draining is the caller's job. The COPY
  window is bounded by the number of devices.
* Not thread-safe: share a batcher between threads only under a lock.

Argument conversion mirrors the C-typed arguments of the compiled twin: ``device_id`` and
the strings given to the constructor and ``group_id`` must be exactly ``str``; ``seen_at``
and the percentages accept any real number (``__float__`` or ``__index__``, never ``str``)
and are stored as ``float``; ``group``, ``state`` and ``uptime_seconds`` accept any integer
(``__index__``, never ``float``) and are stored as ``int``.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import sys
from typing import Final, NoReturn, SupportsFloat, SupportsIndex, final

from core_ext.heartbeat_types import (
    METRICS,
    CopyRecord,
    Flush,
    RedisCommand,
    Rollup,
    StateTransition,
)

__all__ = [
    "MAX_GROUPS",
    "MAX_SEEN_AT",
    "MAX_STATE",
    "MAX_STATS_TTL",
    "MAX_UPTIME_SECONDS",
    "METRICS",
    "MIN_SEEN_AT",
    "NEVER_DRAINED",
    "CopyRecord",
    "Flush",
    "HeartbeatBatcher",
    "RedisCommand",
    "Rollup",
    "StateTransition",
]

NEVER_DRAINED: Final = -1
"""The ``previous_state`` reported for a device this batcher has no drained state for."""

MAX_STATE: Final = 2**31 - 1
"""States are int32-ranged, non-negative codes (``0 <= state <= MAX_STATE``)."""

MAX_UPTIME_SECONDS: Final = 2**63 - 1
"""``uptime_seconds`` is int64-ranged and non-negative."""

MIN_SEEN_AT: Final = -62135596800.0
"""The least ``seen_at`` accepted: 0001-01-01T00:00:00Z, datetime's first second."""

MAX_SEEN_AT: Final = 253402300799.0
"""The greatest ``seen_at`` accepted: 9999-12-31T23:59:59Z, datetime's last whole second."""

MAX_GROUPS: Final = 65536
"""``group_id`` refuses to intern more device groups than this (a bound on memory and on
rollup rows, whatever device types and versions a fleet reports)."""

MAX_STATS_TTL: Final = 2**31 - 1
"""The greatest ``stats_ttl`` (seconds) accepted."""

_DAY: Final = 86400


def _as_double(value: SupportsFloat | SupportsIndex) -> float:
    """Convert ``value`` as a C ``double`` argument does.

    ``math.isfinite`` converts exactly that way (``__float__``, then ``__index__``; ``str``,
    ``bytes`` and ``None`` raise TypeError), whereas ``float()`` alone would parse strings.
    """
    math.isfinite(value)
    return float(value)


def _require_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _require_str(name: str, value: str) -> None:
    if type(value) is not str:
        raise TypeError(f"{name} must be str, not {type(value).__name__}")


def _integer(name: str, value: SupportsIndex, minimum: int, maximum: int) -> int:
    """Convert ``value`` as an integer (``__index__``; floats are refused) within bounds."""
    number = operator.index(value)
    if not minimum <= number <= maximum:
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {number!r}")
    return int(number)


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


@final
class _Pending:
    """The coalesced heartbeat of one device pending in the flush window."""

    __slots__ = (
        "count",
        "cpu_percent",
        "disk_percent",
        "memory_percent",
        "seen_at",
        "state",
        "uptime_seconds",
    )

    def __init__(
        self,
        seen_at: float,
        state: int,
        cpu_percent: float,
        memory_percent: float,
        disk_percent: float,
        uptime_seconds: int,
    ) -> None:
        self.seen_at = seen_at
        self.state = state
        self.cpu_percent = cpu_percent
        self.memory_percent = memory_percent
        self.disk_percent = disk_percent
        self.uptime_seconds = uptime_seconds
        self.count = 1


@final
class _Accumulator:
    """count, sum, min and max of each metric over the heartbeats of one (bucket, group)."""

    __slots__ = ("count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.count = 0
        # -0.0 is the identity of float addition (0.0 + -0.0 would lose the sign).
        self.total = [-0.0] * len(METRICS)
        self.minimum = [math.inf] * len(METRICS)
        self.maximum = [-math.inf] * len(METRICS)

    def add(self, values: tuple[float, float, float]) -> None:
        self.count += 1
        for i, value in enumerate(values):
            self.total[i] += value
            if value < self.minimum[i]:
                self.minimum[i] = value
            if value > self.maximum[i]:
                self.maximum[i] = value


@final
class HeartbeatBatcher:
    """Coalesces heartbeats per device and turns them into ready-to-send flushes.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie), counts the heartbeats coalesced and folds each into its group's rollup.
    ``drain`` returns a ``Flush``: the Redis commands for the pending devices in
    first-arrival order, the state transitions and the rollups; the drained records move on
    to the COPY window, which ``drain_copy_records`` empties into rows for PostgreSQL.
    """

    __slots__ = (
        "_accumulators",
        "_added",
        "_copy",
        "_group_ids",
        "_groups",
        "_last_seen_key",
        "_last_state",
        "_max_pending",
        "_pending",
        "_rollup_interval",
        "_stats_key_prefix",
        "_stats_key_suffix",
        "_stats_ttl",
        "_window_heartbeats",
        "_window_max",
        "_window_min",
    )

    def __init__(
        self,
        max_pending: int = 65536,
        *,
        last_seen_key: str = "last_seen",
        stats_key_prefix: str = "stats:",
        stats_key_suffix: str = "",
        stats_ttl: int = 86400,
        rollup_interval: int = 60,
    ) -> None:
        """Create an empty batcher; ``add`` signals a flush at ``max_pending`` devices.

        ``last_seen_key`` names the ZSET the ZADD writes; a device's stats hash is
        ``stats_key_prefix + device_id + stats_key_suffix``, expiring ``stats_ttl`` seconds
        after its last flush. Rollup buckets are ``rollup_interval`` seconds long.

        Raises TypeError if a key part is not a ``str`` or a number is not an integer;
        ValueError unless ``1 <= max_pending <= sys.maxsize``, ``1 <= stats_ttl <=
        MAX_STATS_TTL`` and ``rollup_interval`` is a positive divisor of 86400.
        """
        _require_str("last_seen_key", last_seen_key)
        _require_str("stats_key_prefix", stats_key_prefix)
        _require_str("stats_key_suffix", stats_key_suffix)
        self._max_pending = _integer("max_pending", max_pending, 1, sys.maxsize)
        self._stats_ttl = _integer("stats_ttl", stats_ttl, 1, MAX_STATS_TTL)
        interval = _integer("rollup_interval", rollup_interval, 1, _DAY)
        if _DAY % interval:
            raise ValueError(f"rollup_interval must divide 86400 (a day), got {interval}")
        self._rollup_interval = interval
        self._last_seen_key = last_seen_key
        self._stats_key_prefix = stats_key_prefix
        self._stats_key_suffix = stats_key_suffix
        # Flush window: device_id -> its coalesced heartbeat; insertion order is
        # first-arrival order.
        self._pending: dict[str, _Pending] = {}
        # device_id -> the state last drained for it.
        self._last_state: dict[str, int] = {}
        # COPY window: device_id -> (seen_at, cpu, memory, disk, uptime) of its last
        # drained record; insertion order is first-arrival order.
        self._copy: dict[str, tuple[float, float, float, float, int]] = {}
        self._groups: list[tuple[str, str]] = []
        self._group_ids: dict[tuple[str, str], int] = {}
        # (bucket, group) -> accumulator, in order of first appearance since the last drain.
        self._accumulators: dict[tuple[int, int], _Accumulator] = {}
        self._window_heartbeats = 0
        self._window_min = math.inf
        self._window_max = -math.inf
        self._added = 0

    def group_id(self, device_type: str, version: str) -> int:
        """The id of the device group ``(device_type, version)``, interned on first use.

        Ids are 0, 1, 2... in first-call order and stay valid for the batcher's life. Raises
        TypeError if either is not a ``str``; ValueError when the group is new and
        ``MAX_GROUPS`` groups exist already.
        """
        _require_str("device_type", device_type)
        _require_str("version", version)
        key = (device_type, version)
        group = self._group_ids.get(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                raise ValueError(
                    f"too many device groups (at most {MAX_GROUPS}); "
                    f"cannot add {device_type!r} {version!r}"
                )
            group = len(self._groups)
            self._groups.append(key)
            self._group_ids[key] = group
        return group

    def add(
        self,
        device_id: str,
        group: int,
        seen_at: float,
        state: int,
        cpu_percent: float,
        memory_percent: float,
        disk_percent: float,
        uptime_seconds: int,
    ) -> bool:
        """Coalesce one heartbeat; return True when the caller should drain now.

        ``group`` is the device's ``group_id``. The result is ``len(self) >=
        self.max_pending`` after the call. Nothing is ever dropped or blocked on. Raises
        TypeError if ``device_id`` is not a ``str``, a value field is not a real number or
        ``group``/``state``/``uptime_seconds`` is not an integer; ValueError if
        ``device_id`` is empty, ``group`` is not an id ``group_id`` returned, ``seen_at`` is
        not a finite Unix time in ``[MIN_SEEN_AT, MAX_SEEN_AT]``, a percentage is NaN or
        infinite, ``state`` is outside ``[0, 2**31 - 1]`` or ``uptime_seconds`` is outside
        ``[0, 2**63 - 1]``. A refused heartbeat changes nothing.
        """
        # Conversions first, in argument order: the compiled twin's C-typed signature
        # converts its arguments before its body validates any value.
        _require_str("device_id", device_id)
        seen = _as_double(seen_at)
        cpu = _as_double(cpu_percent)
        memory = _as_double(memory_percent)
        disk = _as_double(disk_percent)
        # Then value checks, in argument order.
        if not device_id:
            raise ValueError("device_id must not be empty")
        group_index = operator.index(group)
        if not 0 <= group_index < len(self._groups):
            raise ValueError(
                f"group must be an id group_id() returned (0 <= group < "
                f"{len(self._groups)}), got {group_index!r}"
            )
        if not MIN_SEEN_AT <= seen <= MAX_SEEN_AT:
            raise ValueError(
                f"seen_at must be a finite Unix time in [{MIN_SEEN_AT}, {MAX_SEEN_AT}], "
                f"got {seen!r}"
            )
        state_code = _integer("state", state, 0, MAX_STATE)
        _require_finite("cpu_percent", cpu)
        _require_finite("memory_percent", memory)
        _require_finite("disk_percent", disk)
        uptime = _integer("uptime_seconds", uptime_seconds, 0, MAX_UPTIME_SECONDS)

        self._added += 1
        entry = self._pending.get(device_id)
        if entry is None:
            self._pending[device_id] = _Pending(seen, state_code, cpu, memory, disk, uptime)
        else:
            entry.count += 1
            if seen >= entry.seen_at:
                entry.seen_at = seen
                entry.state = state_code
                entry.cpu_percent = cpu
                entry.memory_percent = memory
                entry.disk_percent = disk
                entry.uptime_seconds = uptime

        key = (math.floor(seen / self._rollup_interval), group_index)
        accumulator = self._accumulators.get(key)
        if accumulator is None:
            accumulator = self._accumulators[key] = _Accumulator()
        accumulator.add((cpu, memory, disk))
        self._window_heartbeats += 1
        if seen < self._window_min:
            self._window_min = seen
        if seen > self._window_max:
            self._window_max = seen
        return len(self._pending) >= self._max_pending

    def __len__(self) -> int:
        """The number of distinct devices pending in the flush window."""
        return len(self._pending)

    @property
    def added(self) -> int:
        """The number of heartbeats ``add`` accepted since construction."""
        return self._added

    @property
    def max_pending(self) -> int:
        """The pending-device count at which ``add`` starts returning True."""
        return self._max_pending

    @property
    def rollup_interval(self) -> int:
        """The length of a rollup bucket, in seconds."""
        return self._rollup_interval

    def oldest_pending_age(self, now: float) -> float:
        """``now`` minus the least ``seen_at`` accepted since the last drain; 0.0 if none."""
        now_value = _as_double(now)
        if not self._window_heartbeats:
            return 0.0
        return now_value - self._window_min

    def drain(self) -> Flush:
        """Empty the flush window into a ``Flush``; the records move to the COPY window.

        ``redis_commands``: one ZADD, then an HSET and an EXPIRE per drained device, in
        first-arrival order. ``transitions``: ``(device_id, previous_state, new_state)`` for
        each drained device whose state differs from the one last drained for it (-1 if
        never drained); the drained state becomes the remembered one. ``rollups``: per
        (bucket, group) seen since the last drain, one ``(bucket_start, device_type,
        version, metric, count, sum, min, max)`` row per metric.
        """
        pending, self._pending = self._pending, {}
        commands: list[RedisCommand] = []
        transitions: list[StateTransition] = []
        if pending:
            zadd: list[str | float] = ["ZADD", self._last_seen_key]
            for device_id, entry in pending.items():
                zadd.append(entry.seen_at)
                zadd.append(device_id)
            commands.append(tuple(zadd))
        for device_id, entry in pending.items():
            key = self._stats_key_prefix + device_id + self._stats_key_suffix
            commands.append(
                (
                    "HSET",
                    key,
                    "seen_at",
                    entry.seen_at,
                    "state",
                    entry.state,
                    "cpu",
                    entry.cpu_percent,
                    "mem",
                    entry.memory_percent,
                    "disk",
                    entry.disk_percent,
                    "uptime",
                    entry.uptime_seconds,
                    "count",
                    entry.count,
                )
            )
            commands.append(("EXPIRE", key, self._stats_ttl))
            previous = self._last_state.get(device_id, NEVER_DRAINED)
            if entry.state != previous:
                transitions.append((device_id, previous, entry.state))
                self._last_state[device_id] = entry.state
            # Assigning an existing key keeps its position: first arrival order.
            self._copy[device_id] = (
                entry.seen_at,
                entry.cpu_percent,
                entry.memory_percent,
                entry.disk_percent,
                entry.uptime_seconds,
            )

        rollups: list[Rollup] = []
        for (bucket, group), acc in self._accumulators.items():
            bucket_start = _utc(float(bucket * self._rollup_interval))
            device_type, version = self._groups[group]
            for i, metric in enumerate(METRICS):
                rollups.append(
                    (
                        bucket_start,
                        device_type,
                        version,
                        metric,
                        acc.count,
                        acc.total[i],
                        acc.minimum[i],
                        acc.maximum[i],
                    )
                )
        interval = (self._window_min, self._window_max) if self._window_heartbeats else None
        flush = Flush(
            commands, transitions, rollups, interval, len(pending), self._window_heartbeats
        )
        self._accumulators = {}
        self._window_heartbeats = 0
        self._window_min = math.inf
        self._window_max = -math.inf
        return flush

    def drain_copy_records(self) -> list[CopyRecord]:
        """Empty the COPY window: one record per device drained since the last call.

        ``(device_id, seen_at, cpu_percent, memory_percent, disk_percent,
        uptime_seconds)`` per device, ``seen_at`` a UTC datetime, from the device's last
        drained record, in order of first arrival since the last call.
        """
        window, self._copy = self._copy, {}
        return [
            (device_id, _utc(seen_at), cpu, memory, disk, uptime)
            for device_id, (seen_at, cpu, memory, disk, uptime) in window.items()
        ]

    def __reduce__(self) -> NoReturn:
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")

    def forget(self, device_id: str) -> None:
        """Drop the remembered state of ``device_id`` and its entries in both windows.

        Its next drain reports a transition from -1. Rollups keep its heartbeats.
        Forgetting an unknown device is a no-op. Raises TypeError if ``device_id`` is not
        a ``str``.
        """
        _require_str("device_id", device_id)
        self._pending.pop(device_id, None)
        self._copy.pop(device_id, None)
        self._last_state.pop(device_id, None)
