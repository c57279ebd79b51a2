"""The heartbeat pipeline against real Redis and PostgreSQL: what one flush writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from core_ext import Flush
from core_ext.reference.batcher import MAX_GROUPS
from fleetd.domain.analytics import metrics
from fleetd.storage import redis_keys
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.redis_keys import STATS_TTL_SECONDS
from gateway.heartbeats import HeartbeatPipeline
from tests.support.analytics import create_partition

ONLINE = 1
REST = (512, 1024, 1.5, 64.0, 0.5, 0.4, 0.3, 45.0, 0, 0)
"""``add``'s arguments after ``uptime_seconds``: memory MB, disk GB, load averages, a
temperature and the network counters."""


@pytest.fixture
async def pipeline(pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[HeartbeatPipeline]:
    async with pool.acquire() as conn:
        for device_id, device_type in [("rpi-1", "rpi"), ("rpi-2", "rpi"), ("x86-1", "x86")]:
            await insert_device(
                conn, NewDevice(device_id, "default", device_id, device_type, "1.0", {}, {})
            )
    p = HeartbeatPipeline("default", redis, pool)
    yield p
    await p.close()


async def _device_row(pool: asyncpg.Pool, device_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT status, last_seen, cpu_usage, memory_usage, disk_usage, uptime_seconds "
        "FROM devices WHERE device_id = $1",
        device_id,
    )
    assert row is not None
    return row


def test_stats_key_parts_spell_the_stats_key() -> None:
    key = redis_keys.DEVICE_STATS_PREFIX + "rpi-1" + redis_keys.DEVICE_STATS_SUFFIX
    assert key == redis_keys.device_stats("rpi-1")


async def test_redis_flush_writes_last_seen_and_stats_in_one_pipeline(
    pipeline: HeartbeatPipeline, redis: aioredis.Redis
) -> None:
    rpi = pipeline.group_id("rpi", "1.0")
    pipeline.add("rpi-1", rpi, ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    pipeline.add("rpi-2", rpi, ONLINE, 11.0, 21.0, 31.0, 200, *REST)
    pipeline.add("rpi-1", rpi, ONLINE, 12.5, 22.5, 32.5, 101, *REST)
    assert await pipeline.flush_redis() == 2
    last_seen = redis_keys.last_seen("default")
    assert await redis.zcard(last_seen) == 2
    score = await redis.zscore(last_seen, "rpi-1")
    assert await redis.zscore(last_seen, "rpi-2") is not None
    stats = await redis.hgetall(redis_keys.device_stats("rpi-1"))
    assert float(stats[b"seen_at"]) == score
    assert {k: v for k, v in stats.items() if k != b"seen_at"} == {
        b"state": b"1",
        b"cpu": b"12.5",
        b"mem": b"22.5",
        b"disk": b"32.5",
        b"uptime": b"101",
        b"count": b"2",
    }
    assert 0 < await redis.ttl(redis_keys.device_stats("rpi-1")) <= STATS_TTL_SECONDS
    assert pipeline.flushed_to_redis == 2
    assert await pipeline.flush_redis() == 0


async def test_postgres_gets_the_records_after_their_redis_flush(
    pipeline: HeartbeatPipeline, pool: asyncpg.Pool
) -> None:
    group = pipeline.group_id("rpi", "1.0")
    pipeline.add("rpi-1", group, ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    assert await pipeline.flush_postgres() == 0  # still in the flush window
    await pipeline.flush_redis()
    pipeline.add("rpi-1", group, ONLINE, 15.0, 25.0, 35.0, 105, *REST)
    pipeline.add("x86-1", group, ONLINE, 1.0, 2.0, 3.0, 4, *REST)
    await pipeline.flush_redis()
    assert await pipeline.flush_postgres() == 2  # rpi-1 coalesced across two Redis flushes
    row = await _device_row(pool, "rpi-1")
    assert row["status"] == "online"
    assert (row["cpu_usage"], row["memory_usage"], row["disk_usage"]) == (15.0, 25.0, 35.0)
    assert row["uptime_seconds"] == 105
    assert abs(row["last_seen"] - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=30)
    assert await pipeline.flush_postgres() == 0


async def test_failed_postgres_flush_is_retried_with_the_latest_records(
    pipeline: HeartbeatPipeline, pool: asyncpg.Pool
) -> None:
    group = pipeline.group_id("rpi", "1.0")
    pipeline.add("rpi-1", group, ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    pipeline.add("rpi-2", group, ONLINE, 11.0, 21.0, 31.0, 200, *REST)
    await pipeline.flush_redis()
    await pool.execute("ALTER TABLE devices RENAME TO devices_away")
    try:
        assert await pipeline.flush_postgres() == 0
    finally:
        await pool.execute("ALTER TABLE devices_away RENAME TO devices")
    pipeline.add("rpi-1", group, ONLINE, 50.0, 60.0, 70.0, 101, *REST)
    await pipeline.flush_redis()
    assert await pipeline.flush_postgres() == 2
    assert (await _device_row(pool, "rpi-1"))["cpu_usage"] == 50.0
    assert (await _device_row(pool, "rpi-2"))["cpu_usage"] == 11.0


async def test_on_flush_receives_transitions_and_group_rollups(
    pipeline: HeartbeatPipeline,
) -> None:
    flushes: list[Flush] = []
    pipeline.on_flush = flushes.append
    rpi = pipeline.group_id("rpi", "1.0")
    x86 = pipeline.group_id("x86", "2.0")
    pipeline.add("rpi-1", rpi, ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    pipeline.add("rpi-2", rpi, ONLINE, 30.0, 40.0, 50.0, 100, *REST)
    pipeline.add("x86-1", x86, ONLINE, 5.0, 6.0, 7.0, 100, *REST)
    await pipeline.flush_redis()
    await pipeline.flush_redis()  # nothing new: no call
    [flush] = flushes
    assert flush.transitions == [("rpi-1", -1, 1), ("rpi-2", -1, 1), ("x86-1", -1, 1)]
    cpu = {(r[1], r[2]): r[4:8] for r in flush.rollups if r[3] == "cpu_usage"}
    assert cpu == {("rpi", "1.0"): (2, 40.0, 10.0, 30.0), ("x86", "2.0"): (1, 5.0, 5.0, 5.0)}
    assert all(r[0].second == 0 and r[0].tzinfo is dt.UTC for r in flush.rollups)


async def test_a_failing_on_flush_hook_does_not_stop_the_redis_flush(
    pipeline: HeartbeatPipeline, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(flush: Flush) -> None:
        raise RuntimeError("hook bug")

    pipeline.on_flush = broken
    pipeline.add("rpi-1", pipeline.group_id("rpi", "1.0"), ONLINE, 1.0, 2.0, 3.0, 4, *REST)
    assert await pipeline.flush_redis() == 1
    assert "on_flush hook failed" in caplog.text


async def test_groups_beyond_the_batchers_limit_share_the_unknown_group(
    pipeline: HeartbeatPipeline,
) -> None:
    unknown = pipeline.group_id("", "")
    ids = {pipeline.group_id("type", str(i)) for i in range(MAX_GROUPS + 10)}
    assert len(ids) == MAX_GROUPS
    assert pipeline.group_id("type", "one more") == unknown


async def test_close_flushes_both_stores(
    pipeline: HeartbeatPipeline, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    pipeline.start()
    pipeline.add("x86-1", pipeline.group_id("x86", "1.0"), ONLINE, 1.0, 2.0, 3.0, 4, *REST)
    await pipeline.close()
    assert await redis.zscore(redis_keys.last_seen("default"), "x86-1") is not None
    assert (await _device_row(pool, "x86-1"))["uptime_seconds"] == 4


async def _cpu_partials(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        """SELECT fleet, device_type, version, count, sum, min, max
           FROM metric_rollup_partials WHERE metric = $1 ORDER BY device_type""",
        metrics.BY_NAME["cpu_usage"].metric_id,
    )
    return [tuple(row) for row in rows]


async def test_rollup_partials_merge_drains_and_wait_for_their_interval(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    pipeline = HeartbeatPipeline("default", redis, pool, rollup_flush_interval=3600.0)
    rpi = pipeline.group_id("rpi", "1.0")
    pipeline.add("rpi-1", rpi, ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    await pipeline.flush_redis()
    pipeline.add("rpi-2", rpi, ONLINE, 30.0, 20.0, 30.0, 100, *REST)
    await pipeline.flush_redis()
    await pipeline.flush_postgres()  # not due yet
    assert await _cpu_partials(pool) == []
    await pipeline.close()  # writes them
    assert await _cpu_partials(pool) == [("default", "rpi", "1.0", 2, 40.0, 10.0, 30.0)]
    assert pipeline.partials_written == len(
        await pool.fetch("SELECT 1 FROM metric_rollup_partials")
    )


async def test_failed_rollup_partials_are_kept_and_merged_with_newer_ones(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    pipeline = HeartbeatPipeline("default", redis, pool, rollup_flush_interval=0.0)
    rpi = pipeline.group_id("rpi", "1.0")
    pipeline.add("rpi-1", rpi, ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    await pipeline.flush_redis()
    await pool.execute("ALTER TABLE metric_rollup_partials RENAME TO partials_away")
    try:
        await pipeline.flush_postgres()
    finally:
        await pool.execute("ALTER TABLE partials_away RENAME TO metric_rollup_partials")
    pipeline.add("rpi-2", rpi, ONLINE, 50.0, 20.0, 30.0, 100, *REST)
    await pipeline.flush_redis()
    await pipeline.flush_postgres()
    assert await _cpu_partials(pool) == [("default", "rpi", "1.0", 2, 60.0, 10.0, 50.0)]
    await pipeline.close()


async def _drop_sample_partitions(pool: asyncpg.Pool) -> None:
    """Drop every partition of device_samples (the template may have some around now)."""
    names = await pool.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'device_samples'::regclass"""
    )
    for row in names:
        await pool.execute(f'DROP TABLE "{row["relname"]}"')


