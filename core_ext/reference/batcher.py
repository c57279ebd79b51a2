"""Pure-Python reference for the heartbeat batcher.

``core_ext._batcher`` (Cython) is the hot-path twin of this module and must behave
identically; this module defines what "identically" means. The outputs are the shared types
of ``core_ext.heartbeat_types``, so results of the two compare equal (rollup sketches
through their bytes).

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
  heartbeats coalesced into it (always >= 1) and its ``sample`` flag the OR of theirs.
  ``drain()`` reports the pending devices in the order of their first arrival since the
  last drain (a device forgotten and re-added counts from its re-add), then empties the
  window.
* **Redis commands.** For the drained devices, in that order: one ``ZADD last_seen_key
  seen_at device_id ...`` (all devices in one command), then per device ``HSET
  <stats key> seen_at .. state .. cpu .. mem .. disk .. uptime .. count ..`` and ``EXPIRE
  <stats key> stats_ttl``, the stats key being ``stats_key_prefix + device_id +
  stats_key_suffix``. No commands when nothing was pending.
* **Transitions.** The batcher remembers, per device, the state it last drained for it,
  until ``forget``. Draining a device whose state differs from that memory yields a
  transition; a device with no memory yields one with previous state -1 (valid states are
  never negative). Transitions follow the drain order.
* **Network rates** (docs/analytics.md 2.2). The batcher also remembers, per device until
  ``forget``, the ``(seen_at, network_rx_bytes, network_tx_bytes, uptime_seconds)`` of the
  heartbeat with the greatest ``seen_at`` it accepted (the later call on a tie). A
  heartbeat's rate of a counter is ``(counter - previous counter) / (seen_at - previous
  seen_at)`` in bytes per second, computed in float from the exact integer difference; it
  is None (unknown, never 0) when there is no previous heartbeat, the gap is not positive
  or exceeds ``max_rate_gap``, the uptime went backwards (a reboot), that counter went
  backwards (a wrap or reset: the other counter's rate still counts), or the quotient is
  not finite. ``max_rate_gap`` is 3 x ``sample_interval``, unbounded when
  ``sample_interval`` is 0.
* **Samples** (2.3). Per device, GCRA with period S = ``sample_interval`` and tolerance
  S/2: a heartbeat is a sample when the device has no memory (its first heartbeat here, or
  after ``forget``) or ``seen_at >= TAT - S/2``; a sample sets ``TAT = max(TAT, seen_at) +
  S`` (the first sets ``TAT = seen_at + S``). S = 0 makes every heartbeat a sample. Over
  any span T at most ``(T + S/2)/S + 1`` heartbeats of one device are samples; a device whose
  heartbeats come every S or slower has all of them sampled, and one whose intervals
  jitter around S has all sampled as long as its accumulated earliness stays under S/2
  (with independent ±15 % jitter about 2 % are not: a limiter of exactly 1/S cannot keep
  every beat of a stream whose mean rate is 1/S).
* **COPY window.** Every record ``drain()`` drains also enters the COPY window, replacing
  that device's entry there (the later drain wins, whatever its ``seen_at``: PostgreSQL's
  merge never moves ``last_seen`` backwards) but keeping its position and OR-ing its
  ``sample`` flag: devices appear in the order of their first arrival since the last
  ``drain_copy_records()``. Heartbeats still in the flush window are not in it:
  ``drain()`` first, then ``drain_copy_records()``, flushes everything.
* **COPY records** (``core_ext.heartbeat_types.CopyRecord``) carry ``seen_at`` as
  ``datetime.fromtimestamp(seen_at, timezone.utc)`` (rounded half-even to the
  microsecond), which is why ``add`` refuses a ``seen_at`` outside years 1-9999; a NaN
  ``temperature`` (no sensor) becomes None.
* **Groups.** ``group_id(device_type, version)`` interns a device group: ids are 0, 1, 2...
  in first-call order and are never forgotten; at most ``MAX_GROUPS`` exist. ``add`` takes
  the device's group id, so a heartbeat costs no string work for its group.
* **Rollups.** Every accepted heartbeat counts (coalesced or not, forgotten later or not:
  rollups describe the heartbeats received) into the accumulator of its group and its
  bucket ``floor(seen_at / rollup_interval)``: one ``Sketch`` (relative accuracy 0.01) per
  metric of ``METRICS``, created at its first reading, fed each reading of that metric
  (``cpu_percent`` as ``cpu_usage``, ``memory_percent`` as ``memory_usage``,
  ``disk_percent`` as ``disk_usage``, the network rates as ``network_*_bytes``; a NaN
  temperature or a None rate is no reading). ``drain()`` reports, per (bucket, group) in
  order of first appearance since the last drain, one row per metric that has a sketch:
  ``(bucket_start, device_type, version, metric, count, sum, min, max, sketch)``, the
  statistics being the sketch's and the sketch handed over. Rows with equal
  ``(bucket_start, device_type, version, metric)`` from several drains fold exactly with
  ``Sketch.merge`` (sums up to float rounding). ``rollup_interval`` divides a day, so
  buckets align to calendar minutes, hours or days.
* **Age.** ``oldest_pending_age(now)`` is ``now`` minus the least ``seen_at`` accepted
  since the last drain (0.0 when none): a caller that stamps ``seen_at`` with its clock
  flushes by age with it, and by size with ``add``'s result.
* ``add`` validates everything before it changes anything: a refused heartbeat raises and
  leaves the batcher untouched (it is not counted anywhere). Values are never clamped.
* ``add`` never blocks and never drops: it only signals (returns True) once ``max_pending``
  or more devices are pending in the flush window; draining is the caller's job. The COPY
  window and the per-device memories are bounded by the number of devices.
* Not thread-safe: share a batcher between threads only under a lock.

Argument conversion mirrors the C-typed arguments of the compiled twin: ``device_id`` and
the strings given to the constructor and ``group_id`` must be exactly ``str``; ``seen_at``,
the percentages, gigabytes, load averages and ``temperature`` accept any real number
(``__float__`` or ``__index__``, never ``str``) and are stored as ``float``; ``group``,
``state``, ``uptime_seconds``, the megabytes and the network counters accept any integer
(``__index__``, never ``float``) and are stored as ``int``.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import sys
from typing import Final, NoReturn, SupportsFloat, SupportsIndex, TypeAlias, final

from core_ext.heartbeat_types import (
    METRICS,
    CopyRecord,
    Flush,
    RedisCommand,
    Rollup,
    StateTransition,
)
from core_ext.reference.sketch import Sketch

__all__ = [
    "MAX_COUNTER",
    "MAX_GROUPS",
    "MAX_MEGABYTES",
    "MAX_SAMPLE_INTERVAL",
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

MAX_MEGABYTES: Final = 2**63 - 1
"""``memory_used_mb`` and ``memory_total_mb`` are int64-ranged and non-negative."""

MAX_COUNTER: Final = 2**64 - 1
"""``network_rx_bytes`` and ``network_tx_bytes`` are uint64 counters."""

MIN_SEEN_AT: Final = -62135596800.0
"""The least ``seen_at`` accepted: 0001-01-01T00:00:00Z, datetime's first second."""

