"""A heartbeat flush's writes: the batcher's commands to Redis, its records to PostgreSQL
(devices, per-device samples) and its rollup partials."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
import redis.asyncio as aioredis

from core_ext import CopyRecord, Sketch
from fleetd.domain.analytics import metrics
from fleetd.storage import redis_keys
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.heartbeat_flush import WRITE_ERRORS, write_latest, write_records
from fleetd.storage.rollups import Partials
from tests.support.analytics import create_partition

FLEET = "default"
WRITER = "test-host:1:0"
HOUR = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def record(
    device_id: str,
    seen_at: dt.datetime,
    *,
    cpu: float = 10.0,
    temperature: float | None = 45.5,
    rx_rate: float | None = 1250.0,
    sample: bool = True,
) -> CopyRecord:
    return (
        device_id, seen_at, cpu, 20.0, 30.0, 5, 700, 4096, 1.5, 64.0, 2.0, 1.5, 1.0,
        temperature, rx_rate, None, sample,
    )  # fmt: skip


async def _devices(pool: asyncpg.Pool, *device_ids: str) -> None:
    async with pool.acquire() as conn:
        for device_id in device_ids:
            await insert_device(conn, NewDevice(device_id, FLEET, device_id, "rpi", "1.0", {}, {}))


async def _samples_partition(pool: asyncpg.Pool) -> None:
    await create_partition(pool, "device_samples", HOUR, HOUR + dt.timedelta(hours=6))


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


async def test_records_update_devices_with_temperature(pool: asyncpg.Pool) -> None:
    await _devices(pool, "rpi-1", "rpi-2")
    await _samples_partition(pool)
    seen = HOUR + dt.timedelta(minutes=5)
    merged = await write_records(
        pool,
        [record("rpi-1", seen), record("rpi-2", seen, temperature=None)],
        {},
        writer=WRITER,
        fleet=FLEET,
    )
    assert merged is not None and merged.updated == 2
    rows = await pool.fetch(
        "SELECT device_id, status, cpu_usage, uptime_seconds, temperature FROM devices"
        " ORDER BY device_id"
    )
    assert [tuple(row) for row in rows] == [
        ("rpi-1", "online", 10.0, 5, 45.5),
        ("rpi-2", "online", 10.0, 5, None),
    ]


async def test_sampled_records_become_device_samples(pool: asyncpg.Pool) -> None:
    await _devices(pool, "rpi-1", "rpi-2")
    await _samples_partition(pool)
    seen = HOUR + dt.timedelta(minutes=5, microseconds=123456)
    rows = [
        record("rpi-1", seen, temperature=None, rx_rate=None),
        record("rpi-2", seen, sample=False),
    ]
    merged = await write_records(pool, rows, {}, writer=WRITER, fleet=FLEET)
    assert merged is not None and (merged.samples, merged.samples_dropped) == (1, 0)
    sample = await pool.fetchrow(
        """SELECT s.*, d.device_id FROM device_samples s JOIN devices d USING (device_key)"""
    )
    assert sample is not None
    assert dict(sample) | {"device_key": None} == {
        "seen_at": seen,
        "device_key": None,
        "device_id": "rpi-1",
        "cpu_usage": 10.0,
        "memory_usage": 20.0,
        "memory_used_mb": 700,
        "memory_total_mb": 4096,
        "disk_usage": 30.0,
        "disk_used_gb": 1.5,
        "disk_total_gb": 64.0,
        "uptime_seconds": 5,
        "load_avg_1m": 2.0,
        "load_avg_5m": 1.5,
        "load_avg_15m": 1.0,
        "temperature": None,
        "network_rx_rate": None,
        "network_tx_rate": None,
    }


async def test_sample_integers_are_clamped_to_the_columns(pool: asyncpg.Pool) -> None:
    await _devices(pool, "rpi-1")
    await _samples_partition(pool)
    huge = list(record("rpi-1", HOUR))
    huge[5], huge[6], huge[7] = 2**62, 2**40, 2**40  # uptime, memory used, memory total
    await write_records(pool, [tuple(huge)], {}, writer=WRITER, fleet=FLEET)  # type: ignore[list-item]
    row = await pool.fetchrow(
        "SELECT uptime_seconds, memory_used_mb, memory_total_mb FROM device_samples"
    )
    assert row is not None and tuple(row) == (2**31 - 1, 2**31 - 1, 2**31 - 1)


async def test_a_retried_flush_writes_each_sample_once(pool: asyncpg.Pool) -> None:
    await _devices(pool, "rpi-1")
    await _samples_partition(pool)
    rows = [record("rpi-1", HOUR + dt.timedelta(seconds=1))]
    first = await write_records(pool, rows, {}, writer=WRITER, fleet=FLEET)
    again = await write_records(pool, rows, {}, writer=WRITER, fleet=FLEET)
    assert first is not None and again is not None
    assert (first.samples, again.samples, again.samples_dropped) == (1, 0, 0)
    assert await pool.fetchval("SELECT count(*) FROM device_samples") == 1


async def test_samples_without_a_partition_are_dropped_but_devices_update(
    pool: asyncpg.Pool,
) -> None:
    await _devices(pool, "rpi-1")
    seen = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # no partition covers it
    merged = await write_records(pool, [record("rpi-1", seen)], {}, writer=WRITER, fleet=FLEET)
    assert merged is not None
    assert (merged.updated, merged.samples, merged.samples_dropped) == (1, 0, 1)
    assert merged.error is not None and "partition" in merged.error
    row = await pool.fetchrow("SELECT last_seen, status FROM devices")
    assert row is not None and tuple(row) == (seen, "online")


def _sketch(*values: float) -> Sketch:
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    return sketch


async def test_rollup_partials_are_appended_with_metric_ids(pool: asyncpg.Pool) -> None:
    bucket = HOUR
    partials: Partials = {
        (bucket, "rpi", "1.0", "cpu_usage"): _sketch(10.0, 30.0),
        (bucket, "rpi", "1.0", "temperature"): _sketch(51.5),
    }
    assert await write_records(pool, [], partials, writer=WRITER, fleet=FLEET) is None
    await write_records(
        pool, [], {(bucket, "rpi", "1.0", "cpu_usage"): _sketch(20.0)}, writer="w2", fleet=FLEET
    )
    rows = await pool.fetch(
        """SELECT writer, bucket_start, fleet, device_type, version, metric, count, sum, min,
                  max, sketch FROM metric_rollup_partials ORDER BY metric, writer"""
    )
    cpu, temperature = metrics.BY_NAME["cpu_usage"], metrics.BY_NAME["temperature"]
    assert [tuple(row)[:10] for row in rows] == [
        (WRITER, bucket, FLEET, "rpi", "1.0", cpu.metric_id, 2, 40.0, 10.0, 30.0),
        ("w2", bucket, FLEET, "rpi", "1.0", cpu.metric_id, 1, 20.0, 20.0, 20.0),
        (WRITER, bucket, FLEET, "rpi", "1.0", temperature.metric_id, 1, 51.5, 51.5, 51.5),
    ]
    merged = Sketch.from_bytes(rows[0]["sketch"])
    merged.merge(Sketch.from_bytes(rows[1]["sketch"]))
    assert (merged.count, merged.min, merged.max) == (3, 10.0, 30.0)
    assert merged.quantile(0.5) == pytest.approx(20.0, rel=0.01)


async def test_a_refused_write_raises_one_of_the_write_errors(pool: asyncpg.Pool) -> None:
    await pool.execute("ALTER TABLE devices RENAME TO devices_away")
    try:
        with pytest.raises(WRITE_ERRORS):
            await write_records(pool, [record("rpi-1", HOUR)], {}, writer=WRITER, fleet=FLEET)
    finally:
        await pool.execute("ALTER TABLE devices_away RENAME TO devices")
