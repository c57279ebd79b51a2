"""A heartbeat flush's writes: the batcher's commands to Redis, its records to PostgreSQL."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.storage import redis_keys
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.heartbeat_flush import WRITE_ERRORS, write_latest, write_records

FLEET = "default"


async def test_latest_stats_go_to_redis_with_arrivals(redis: aioredis.Redis) -> None:
    last_seen, stats = redis_keys.last_seen(FLEET), redis_keys.device_stats("rpi-1")
    await write_latest(
        redis,
        FLEET,
        [
            ("ZADD", last_seen, 100.5, "rpi-1"),
            ("HSET", stats, "cpu", 12.5, "count", 1),
            ("EXPIRE", stats, 60),
        ],
    )
    assert await redis.zscore(last_seen, "rpi-1") == 100.5
    assert await redis.hgetall(stats) == {b"cpu": b"12.5", b"count": b"1"}
    assert 0 < await redis.ttl(stats) <= 60
    events = await redis.xrange(redis_keys.events(FLEET))
    assert events is not None
    [(_, event)] = events
    assert event is not None
    assert (event[b"type"], event[b"device_id"]) == (b"device.online", b"rpi-1")


async def test_records_and_rollups_are_merged(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, NewDevice("rpi-1", FLEET, "rpi-1", "rpi", "1.0", {}, {}))
    seen = dt.datetime.now(dt.UTC)
    bucket = seen.replace(second=0, microsecond=0)
    await write_records(
        pool,
        [("rpi-1", seen, 10.0, 20.0, 30.0, 5)],
        {(bucket, "rpi", "1.0", "cpu_percent"): [1, 10.0, 10.0, 10.0]},
    )
    await write_records(pool, [], {(bucket, "rpi", "1.0", "cpu_percent"): [1, 30.0, 30.0, 30.0]})
    row = await pool.fetchrow("SELECT status, cpu_usage, uptime_seconds FROM devices")
    assert row is not None
    assert (row["status"], row["cpu_usage"], row["uptime_seconds"]) == ("online", 10.0, 5)
    rollup = await pool.fetchrow("SELECT count, sum, min, max FROM fleet_rollups")
    assert rollup is not None
    assert tuple(rollup) == (2, 40.0, 10.0, 30.0)


async def test_a_refused_write_raises_one_of_the_write_errors(pool: asyncpg.Pool) -> None:
    await pool.execute("ALTER TABLE devices RENAME TO devices_away")
    try:
        with pytest.raises(WRITE_ERRORS):
            await write_records(pool, [("rpi-1", dt.datetime.now(dt.UTC), 1.0, 2.0, 3.0, 4)], {})
    finally:
        await pool.execute("ALTER TABLE devices_away RENAME TO devices")