MAX_SEEN_AT: Final = 253402300799.0
"""The greatest ``seen_at`` accepted: 9999-12-31T23:59:59Z, datetime's last whole second."""

MAX_GROUPS: Final = 65536
"""``group_id`` refuses to intern more device groups than this (a bound on memory and on
rollup rows, whatever device types and versions a fleet reports)."""

MAX_STATS_TTL: Final = 2**31 - 1
"""The greatest ``stats_ttl`` (seconds) accepted."""

MAX_SAMPLE_INTERVAL: Final = 1e9
"""The greatest ``sample_interval`` (seconds, ~31 years) accepted."""

_DAY: Final = 86400

_Values: TypeAlias = tuple[
    float,
    float,
    float,
    int,
    int,
    int,
    float,
    float,
    float,
    float,
    float,
    float | None,
    float | None,
    float | None,
]
"""A ``CopyRecord``'s fields between ``seen_at`` and ``sample``."""


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


def _rate(counter: int, previous: int, seconds: float) -> float | None:
    """Bytes per second between two readings of a counter; None when it went backwards."""
    if counter < previous:
        return None
    rate = (counter - previous) / seconds
    return rate if math.isfinite(rate) else None


@final
class _Pending:
    """The coalesced heartbeat of one device pending in the flush window (or the COPY
    window, which keeps the last drained one)."""

    __slots__ = ("count", "sample", "seen_at", "state", "values")

    def __init__(self, seen_at: float, state: int, values: _Values, sample: bool) -> None:
        self.seen_at = seen_at
        self.state = state
        # The CopyRecord fields after seen_at: cpu ... network_tx_rate.
        self.values = values
        self.sample = sample
        self.count = 1


