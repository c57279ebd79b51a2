"""The device census: devices per group and status, one snapshot a minute (docs/analytics.md 2.5).

:func:`counts` reads the live ``devices`` table; :func:`record_minute` writes one minute's
rows into ``fleet_census_1m`` and folds into ``fleet_census_1h`` exactly the rows that
minute inserted, so recording a minute twice counts it once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from fleetd.storage.types import Connection, Queryable


@dataclass(frozen=True, slots=True)
class StatusCount:
    """How many registered (not offboarded) devices of one full group are in one status."""

    fleet: str
    device_type: str
    version: str
    status: str
    devices: int


async def counts(db: Queryable) -> list[StatusCount]:
    """Registered devices per (fleet, device_type, version, status)."""
    rows = await db.fetch(
        """SELECT fleet, device_type, version, status, count(*) AS devices
             FROM devices
            WHERE offboarded_at IS NULL
            GROUP BY fleet, device_type, version, status"""
    )
    return [
        StatusCount(r["fleet"], r["device_type"], r["version"], r["status"], r["devices"])
        for r in rows
    ]


async def record_minute(
    conn: Connection, minute: dt.datetime, rows: Sequence[tuple[int, str, int]]
) -> int:
    """Write ``(group_id, status, devices)`` rows for ``minute`` and fold the ones that
    were new into the minute's hour; returns how many were new. Run it in a transaction
    (the two statements must land together)."""
    if not rows:
        return 0
    hour = minute.replace(minute=0, second=0, microsecond=0)
    inserted = await conn.fetch(
        """INSERT INTO fleet_census_1m (bucket_start, group_id, status, devices)
           SELECT $1::timestamptz, * FROM unnest($2::integer[], $3::text[], $4::integer[])
           ON CONFLICT (group_id, status, bucket_start) DO NOTHING
           RETURNING group_id, status, devices""",
        minute,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )
    if not inserted:
        return 0
    await conn.execute(
        """INSERT INTO fleet_census_1h AS h
                (bucket_start, group_id, status, minutes, devices_sum, devices_min, devices_max)
           SELECT $1::timestamptz, g, s, 1, n, n, n
             FROM unnest($2::integer[], $3::text[], $4::integer[]) AS m(g, s, n)
           ON CONFLICT (group_id, status, bucket_start) DO UPDATE
              SET minutes = h.minutes + 1,
                  devices_sum = h.devices_sum + EXCLUDED.devices_sum,
                  devices_min = least(h.devices_min, EXCLUDED.devices_min),
                  devices_max = greatest(h.devices_max, EXCLUDED.devices_max)""",
        hour,
        [r["group_id"] for r in inserted],
        [r["status"] for r in inserted],
        [r["devices"] for r in inserted],
    )
    return len(inserted)
