"""What a heartbeat batcher hands back, shared by the compiled and the reference batcher.

Both ``core_ext._batcher`` and ``core_ext.reference.batcher`` return these very types (one
``Flush`` class, plain tuples inside), so their results compare equal with ``==`` and print
alike, which the differential tests rely on. The semantics of each field are defined in
``core_ext.reference.batcher``.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, NamedTuple, TypeAlias

RedisCommand: TypeAlias = tuple[str | float | int, ...]
"""The arguments of one Redis command, name first: ``pipe.execute_command(*command)``."""

StateTransition: TypeAlias = tuple[str, int, int]
"""``(device_id, previous_state, new_state)``; ``previous_state`` is -1 for a first drain."""

Rollup: TypeAlias = tuple[dt.datetime, str, str, str, int, float, float, float]
"""``(bucket_start, device_type, version, metric, count, sum, min, max)``: one metric of
one device group over the heartbeats of one rollup bucket seen since the last drain.
``bucket_start`` is a UTC datetime on a multiple of the batcher's ``rollup_interval``."""

CopyRecord: TypeAlias = tuple[str, dt.datetime, float, float, float, int]
"""``(device_id, seen_at, cpu_percent, memory_percent, disk_percent, uptime_seconds)``:
the columns of ``fleetd.storage.devices.merge_heartbeats``'s staging table, ``seen_at`` a
timezone-aware UTC datetime, ready for asyncpg ``copy_records_to_table``."""

METRICS: Final = ("cpu_percent", "memory_percent", "disk_percent")
"""The metrics rolled up, in the order their ``Rollup`` rows appear per group and bucket."""


class Flush(NamedTuple):
    """One drain of a heartbeat batcher: everything one Redis flush needs, and its facts."""

    redis_commands: list[RedisCommand]
    """One ZADD of every drained device to the last-seen ZSET, then, per device in
    first-arrival order, an HSET of its latest stats and an EXPIRE of that hash. Empty when
    no device was pending."""

    transitions: list[StateTransition]
    """Drained devices whose state differs from the one last drained for them."""

    rollups: list[Rollup]
    """Per (bucket, group) first seen since the last drain, one row per metric."""

    interval: tuple[float, float] | None
    """``(min seen_at, max seen_at)`` over the heartbeats accepted since the last drain;
    None when there were none."""

    devices: int
    """The number of devices drained (pending, not forgotten)."""

    heartbeats: int
    """The number of heartbeats accepted since the last drain (forgotten ones included)."""