@final
class _Device:
    """What the batcher remembers of a device between heartbeats: its latest counters, for
    rates, and its GCRA theoretical arrival time, for sampling."""

    __slots__ = ("rx", "seen_at", "tat", "tx", "uptime")

    def __init__(self, seen_at: float, rx: int, tx: int, uptime: int, tat: float) -> None:
        self.seen_at = seen_at
        self.rx = rx
        self.tx = tx
        self.uptime = uptime
        self.tat = tat


@final
class HeartbeatBatcher:
    """Coalesces heartbeats per device and turns them into ready-to-send flushes.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie), counts the heartbeats coalesced, computes its network rates and sampling
    decision, and folds each into its group's rollup sketches. ``drain`` returns a
    ``Flush``: the Redis commands for the pending devices in first-arrival order, the
    state transitions and the rollups; the drained records move on to the COPY window,
    which ``drain_copy_records`` empties into rows for PostgreSQL.
    """

    __slots__ = (
        "_accumulators",
        "_added",
        "_copy",
        "_devices",
        "_group_ids",
        "_groups",
        "_last_seen_key",
        "_last_state",
        "_max_pending",
        "_max_rate_gap",
        "_pending",
        "_rollup_interval",
        "_sample_interval",
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
        sample_interval: float = 0.0,
    ) -> None:
        """Create an empty batcher; ``add`` signals a flush at ``max_pending`` devices.

        ``last_seen_key`` names the ZSET the ZADD writes; a device's stats hash is
        ``stats_key_prefix + device_id + stats_key_suffix``, expiring ``stats_ttl`` seconds
        after its last flush. Rollup buckets are ``rollup_interval`` seconds long. A device
        gets a sample about every ``sample_interval`` seconds (0: every heartbeat).

        Raises TypeError if a key part is not a ``str``, a number is not an integer or
        ``sample_interval`` not a real number; ValueError unless ``1 <= max_pending <=
        sys.maxsize``, ``1 <= stats_ttl <= MAX_STATS_TTL``, ``rollup_interval`` is a
        positive divisor of 86400 and ``0 <= sample_interval <= MAX_SAMPLE_INTERVAL``.
        """
        _require_str("last_seen_key", last_seen_key)
        _require_str("stats_key_prefix", stats_key_prefix)
        _require_str("stats_key_suffix", stats_key_suffix)
        sample = _as_double(sample_interval)
        self._max_pending = _integer("max_pending", max_pending, 1, sys.maxsize)
        self._stats_ttl = _integer("stats_ttl", stats_ttl, 1, MAX_STATS_TTL)
        interval = _integer("rollup_interval", rollup_interval, 1, _DAY)
        if _DAY % interval:
            raise ValueError(f"rollup_interval must divide 86400 (a day), got {interval}")
        if not 0.0 <= sample <= MAX_SAMPLE_INTERVAL:
            raise ValueError(
                f"sample_interval must be in [0, {MAX_SAMPLE_INTERVAL}] seconds, got {sample!r}"
            )
        self._rollup_interval = interval
        self._sample_interval = sample
        self._max_rate_gap = 3.0 * sample if sample > 0.0 else math.inf
        self._last_seen_key = last_seen_key
        self._stats_key_prefix = stats_key_prefix
        self._stats_key_suffix = stats_key_suffix
        # Flush window: device_id -> its coalesced heartbeat; insertion order is
        # first-arrival order.
        self._pending: dict[str, _Pending] = {}
        # device_id -> the state last drained for it.
        self._last_state: dict[str, int] = {}
        # device_id -> its latest counters and sampling state.
        self._devices: dict[str, _Device] = {}
        # COPY window: device_id -> its last drained record; insertion order is
        # first-arrival order.
        self._copy: dict[str, _Pending] = {}
        self._groups: list[tuple[str, str]] = []
        self._group_ids: dict[tuple[str, str], int] = {}
        # (bucket, group) -> one sketch per metric (None until its first reading), in
        # order of first appearance since the last drain.
        self._accumulators: dict[tuple[int, int], list[Sketch | None]] = {}
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
        memory_used_mb: int,
        memory_total_mb: int,
        disk_used_gb: float,
        disk_total_gb: float,
        load_avg_1m: float,
        load_avg_5m: float,
        load_avg_15m: float,
        temperature: float,
        network_rx_bytes: int,
        network_tx_bytes: int,
    ) -> bool:
        """Coalesce one heartbeat; return True when the caller should drain now.

        ``group`` is the device's ``group_id``; ``temperature`` is NaN when the device has
        no sensor; the network counters are bytes since boot. The result is ``len(self) >=
        self.max_pending`` after the call. Nothing is ever dropped or blocked on. Raises
        TypeError if ``device_id`` is not a ``str``, a real field is not a real number or an
        integer field (``group``, ``state``, ``uptime_seconds``, the megabytes, the
        counters) is not an integer; ValueError if ``device_id`` is empty, ``group`` is not
        an id ``group_id`` returned, ``seen_at`` is not a finite Unix time in
        ``[MIN_SEEN_AT, MAX_SEEN_AT]``, a real field is NaN or infinite (``temperature``:
        infinite), ``state`` is outside ``[0, 2**31 - 1]``, ``uptime_seconds`` or a
        megabyte count outside ``[0, 2**63 - 1]`` or a counter outside ``[0, 2**64 - 1]``.
        A refused heartbeat changes nothing.
        """
        # Conversions first, in argument order: the compiled twin's C-typed signature
        # converts its arguments before its body validates any value.
        _require_str("device_id", device_id)
        seen = _as_double(seen_at)
        cpu = _as_double(cpu_percent)
        memory = _as_double(memory_percent)
        disk = _as_double(disk_percent)
        disk_used = _as_double(disk_used_gb)
        disk_total = _as_double(disk_total_gb)
        load_1m = _as_double(load_avg_1m)
        load_5m = _as_double(load_avg_5m)
        load_15m = _as_double(load_avg_15m)
        celsius = _as_double(temperature)
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
        memory_used = _integer("memory_used_mb", memory_used_mb, 0, MAX_MEGABYTES)
        memory_total = _integer("memory_total_mb", memory_total_mb, 0, MAX_MEGABYTES)
        _require_finite("disk_used_gb", disk_used)
        _require_finite("disk_total_gb", disk_total)
        _require_finite("load_avg_1m", load_1m)
        _require_finite("load_avg_5m", load_5m)
        _require_finite("load_avg_15m", load_15m)
        if math.isinf(celsius):
            raise ValueError(f"temperature must be finite or NaN (no sensor), got {celsius!r}")
        rx = _integer("network_rx_bytes", network_rx_bytes, 0, MAX_COUNTER)
        tx = _integer("network_tx_bytes", network_tx_bytes, 0, MAX_COUNTER)

        rx_rate, tx_rate, sample = self._remember(device_id, seen, rx, tx, uptime)
        self._added += 1
        values: _Values = (
            cpu,
            memory,
            disk,
            uptime,
            memory_used,
            memory_total,
            disk_used,
            disk_total,
            load_1m,
            load_5m,
            load_15m,
            None if math.isnan(celsius) else celsius,
            rx_rate,
            tx_rate,
        )
        entry = self._pending.get(device_id)
        if entry is None:
            self._pending[device_id] = _Pending(seen, state_code, values, sample)
        else:
            entry.count += 1
            entry.sample = entry.sample or sample
            if seen >= entry.seen_at:
                entry.seen_at = seen
                entry.state = state_code
                entry.values = values

        key = (math.floor(seen / self._rollup_interval), group_index)
        sketches = self._accumulators.get(key)
        if sketches is None:
            sketches = self._accumulators[key] = [None] * len(METRICS)
        readings = (
            cpu,
            memory,
            float(memory_used),
            disk,
            disk_used,
            load_1m,
            load_5m,
            load_15m,
            celsius,
            math.nan if rx_rate is None else rx_rate,
            math.nan if tx_rate is None else tx_rate,
        )
        for i, reading in enumerate(readings):
            if math.isnan(reading):  # no reading: counted nowhere
                continue
            sketch = sketches[i]
            if sketch is None:
                sketch = sketches[i] = Sketch()
            sketch.add(reading)
        self._window_heartbeats += 1
        if seen < self._window_min:
            self._window_min = seen
        if seen > self._window_max:
            self._window_max = seen
        return len(self._pending) >= self._max_pending

    def _remember(
        self, device_id: str, seen: float, rx: int, tx: int, uptime: int
    ) -> tuple[float | None, float | None, bool]:
        """The heartbeat's network rates and sampling decision; update the device's memory."""
        device = self._devices.get(device_id)
        if device is None:
            self._devices[device_id] = _Device(seen, rx, tx, uptime, seen + self._sample_interval)
            return None, None, True
        rx_rate = tx_rate = None
        gap = seen - device.seen_at
        if uptime >= device.uptime and 0.0 < gap <= self._max_rate_gap:
            rx_rate = _rate(rx, device.rx, gap)
            tx_rate = _rate(tx, device.tx, gap)
        if seen >= device.seen_at:
            device.seen_at, device.rx, device.tx, device.uptime = seen, rx, tx, uptime
        interval = self._sample_interval
        sample = interval == 0.0 or seen >= device.tat - interval * 0.5
        if sample:
            device.tat = max(device.tat, seen) + interval
        return rx_rate, tx_rate, sample

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

    @property
    def sample_interval(self) -> float:
        """The GCRA period of per-device samples, in seconds (0: every heartbeat)."""
        return self._sample_interval

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
        version, metric, count, sum, min, max, sketch)`` row per metric with readings.
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
            cpu, memory, disk, uptime = entry.values[:4]
            commands.append(
                (
                    "HSET",
                    key,
                    "seen_at",
                    entry.seen_at,
                    "state",
                    entry.state,
                    "cpu",
                    cpu,
                    "mem",
                    memory,
                    "disk",
                    disk,
                    "uptime",
                    uptime,
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
            kept = self._copy.get(device_id)
            if kept is not None:
                entry.sample = entry.sample or kept.sample
            self._copy[device_id] = entry

        rollups: list[Rollup] = []
        for (bucket, group), sketches in self._accumulators.items():
            bucket_start = _utc(float(bucket * self._rollup_interval))
            device_type, version = self._groups[group]
            for metric, sketch in zip(METRICS, sketches, strict=True):
                if sketch is None:
                    continue
                low, high = sketch.min, sketch.max
                assert low is not None and high is not None  # a sketch exists once it has a value
                rollups.append(
                    (
                        bucket_start,
                        device_type,
                        version,
                        metric,
                        sketch.count,
                        sketch.sum,
                        low,
                        high,
                        sketch,
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

        A ``CopyRecord`` per device (``seen_at`` a UTC datetime, ``temperature`` None for
        no sensor), from the device's last drained record with the OR of the ``sample``
        flags of the records drained since, in order of first arrival since the last call.
        """
        window, self._copy = self._copy, {}
        return [
            (device_id, _utc(entry.seen_at), *entry.values, entry.sample)
            for device_id, entry in window.items()
        ]

    def __reduce__(self) -> NoReturn:
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")

    def forget(self, device_id: str) -> None:
        """Drop what the batcher remembers of ``device_id`` and its entries in both windows.

        Its next drain reports a transition from -1, its next heartbeat has unknown rates
        and is a sample. Rollups keep its heartbeats. Forgetting an unknown device is a
        no-op. Raises TypeError if ``device_id`` is not a ``str``.
        """
        _require_str("device_id", device_id)
        self._pending.pop(device_id, None)
        self._copy.pop(device_id, None)
        self._last_state.pop(device_id, None)
        self._devices.pop(device_id, None)
