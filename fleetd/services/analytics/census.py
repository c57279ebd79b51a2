"""The census: registered devices per group and status, once a minute.

docs/analytics.md 2.5. A round counts the devices that are not offboarded per (fleet,
device_type, version, status), adds every grouping-set row each full group contributes to
(``groups.rows_for``), and writes the current minute's ``fleet_census_1m`` rows, folding
into ``fleet_census_1h`` only the rows that minute newly inserted: re-running a minute
(two replicas, a retried round) counts it once.

What the hourly rows mean: ``minutes`` is the number of census minutes in which the
(group, status) had at least one device, ``devices_min`` / ``devices_max`` range over
those minutes (no row is written for a count of zero); a reader wanting an average over
the whole hour divides ``devices_sum`` by the number of census minutes in that hour.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

from fleetd.domain.analytics.groups import Group, rows_for
from fleetd.services.analytics.clock import floor_minute, utcnow
from fleetd.storage.advisory_locks import session_lock
from fleetd.storage.analytics import census, locks, metric_groups
from fleetd.storage.analytics.census import StatusCount
from fleetd.storage.types import Pool


def grouping_set_counts(counts: Iterable[StatusCount]) -> Counter[tuple[Group, str]]:
    """Devices per (group row, status), over every grouping-set row of each full group."""
    totals: Counter[tuple[Group, str]] = Counter()
    for c in counts:
        for group in rows_for(c.fleet, c.device_type, c.version):
            totals[(group, c.status)] += c.devices
    return totals


async def census_once(pool: Pool, now: dt.datetime | None = None) -> int | None:
    """Record the minute of ``now`` (default: the clock); returns the rows newly written
    (0 when the minute was recorded already), None when another holder is at it."""
    minute = floor_minute(now or utcnow())
    async with session_lock(pool, locks.CENSUS, wait=False) as conn:
        if conn is None:
            return None
        async with conn.transaction():
            totals = grouping_set_counts(await census.counts(conn))
            ids = await metric_groups.intern(conn, (group for group, _ in totals))
            rows = [(ids[group], status, n) for (group, status), n in totals.items()]
            return await census.record_minute(conn, minute, rows)
