"""What a heartbeat batcher hands back, shared by the compiled and the reference batcher.

Both ``core_ext._batcher`` and ``core_ext.reference.batcher`` return these very types (one
``Flush`` class, plain tuples inside), so their results compare equal with ``==`` and print
alike, which the differential tests rely on; the one exception is a rollup's sketch, the
compiled ``Sketch`` from one and the reference ``Sketch`` from the other, which compare
through ``to_bytes()`` (the same bytes from both). The semantics of each field are defined
in ``core_ext.reference.batcher``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, NamedTuple, Protocol, TypeAlias


class RollupSketch(Protocol):
    """What a rollup row's sketch offers: a ``core_ext`` ``Sketch``, compiled or reference
    (a protocol, so this module imports neither)."""

    @property
    def count(self) -> int: ...
    @property
    def sum(self) -> float: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    def merge(self, other: Any, /) -> None:
        """Add everything ``other`` (a ``Sketch`` of the same implementation) holds."""

    def quantile(self, q: float) -> float | None: ...
    def to_bytes(self) -> bytes: ...


RedisCommand: TypeAlias = tuple[str | float | int, ...]
"""The arguments of one Redis command, name first: ``pipe.execute_command(*command)``."""

StateTransition: TypeAlias = tuple[str, int, int]
"""``(device_id, previous_state, new_state)``; ``previous_state`` is -1 for a first drain."""

Rollup: TypeAlias = tuple[dt.datetime, str, str, str, int, float, float, float, RollupSketch]
"""``(bucket_start, device_type, version, metric, count, sum, min, max, sketch)``: one
metric of one device group over the readings of one rollup bucket seen since the last
drain. ``bucket_start`` is a UTC datetime on a multiple of the batcher's
``rollup_interval``; ``sketch`` is a ``core_ext`` ``Sketch`` (relative accuracy 0.01) of
exactly those readings, and ``count``/``sum``/``min``/``max`` are its exact statistics. A
missing reading (no temperature, an unknown network rate) is in none of them, and a metric
with no reading in a bucket has no row. The sketch is handed over: the batcher keeps no
reference to it, so a consumer may ``merge`` other rows into it."""

CopyRecord: TypeAlias = tuple[
    str,
    dt.datetime,
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
    bool,
]
"""``(device_id, seen_at, cpu_percent, memory_percent, disk_percent, uptime_seconds,
memory_used_mb, memory_total_mb, disk_used_gb, disk_total_gb, load_avg_1m, load_avg_5m,
load_avg_15m, temperature, network_rx_rate, network_tx_rate, sample)``: the columns of
``fleetd.storage.devices.merge_heartbeats``'s staging table, ``seen_at`` a timezone-aware
UTC datetime, ready for asyncpg ``copy_records_to_table``. ``temperature`` is None when the
device has no sensor; the network rates are bytes per second since the device's previous
heartbeat, None when unknown (docs/analytics.md 2.2); ``sample`` says whether the record
goes to ``device_samples`` (GCRA per device, 2.3)."""

COPY_COLUMNS: Final = (
    "device_id",
    "seen_at",
    "cpu_usage",
    "memory_usage",
    "disk_usage",
    "uptime_seconds",
    "memory_used_mb",
    "memory_total_mb",
    "disk_used_gb",
    "disk_total_gb",
    "load_avg_1m",
    "load_avg_5m",
    "load_avg_15m",
    "temperature",
    "network_rx_rate",
    "network_tx_rate",
    "sample",
)
"""The staging-table column of each ``CopyRecord`` field, in order."""

METRICS: Final = (
    "cpu_usage",
    "memory_usage",
    "memory_used_mb",
    "disk_usage",
    "disk_used_gb",
    "load_avg_1m",
    "load_avg_5m",
    "load_avg_15m",
    "temperature",
    "network_rx_bytes",
    "network_tx_bytes",
)
"""The metrics rolled up, in the order their ``Rollup`` rows appear per group and bucket:
``fleetd.domain.analytics.metrics.ROLLED_UP``'s names (core_ext does not import fleetd; a
test keeps the two equal). ``network_*_bytes`` are rates in bytes per second."""


class Flush(NamedTuple):
    """One drain of a heartbeat batcher: everything one Redis flush needs, and its facts."""

    redis_commands: list[RedisCommand]
    """One ZADD of every drained device to the last-seen ZSET, then, per device in
    first-arrival order, an HSET of its latest stats and an EXPIRE of that hash. Empty when
    no device was pending."""

    transitions: list[StateTransition]
    """Drained devices whose state differs from the one last drained for them."""

    rollups: list[Rollup]
    """Per (bucket, group) first seen since the last drain, one row per metric that had a
    reading, in ``METRICS`` order."""

    interval: tuple[float, float] | None
    """``(min seen_at, max seen_at)`` over the heartbeats accepted since the last drain;
    None when there were none."""

    devices: int
    """The number of devices drained (pending, not forgotten)."""

    heartbeats: int
    """The number of heartbeats accepted since the last drain (forgotten ones included)."""
