"""export_jobs rows (claims, leases, limits, expiry) and the rows each data type exports,
against the real database (and Redis for DEVICE_EVENTS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.domain.analytics.exports import COLUMNS, ExportSpec, checked_request
from fleetd.storage import audit, events
from fleetd.storage.analytics import exports as store
from fleetd.storage.analytics.exports import SQL_COLUMNS, RowSource, TooManyExports
from fleetd.storage.devices import NewDevice, insert_device
from tests.support.analytics import create_partition

UTC = dt.UTC
JAN1 = dt.datetime(2024, 1, 1, tzinfo=UTC)
FEB1 = dt.datetime(2024, 2, 1, tzinfo=UTC)


def spec(data_type: str = "DEVICE_METRICS", fields: Sequence[str] = (), **kw: Any) -> ExportSpec:
    args: dict[str, Any] = {"format": "CSV", "start": JAN1, "end": FEB1, **kw}
    return checked_request(data_type=data_type, fields=list(fields), **args)


# --------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Sample:
    device_id: str
    seen_at: dt.datetime
    cpu: float
    memory: float
    temperature: float | None


SAMPLES = [
    Sample("rpi-1", JAN1 + dt.timedelta(minutes=5), 25.5, 40.0, 51.25),
    Sample("rpi-1", JAN1 + dt.timedelta(minutes=10), 0.1, 40.5, None),
    Sample("rpi-2", JAN1 + dt.timedelta(days=3), 99.0, 12.75, -4.5),
    Sample("rpi-2", FEB1 + dt.timedelta(minutes=1), 1.0, 1.0, 1.0),  # outside January
]


async def add_devices(pool: asyncpg.Pool, *device_ids: str) -> dict[str, int]:
    """Insert devices; their device keys."""
    keys = {}
    async with pool.acquire() as conn:
        for device_id in device_ids:
            await insert_device(
                conn, NewDevice(device_id, "default", device_id, "raspberry-pi", "1.0.0", {}, {})
            )
            keys[device_id] = await conn.fetchval(
                "SELECT device_key FROM devices WHERE device_id = $1", device_id
            )
    return keys


async def seed_samples(pool: asyncpg.Pool, samples: Sequence[Sample] = SAMPLES) -> None:
    keys = await add_devices(pool, *sorted({s.device_id for s in samples}))
    await create_partition(
        pool, "device_samples", JAN1 - dt.timedelta(days=1), FEB1 + dt.timedelta(days=1)
    )
    await pool.executemany(
        """INSERT INTO device_samples (seen_at, device_key, cpu_usage, memory_usage,
               memory_used_mb, memory_total_mb, disk_usage, disk_used_gb, disk_total_gb,
               uptime_seconds, load_avg_1m, load_avg_5m, load_avg_15m, temperature,
               network_rx_rate, network_tx_rate)
           VALUES ($1, $2, $3, $4, 1024, 4096, 50.5, 10.5, 32.0, 3600, 0.5, 0.25, 0.125,
                   $5, 1500.5, NULL)""",
        [(s.seen_at, keys[s.device_id], s.cpu, s.memory, s.temperature) for s in samples],
    )


# --------------------------------------------------------------------------- jobs


async def test_a_queued_job_is_claimed_once_with_a_lease(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
    assert (job.state, job.attempts, job.size_bytes) == ("queued", 0, 0)
    assert job.spec == spec()
    assert dt.timedelta(seconds=3599) < job.expires_at - job.created_at <= dt.timedelta(hours=1)

    async def claim(owner: str) -> store.ExportJob | None:
        async with pool.acquire() as conn:
            return await store.claim_job(conn, owner, lease_seconds=60)

    first, second = await asyncio.gather(claim("w1"), claim("w2"))
    claimed = [c for c in (first, second) if c is not None]
    assert len(claimed) == 1
    assert claimed[0].export_id == job.export_id
    assert claimed[0].state == "running" and claimed[0].attempts == 1
    assert claimed[0].lease_until is not None


async def test_a_lapsed_lease_is_claimed_again_and_the_old_owner_can_change_nothing(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        job = await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
        assert await store.claim_job(conn, "w1") is not None
        assert await store.claim_job(conn, "w2") is None  # lease held
        await conn.execute("UPDATE export_jobs SET lease_until = now() - interval '1 second'")
        again = await store.claim_job(conn, "w2")
    assert again is not None and again.attempts == 2 and again.lease_owner == "w2"
    assert not await store.renew_lease(pool, job.export_id, "w1", lease_seconds=60)
    assert not await store.finish_ready(
        pool, job.export_id, "w1", rows=1, size_bytes=1, sha256="0" * 64
    )
    assert await store.give_up(pool, job.export_id, "w1", "boom") is None
    assert await store.renew_lease(pool, job.export_id, "w2", lease_seconds=60)
    assert await store.finish_ready(
        pool, job.export_id, "w2", rows=3, size_bytes=10, sha256="a" * 64
    )
    done = await store.get_job(pool, job.export_id)
    assert done is not None
    assert (done.state, done.rows, done.size_bytes, done.sha256) == ("ready", 3, 10, "a" * 64)
    assert done.lease_owner is None and done.finished_at is not None


async def test_a_failed_attempt_requeues_until_the_third_then_fails_with_the_error(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        job = await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
        states = []
        for attempt in range(3):
            claimed = await store.claim_job(conn, "w")
            assert claimed is not None and claimed.attempts == attempt + 1
            states.append(await store.give_up(conn, job.export_id, "w", f"error {attempt}"))
        assert await store.claim_job(conn, "w") is None
    assert states == ["queued", "queued", "failed"]
    failed = await store.get_job(pool, job.export_id)
    assert failed is not None and failed.error == "error 2" and failed.finished_at is not None


async def test_a_third_lapsed_lease_fails_the_job(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
        for _ in range(3):
            assert await store.claim_job(conn, "w") is not None
            await conn.execute("UPDATE export_jobs SET lease_until = now() - interval '1 second'")
        assert await store.claim_job(conn, "w") is None
        assert await store.fail_abandoned(conn) == 1
    failed = await store.get_job(pool, job.export_id)
    assert failed is not None and failed.state == "failed"
    assert failed.error is not None and "every attempt (3)" in failed.error


async def test_a_caller_may_queue_ten_exports_and_no_more(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for _ in range(10):
            await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
        with pytest.raises(TooManyExports, match="at most 10"):
            await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
        await store.insert_job(conn, principal="api_key:b", spec=spec(), ttl=3600)  # another caller
        assert await store.claim_job(conn, "w") is not None  # one of a's starts: a slot frees
        await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)


async def test_concurrent_inserts_never_exceed_the_queue_limit(pool: asyncpg.Pool) -> None:
    async def insert() -> bool:
        async with pool.acquire() as conn:
            try:
                await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
            except TooManyExports:
                return False
            return True

    results = await asyncio.gather(*(insert() for _ in range(15)))
    assert results.count(True) == 10


async def test_a_caller_runs_at_most_two_exports_at_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for principal in ("api_key:a", "api_key:a", "api_key:a", "api_key:b"):
            await store.insert_job(conn, principal=principal, spec=spec(), ttl=3600)
        claimed = [await store.claim_job(conn, f"w{i}") for i in range(4)]
    principals = [c.principal if c else None for c in claimed]
    assert principals == ["api_key:a", "api_key:a", "api_key:b", None]


async def test_jobs_past_their_expiry_are_expired_and_never_claimed(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        old = await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
        young = await store.insert_job(conn, principal="api_key:a", spec=spec(), ttl=3600)
        await conn.execute(
            "UPDATE export_jobs SET expires_at = now() - interval '1 second' WHERE export_id = $1",
            old.export_id,
        )
        expired = await store.expire_jobs(conn)
        assert [j.export_id for j in expired] == [old.export_id]
        assert await store.expire_jobs(conn) == []
        claimed = await store.claim_job(conn, "w")
    assert claimed is not None and claimed.export_id == young.export_id


# --------------------------------------------------------------------------- rows


def test_every_sql_data_type_has_an_expression_for_every_column() -> None:
    for data_type, expressions in SQL_COLUMNS.items():
        assert set(expressions) == {c.name for c in COLUMNS[data_type]}, data_type


async def collect(
    pool: asyncpg.Pool,
    spec_: ExportSpec,
    *,
    redis: aioredis.Redis | None = None,
    now: dt.datetime | None = None,
    raw_retention: float = 10 * 365 * 86400.0,
    batch: int = 5000,
) -> list[list[Any]]:
    async with pool.acquire() as conn:
        source = RowSource(
            conn, redis, "default", now or dt.datetime.now(UTC), raw_retention, 300.0
        )
        return [
            list(row)
            async for rows in store.export_rows(spec_, source, batch=batch)
            for row in rows
        ]


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_device_metrics_rows_are_the_samples_in_the_window(pool: asyncpg.Pool) -> None:
    await seed_samples(pool)
    fields = ["device_id", "timestamp", "cpu_usage", "memory_usage", "temperature"]
    rows = await collect(pool, spec(fields=fields))
    expected = [
        [s.device_id, _iso(s.seen_at), s.cpu, s.memory, s.temperature]
        for s in SAMPLES
        if JAN1 <= s.seen_at < FEB1
    ]
    assert sorted(rows, key=str) == sorted(expected, key=str)


async def test_device_metrics_every_column_values_as_written(pool: asyncpg.Pool) -> None:
    await seed_samples(pool, SAMPLES[:1])
    [row] = await collect(pool, spec())
    names = [c.name for c in COLUMNS["DEVICE_METRICS"]]
    assert dict(zip(names, row, strict=True)) == {
        "device_id": "rpi-1",
        "timestamp": "2024-01-01T00:05:00.000000Z",
        "cpu_usage": 25.5,
        "memory_usage": 40.0,
        "disk_usage": 50.5,
        "temperature": 51.25,
        "load_avg_1m": 0.5,
        "network_rx_bytes": 1500.5,
        "network_tx_bytes": None,
        "memory_used_mb": 1024,
        "memory_total_mb": 4096,
        "disk_used_gb": 10.5,
        "disk_total_gb": 32.0,
        "uptime_seconds": 3600,
        "load_avg_5m": 0.25,
        "load_avg_15m": 0.125,
        "resolution_seconds": 300,
    }


async def test_device_metrics_before_raw_retention_come_from_hourly_rows(
    pool: asyncpg.Pool,
) -> None:
    keys = await add_devices(pool, "rpi-1")
    now = dt.datetime(2024, 1, 10, 12, 30, tzinfo=UTC)
    await create_partition(
        pool, "device_samples", now - dt.timedelta(days=2), now + dt.timedelta(days=1)
    )
    await create_partition(pool, "device_samples_1h", JAN1, now + dt.timedelta(days=1))
    old_hour, recent_hour = JAN1 + dt.timedelta(hours=5), now - dt.timedelta(hours=2)
    for hour_start, cpu in ((old_hour, 30.5), (recent_hour, 77.0)):  # recent: also raw
        await pool.execute(
            """INSERT INTO device_samples_1h (hour_start, device_key, samples, cpu_usage_avg,
                   memory_total_mb) VALUES ($1, $2, 12, $3, 2048)""",
            hour_start.replace(minute=0),
            keys["rpi-1"],
            cpu,
        )
    await pool.execute(
        """INSERT INTO device_samples (seen_at, device_key, cpu_usage, memory_usage,
               memory_used_mb, memory_total_mb, disk_usage, disk_used_gb, disk_total_gb,
               uptime_seconds, load_avg_1m, load_avg_5m, load_avg_15m)
           VALUES ($1, $2, 76.5, 1, 1, 2048, 1, 1, 1, 1, 1, 1, 1)""",
        recent_hour,
        keys["rpi-1"],
    )
    fields = ["timestamp", "cpu_usage", "memory_total_mb", "resolution_seconds"]
    rows = await collect(pool, spec(fields=fields, end=now), now=now, raw_retention=86400.0)
    assert rows == [
        ["2024-01-01T05:00:00.000000Z", 30.5, 2048, 3600],
        [_iso(recent_hour), 76.5, 2048, 300],
    ]


async def test_rows_come_in_batches_of_the_asked_size(pool: asyncpg.Pool) -> None:
    await seed_samples(pool)
    async with pool.acquire() as conn:
        source = RowSource(conn, None, "default", dt.datetime.now(UTC), 1e9, 300.0)
        sizes = [len(rows) async for rows in store.export_rows(spec(), source, batch=2)]
    assert sizes == [2, 1]


async def test_inventory_is_one_row_per_device(pool: asyncpg.Pool) -> None:
    await add_devices(pool, "b-2", "a-1")
    await pool.execute(
        """UPDATE devices SET tags = '{lab,"x,y"}', metadata = '{"site": "dc-1"}',
                  temperature = 0.1, ip_address = '10.0.0.7', status = 'online'
            WHERE device_id = 'a-1'"""
    )
    fields = [
        "device_id",
        "status",
        "tags",
        "metadata",
        "temperature",
        "ip_address",
        "offboarded_at",
    ]
    rows = await collect(pool, spec("DEVICE_INVENTORY", fields, start=None, end=None))
    assert rows == [
        ["a-1", "online", '["lab", "x,y"]', '{"site": "dc-1"}', 0.1, "10.0.0.7", None],
        ["b-2", "unknown", "[]", "{}", None, None, None],
    ]


async def test_deployment_history_is_every_status_report_in_the_window(pool: asyncpg.Pool) -> None:
    await add_devices(pool, "rpi-1")
    await pool.execute(
        """INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version, spec)
           VALUES ('as-1', 'rpi-1', 'dep-1', 'app', '1.2.0', '')"""
    )
    reports = [
        (1, "downloading", JAN1 + dt.timedelta(hours=1)),
        (2, "healthy", JAN1 + dt.timedelta(hours=2)),
        (3, "failed", FEB1),  # after the window
    ]
    await pool.executemany(
        """INSERT INTO artifact_status_reports (device_id, sequence, assignment_id, state,
               installed_version, received_at) VALUES ('rpi-1', $1, 'as-1', $2, '1.2.0', $3)""",
        reports,
    )
    fields = [
        "timestamp",
        "device_id",
        "deployment_id",
        "artifact_name",
        "artifact_version",
        "state",
        "sequence",
    ]
    rows = await collect(pool, spec("DEPLOYMENT_HISTORY", fields))
    assert rows == [
        [_iso(at), "rpi-1", "dep-1", "app", "1.2.0", state, seq]
        for seq, state, at in reports
        if at < FEB1
    ]


async def test_audit_log_rows_are_the_entries_in_the_window(pool: asyncpg.Pool) -> None:
    entry = audit.Entry(
        "key-1", "api_key", "admin", "fleetd.v1.AnalyticsService/ExportData", "x", "r-1", "OK"
    )
    async with pool.acquire() as conn:
        appended = [await audit.append(conn, entry), await audit.append(conn, entry)]
    now = dt.datetime.now(UTC)
    window = {"start": now - dt.timedelta(hours=1), "end": now + dt.timedelta(hours=1)}
    rows = await collect(
        pool,
        spec("AUDIT_LOG", ["seq", "timestamp", "actor", "method", "outcome", "hash"], **window),
    )
    assert rows == [
        [r.seq, _iso(r.at), "key-1", entry.method, "OK", r.hash.hex()] for r in appended
    ]


async def test_device_events_are_read_from_the_fleet_stream_in_the_window(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    at = now.timestamp()
    published = [
        events.Event(events.OFFLINE, "rpi-1", at - 7200, {"previous": "online"}),  # too old
        events.Event(events.ONLINE, "rpi-1", at - 30, {"previous": "offline"}),
        events.Event(
            events.DEPLOYMENT,
            "rpi-2",
            at - 10,
            {"assignment_id": "as-1", "deployment_id": "dep-1", "state": "healthy", "reason": ""},
        ),
    ]
    await events.publish(redis, "default", published)
    fields = [
        "timestamp",
        "device_id",
        "event_type",
        "previous_status",
        "deployment_id",
        "state",
        "details",
    ]
    window = {"start": now - dt.timedelta(minutes=5), "end": now + dt.timedelta(minutes=5)}
    rows = await collect(pool, spec("DEVICE_EVENTS", fields, **window), redis=redis, batch=1)
    assert rows == [
        [
            _iso(now - dt.timedelta(seconds=30)),
            "rpi-1",
            "device.online",
            "offline",
            None,
            None,
            '{"previous":"offline"}',
        ],
        [
            _iso(now - dt.timedelta(seconds=10)),
            "rpi-2",
            "device.deployment",
            None,
            "dep-1",
            "healthy",
            '{"assignment_id":"as-1","deployment_id":"dep-1","reason":"","state":"healthy"}',
        ],
    ]


async def test_a_job_id_that_does_not_exist_is_none(pool: asyncpg.Pool) -> None:
    assert await store.get_job(pool, uuid.uuid4()) is None
