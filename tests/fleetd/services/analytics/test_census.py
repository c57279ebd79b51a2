"""The census against a real PostgreSQL: devices per grouping-set row and status, offboarded
devices left out, a minute recorded twice counted once, hours folding their minutes."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from fleetd.domain.analytics.groups import Group
from fleetd.services.analytics.census import census_once
from fleetd.services.analytics.partition_maintenance import ensure_partitions
from fleetd.settings import Settings

UTC = dt.UTC
T0 = dt.datetime(2031, 3, 10, 13, 0, tzinfo=UTC)
Devices = list[tuple[str, str, str, str]]
"""(fleet, device_type, version, status) per device."""

FLEET: Devices = [
    ("north", "sensor", "1.0", "online"),
    ("north", "sensor", "1.0", "online"),
    ("north", "sensor", "1.0", "offline"),
    ("north", "camera", "2.0", "online"),
    ("south", "sensor", "1.0", "error"),
    ("south", "sensor", "1.1", "updating"),
    ("south", "sensor", "1.1", "maintenance"),
    ("south", "sensor", "1.1", "unknown"),
]


@pytest.fixture(autouse=True)
async def _partitions(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await ensure_partitions(pool, Settings(data_dir=tmp_path), now=T0)


async def _register(pool: asyncpg.Pool, devices: Devices, prefix: str = "d") -> None:
    await pool.executemany(
        """INSERT INTO devices (device_id, fleet, device_type, version, status)
           VALUES ($1, $2, $3, $4, $5)""",
        [(f"{prefix}{i}", *device) for i, device in enumerate(devices)],
    )


def _expected(devices: Devices) -> Counter[tuple[Group, str]]:
    """Written out per grouping set, independently of ``groups.rows_for``."""
    out: Counter[tuple[Group, str]] = Counter()
    for fleet, kind, version, status in devices:
        for group in (
            (None, None, None),
            (fleet, None, None),
            (None, kind, None),
            (fleet, kind, None),
            (None, kind, version),
            (fleet, kind, version),
        ):
            out[(group, status)] += 1
    return out


async def _minute(pool: asyncpg.Pool, minute: dt.datetime) -> Counter[tuple[Group, str]]:
    rows = await pool.fetch(
        """SELECT g.fleet, g.device_type, g.version, c.status, c.devices
             FROM fleet_census_1m c JOIN metric_groups g USING (group_id)
            WHERE c.bucket_start = $1""",
        minute,
    )
    return Counter(
        {((r["fleet"], r["device_type"], r["version"]), r["status"]): r["devices"] for r in rows}
    )


async def _hour(pool: asyncpg.Pool, hour: dt.datetime) -> dict[tuple[Group, str], tuple[int, ...]]:
    rows = await pool.fetch(
        """SELECT g.fleet, g.device_type, g.version, c.status,
                  c.minutes, c.devices_sum, c.devices_min, c.devices_max
             FROM fleet_census_1h c JOIN metric_groups g USING (group_id)
            WHERE c.bucket_start = $1""",
        hour,
    )
    return {
        ((r["fleet"], r["device_type"], r["version"]), r["status"]): (
            r["minutes"],
            r["devices_sum"],
            r["devices_min"],
            r["devices_max"],
        )
        for r in rows
    }


async def test_a_minute_counts_devices_per_grouping_set_row_and_status(pool: asyncpg.Pool) -> None:
    await _register(pool, FLEET)
    await pool.execute(
        """INSERT INTO devices (device_id, fleet, status, offboarded_at)
           VALUES ('gone', 'north', 'offboarded', now())"""
    )

    written = await census_once(pool, now=T0 + dt.timedelta(seconds=42))

    expected = _expected(FLEET)
    assert await _minute(pool, T0) == expected
    assert written == len(expected)


async def test_recording_a_minute_twice_counts_it_once(pool: asyncpg.Pool) -> None:
    await _register(pool, FLEET)
    await census_once(pool, now=T0)

    await _register(pool, [("north", "sensor", "1.0", "online")], prefix="late")
    again = await census_once(pool, now=T0 + dt.timedelta(seconds=59))

    assert again == 0
    assert await _minute(pool, T0) == _expected(FLEET)
    hour = await _hour(pool, T0)
    assert hour[((None, None, None), "online")] == (1, 3, 3, 3)


async def test_an_hour_folds_its_minutes(pool: asyncpg.Pool) -> None:
    await _register(pool, FLEET)
    await census_once(pool, now=T0)
    await _register(pool, [("north", "sensor", "1.0", "online")] * 2, prefix="more")
    await census_once(pool, now=T0 + dt.timedelta(minutes=1))
    await pool.execute("UPDATE devices SET status = 'offline' WHERE device_id LIKE 'more%'")
    await census_once(pool, now=T0 + dt.timedelta(minutes=2))
    await census_once(pool, now=T0 + dt.timedelta(hours=1))  # the next hour

    hour = await _hour(pool, T0)
    minutes = [await _minute(pool, T0 + dt.timedelta(minutes=m)) for m in range(3)]
    for cell, (count, total, low, high) in hour.items():
        seen = [m[cell] for m in minutes if cell in m]
        assert (count, total, low, high) == (len(seen), sum(seen), min(seen), max(seen))
    assert hour[(("north", "sensor", "1.0"), "online")] == (3, 2 + 4 + 2, 2, 4)
    assert hour[(("north", "sensor", "1.0"), "offline")] == (3, 1 + 1 + 3, 1, 3)
    assert (await _hour(pool, T0 + dt.timedelta(hours=1)))[((None, None, None), "online")] == (
        1,
        3,
        3,
        3,
    )
