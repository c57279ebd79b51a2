"""Per-minute heartbeat rollups per device group, merged from every gateway process."""

from __future__ import annotations

from collections.abc import Iterable

from core_ext import Rollup
from fleetd.storage.types import Connection

RollupKey = tuple[object, str, str, str]
"""``(bucket_start, device_type, version, metric)``"""


def combine(into: dict[RollupKey, list[float]], rows: Iterable[Rollup]) -> None:
    """Fold batcher rollup rows into ``into`` (key -> [count, sum, min, max])."""
    for bucket, device_type, version, metric, count, total, low, high in rows:
        combine_one(into, (bucket, device_type, version, metric), [count, total, low, high])


def combine_one(into: dict[RollupKey, list[float]], key: RollupKey, value: list[float]) -> None:
    kept = into.get(key)
    if kept is None:
        into[key] = list(value)
    else:
        kept[0] += value[0]
        kept[1] += value[1]
        kept[2] = min(kept[2], value[2])
        kept[3] = max(kept[3], value[3])


async def merge_rollups(conn: Connection, rollups: dict[RollupKey, list[float]]) -> int:
    """Add ``rollups`` to ``fleet_rollups``: counts and sums add, min and max combine."""
    if not rollups:
        return 0
    keys = list(rollups)
    values = [rollups[k] for k in keys]
    await conn.execute(
        """INSERT INTO fleet_rollups AS r
               (bucket_start, device_type, version, metric, count, sum, min, max)
           SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[],
                                $5::bigint[], $6::float8[], $7::float8[], $8::float8[])
           ON CONFLICT (bucket_start, device_type, version, metric) DO UPDATE SET
               count = r.count + excluded.count,
               sum = r.sum + excluded.sum,
               min = least(r.min, excluded.min),
               max = greatest(r.max, excluded.max)""",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        [int(v[0]) for v in values],
        [v[1] for v in values],
        [v[2] for v in values],
        [v[3] for v in values],
    )
    return len(keys)