async def test_samples_without_a_partition_are_counted_as_dropped(
    pipeline: HeartbeatPipeline, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    await _drop_sample_partitions(pool)
    pipeline.add("rpi-1", pipeline.group_id("rpi", "1.0"), ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    await pipeline.flush_redis()
    assert await pipeline.flush_postgres() == 1
    assert (pipeline.samples_dropped, pipeline.samples_written) == (1, 0)
    assert "dropped 1 device samples" in caplog.text
    assert (await _device_row(pool, "rpi-1"))["status"] == "online"


async def test_sampled_heartbeats_reach_device_samples(
    pipeline: HeartbeatPipeline, pool: asyncpg.Pool
) -> None:
    now = dt.datetime.now(dt.UTC)
    await _drop_sample_partitions(pool)
    await create_partition(
        pool, "device_samples", now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    )
    rpi = pipeline.group_id("rpi", "1.0")
    pipeline.add("rpi-1", rpi, ONLINE, 10.0, 20.0, 30.0, 100, *REST)
    await pipeline.flush_redis()
    pipeline.add("rpi-1", rpi, ONLINE, 11.0, 20.0, 30.0, 101, *REST)  # within 300 s: no sample
    await pipeline.flush_redis()
    await pipeline.flush_postgres()
    assert (pipeline.samples_written, pipeline.samples_dropped) == (1, 0)
    row = await pool.fetchrow("SELECT cpu_usage, uptime_seconds, temperature FROM device_samples")
    # The COPY window coalesced both beats: the later values, sampled because the first was.
    assert row is not None and tuple(row) == (11.0, 101, 45.0)
