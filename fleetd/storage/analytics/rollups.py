"""Rollup partials and the compacted rollup tables (docs/analytics.md, 2.4).

Gateway workers append to ``metric_rollup_partials``; the rollup compactor takes the
partials of closed minutes (:func:`take_partials`, a ``DELETE … RETURNING``), merges them
and writes ``metric_rollups_1m`` and ``metric_rollups_1h`` (:func:`locked_rows`, then
:func:`write_rows`), all in one transaction of the caller's, so each partial is counted
exactly once. Rows are written whole: merging sketches takes Python (``core_ext.Sketch``),
not SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from fleetd.storage.types import Connection

ROLLUP_TABLES: Final = ("metric_rollups_1m", "metric_rollups_1h")


@dataclass(frozen=True, slots=True)
class Partial:
    """One worker's aggregate of one metric of one full group over one minute."""

    writer: str
    bucket_start: dt.datetime
    fleet: str
    device_type: str
    version: str
    metric: int
    count: int
    sum: float
    min: float
    max: float
    sketch: bytes


RowKey = tuple[dt.datetime, int, int]
"""``(bucket_start, group_id, metric)``."""


@dataclass(frozen=True, slots=True)
class RollupRow:
    """A row of ``metric_rollups_1m`` or ``metric_rollups_1h``."""

    bucket_start: dt.datetime
    group_id: int
    metric: int
    count: int
    sum: float
    min: float
    max: float
    sketch: bytes

    @property
    def key(self) -> RowKey:
        return (self.bucket_start, self.group_id, self.metric)


def _table(name: str) -> str:
    if name not in ROLLUP_TABLES:
        raise ValueError(f"not a rollup table: {name!r} (one of {', '.join(ROLLUP_TABLES)})")
    return name


async def take_partials(conn: Connection, closed_upto: dt.datetime, limit: int) -> list[Partial]:
    """Delete and return up to ``limit`` partials of minutes starting at or before
    ``closed_upto``, oldest minutes first. Inside the caller's transaction: if it rolls
    back, the partials are there again."""
    rows = await conn.fetch(
        """DELETE FROM metric_rollup_partials
            WHERE ctid = ANY(ARRAY(
                  SELECT ctid FROM metric_rollup_partials
                   WHERE bucket_start <= $1
                   ORDER BY bucket_start
                   LIMIT $2))
        RETURNING writer, bucket_start, fleet, device_type, version, metric,
                  count, sum, min, max, sketch""",
        closed_upto,
        limit,
    )
    return [
        Partial(
            r["writer"],
            r["bucket_start"],
            r["fleet"],
            r["device_type"],
            r["version"],
            r["metric"],
            r["count"],
            r["sum"],
            r["min"],
            r["max"],
            bytes(r["sketch"]),
        )
        for r in rows
    ]


async def locked_rows(
    conn: Connection, table: str, keys: Sequence[RowKey]
) -> dict[RowKey, RollupRow]:
    """The rows of ``table`` already there for ``keys``, locked until the transaction ends."""
    if not keys:
        return {}
    rows = await conn.fetch(
        f"""SELECT r.bucket_start, r.group_id, r.metric, r.count, r.sum, r.min, r.max, r.sketch
              FROM {_table(table)} r
              JOIN unnest($1::timestamptz[], $2::integer[], $3::smallint[])
                   AS k(bucket_start, group_id, metric)
                USING (bucket_start, group_id, metric)
               FOR UPDATE OF r""",  # noqa: S608 (a table of ROLLUP_TABLES)
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    found = (
        RollupRow(
            r["bucket_start"],
            r["group_id"],
            r["metric"],
            r["count"],
            r["sum"],
            r["min"],
            r["max"],
            bytes(r["sketch"]),
        )
        for r in rows
    )
    return {row.key: row for row in found}


async def write_rows(conn: Connection, table: str, rows: Sequence[RollupRow]) -> None:
    """Insert ``rows`` into ``table``, replacing any row with the same key: the caller has
    merged what was there (:func:`locked_rows`) into them."""
    if not rows:
        return
    await conn.execute(
        f"""INSERT INTO {_table(table)}
                (bucket_start, group_id, metric, count, sum, min, max, sketch)
            SELECT * FROM unnest($1::timestamptz[], $2::integer[], $3::smallint[],
                                 $4::bigint[], $5::float8[], $6::float8[], $7::float8[],
                                 $8::bytea[])
            ON CONFLICT (group_id, metric, bucket_start) DO UPDATE
               SET count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min,
                   max = EXCLUDED.max, sketch = EXCLUDED.sketch""",  # noqa: S608
        [r.bucket_start for r in rows],
        [r.group_id for r in rows],
        [r.metric for r in rows],
        [r.count for r in rows],
        [r.sum for r in rows],
        [r.min for r in rows],
        [r.max for r in rows],
        [r.sketch for r in rows],
    )
