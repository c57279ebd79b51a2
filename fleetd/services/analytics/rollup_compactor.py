"""The rollup compactor: gateway partials of closed minutes → ``metric_rollups_1m`` and ``_1h``.

docs/analytics.md 2.4. Gateway workers append per-worker partial rows to
``metric_rollup_partials``; every round (10 s) the one holder of the compactor lock, in
**one transaction** per batch:

1. deletes the partials of closed minutes (``bucket_start + 60 s + grace <= now``) and
   gets them back (``DELETE … RETURNING``);
2. merges them per (minute, group, metric), and per (hour, group, metric), for every
   grouping-set row each full group contributes to (``groups.rows_for``);
3. interns the groups' labels into ``metric_groups``;
4. reads the rows already there for those keys (late partials of a compacted minute; the
   hour's earlier minutes), merges, and writes the rows whole.

Deleting the partials and writing their merge in one transaction counts each partial
exactly once: a failed round rolls both back, and the next round sees the same partials.
A partial whose sketch cannot be read is dropped and logged (it would otherwise fail every
round for ever).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from core_ext import Sketch
from fleetd.domain.analytics.groups import Group, rows_for
from fleetd.services.analytics.clock import floor_hour, utcnow
from fleetd.services.analytics.rollup_merge import Aggregate
from fleetd.storage.advisory_locks import session_lock
from fleetd.storage.analytics import locks, metric_groups, rollups, watermarks
from fleetd.storage.analytics.rollups import Partial, RollupRow, RowKey
from fleetd.storage.types import Connection, Pool

log = logging.getLogger(__name__)

ROLE: Final = "rollup_compactor"
"""Its ``analytics_watermarks`` row: every minute starting at or before ``upto`` is compacted
(partials arriving later still are, by a later round)."""
MINUTE: Final = dt.timedelta(minutes=1)
GRACE: Final = dt.timedelta(seconds=15)
"""After a minute ends, how long its last partials may take to arrive before it is merged
(a worker flushes every ``FLEETD_ROLLUP_FLUSH_INTERVAL`` and when a minute closes)."""
BATCH: Final = 20_000
"""Partials per transaction (a minute of a large deployment: 16 workers, 50 groups and 11
metrics make ~9k)."""

_GroupedKey = tuple[dt.datetime, Group, int]


@dataclass(frozen=True, slots=True)
class CompactionReport:
    partials: int
    minute_rows: int
    hour_rows: int
    rejected: int
    """Partials dropped because their sketch could not be read."""


def closed_upto(now: dt.datetime, grace: dt.timedelta = GRACE) -> dt.datetime:
    """The latest ``bucket_start`` whose minute is closed at ``now``."""
    return now - MINUTE - grace


def _merge(
    partials: Iterable[Partial],
) -> tuple[dict[_GroupedKey, Aggregate], dict[_GroupedKey, Aggregate], int]:
    minutes: dict[_GroupedKey, Aggregate] = {}
    hours: dict[_GroupedKey, Aggregate] = {}
    rejected = 0
    for p in partials:
        if p.count <= 0:
            continue
        try:
            sketch = Sketch.from_bytes(p.sketch)
        except ValueError as exc:
            rejected += 1
            log.error(
                "rollup partial of %s (writer %s, metric %d) dropped: %s",
                p.bucket_start,
                p.writer,
                p.metric,
                exc,
            )
            continue
        hour = floor_hour(p.bucket_start)
        for group in rows_for(p.fleet, p.device_type, p.version):
            for buckets, start in ((minutes, p.bucket_start), (hours, hour)):
                key = (start, group, p.metric)
                aggregate = buckets.get(key)
                if aggregate is None:
                    aggregate = buckets[key] = Aggregate.empty_like(sketch)
                aggregate.add(p.count, p.sum, p.min, p.max, sketch)
    return minutes, hours, rejected


async def _write(
    conn: Connection, table: str, merged: dict[_GroupedKey, Aggregate], ids: dict[Group, int]
) -> int:
    by_key: dict[RowKey, Aggregate] = {
        (start, ids[group], metric): aggregate
        for (start, group, metric), aggregate in merged.items()
    }
    before = await rollups.locked_rows(conn, table, list(by_key))
    rows = []
    for key, aggregate in by_key.items():
        old = before.get(key)
        if old is not None:
            aggregate.add(old.count, old.sum, old.min, old.max, Sketch.from_bytes(old.sketch))
        start, group_id, metric = key
        rows.append(
            RollupRow(
                start,
                group_id,
                metric,
                aggregate.count,
                aggregate.sum,
                aggregate.min,
                aggregate.max,
                aggregate.sketch.to_bytes(),
            )
        )
    await rollups.write_rows(conn, table, rows)
    return len(rows)


async def _compact_batch(conn: Connection, upto: dt.datetime, batch: int) -> CompactionReport:
    partials = await rollups.take_partials(conn, upto, batch)
    minutes, hours, rejected = _merge(partials)
    ids = await metric_groups.intern(conn, (group for _, group, _ in minutes))
    minute_rows = await _write(conn, "metric_rollups_1m", minutes, ids)
    hour_rows = await _write(conn, "metric_rollups_1h", hours, ids)
    return CompactionReport(len(partials), minute_rows, hour_rows, rejected)


async def compact_once(
    pool: Pool, now: dt.datetime | None = None, *, batch: int = BATCH
) -> CompactionReport | None:
    """One round: every partial of a closed minute merged into the rollup tables, in
    transactions of at most ``batch`` partials. None when another holder has the lock."""
    upto = closed_upto(now or utcnow())
    total = CompactionReport(0, 0, 0, 0)
    async with session_lock(pool, locks.ROLLUP_COMPACTOR, wait=False) as conn:
        if conn is None:
            return None
        while True:
            async with conn.transaction():
                report = await _compact_batch(conn, upto, batch)
                if report.partials < batch:
                    await watermarks.advance(conn, ROLE, upto)
            total = CompactionReport(
                total.partials + report.partials,
                total.minute_rows + report.minute_rows,
                total.hour_rows + report.hour_rows,
                total.rejected + report.rejected,
            )
            if report.partials < batch:
                break
    return total
