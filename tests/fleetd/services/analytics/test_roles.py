"""The analytics roles as the servers run them: prepare, start with short intervals, stop."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from core_ext import Sketch
from fleetd.services.analytics import roles
from fleetd.services.analytics.partition_maintenance import ensure_partitions
from fleetd.settings import Settings


async def _eventually(pool: asyncpg.Pool, query: str, *args: object) -> object:
    for _ in range(200):
        value = await pool.fetchval(query, *args)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {query}")


async def test_started_roles_compact_count_and_stop(pool: asyncpg.Pool, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=2)
    await ensure_partitions(pool, settings, now=minute)  # its day, should it be yesterday's
    await roles.prepare(pool, settings)
    await pool.execute(
        """INSERT INTO devices (device_id, fleet, device_type, version, status)
           VALUES ('d1', 'north', 'sensor', '1.0', 'online')"""
    )
    sketch = Sketch()
    sketch.add_many([1.0, 2.0, 4.0])
    await pool.execute(
        """INSERT INTO metric_rollup_partials
           VALUES ('gw', $1, 'north', 'sensor', '1.0', 1, 3, 7, 1, 4, $2)""",
        minute,
        sketch.to_bytes(),
    )

    fast = roles.Intervals(0.05, 0.05, 0.05, 0.05)
    roles.start(pool, settings, intervals=fast)
    try:
        assert (
            await _eventually(
                pool,
                """SELECT sum(count) FROM metric_rollups_1m r JOIN metric_groups g USING (group_id)
                WHERE r.bucket_start = $1 AND g.fleet IS NULL AND g.device_type IS NULL
                  AND g.version IS NULL""",
                minute,
            )
            == 3
        )
        assert (
            await _eventually(
                pool,
                """SELECT bool_and(devices = 1) FROM fleet_census_1m c
                     JOIN metric_groups g USING (group_id)
                WHERE g.fleet = 'north' AND g.device_type IS NULL AND c.status = 'online'""",
            )
            is True
        )
        assert await _eventually(
            pool, "SELECT upto FROM analytics_watermarks WHERE role = 'device_downsampler'"
        )
    finally:
        await roles.stop()

    # Stopped: a new partial stays where it is.
    await pool.execute(
        """INSERT INTO metric_rollup_partials
           VALUES ('gw', $1, 'north', 'sensor', '1.0', 1, 3, 7, 1, 4, $2)""",
        minute,
        sketch.to_bytes(),
    )
    await asyncio.sleep(0.3)
    assert await pool.fetchval("SELECT count(*) FROM metric_rollup_partials") == 1


async def test_an_unknown_role_is_refused_before_any_starts(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown analytics role 'compactor'"):
        roles.start(pool, Settings(data_dir=tmp_path), roles=["census", "compactor"])
    await pool.execute("""INSERT INTO devices (device_id, fleet) VALUES ('d1', 'north')""")
    await asyncio.sleep(0.1)
    assert await pool.fetchval("SELECT count(*) FROM fleet_census_1m") == 0
