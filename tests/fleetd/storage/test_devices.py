from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.storage import redis_keys
from fleetd.storage.devices import (
    DEVICE_COLUMNS,
    IN_PROGRESS_STATES,
    ActiveDeployment,
    DeviceChanges,
    DeviceExists,
    DeviceRecord,
    NewDevice,
    SqlCondition,
    Total,
    add_certificate,
    certificate_standing,
    count_devices,
    get_device,
    get_devices,
    insert_device,
    list_devices,
    merge_heartbeats,
    offboard_device,
    record_heartbeat,
    refresh_registration,
    total_devices,
    update_device,
)
from fleetd.storage.types import Connection
from fleetd.v1 import device_pb2

REST = (0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, None, None, None, False)
"""The heartbeat row's columns after uptime (memory/disk totals, loads, temperature, rates,
sample flag), for tests about the first six."""


def _device(device_id: str) -> NewDevice:
    return NewDevice(device_id, "default", device_id.upper(), "raspberry-pi", "1.0.0", {}, {})


async def test_reads_return_typed_records_whose_columns_are_also_readable_by_name(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        inserted = await insert_device(
            conn,
            NewDevice("rpi-001", "default", "n", "raspberry-pi", "1", {"os": "x"}, {"a": "b"}),
        )
    assert isinstance(inserted, DeviceRecord)
    assert (inserted.device_id, inserted.metadata, inserted.system_info) == (
        "rpi-001",
        {"a": "b"},
        {"os": "x"},
    )
    assert (inserted.status, inserted.tags, inserted.last_seen) == ("unknown", [], None)
    fetched = await get_device(pool, "rpi-001")
    assert fetched == inserted
    assert await get_devices(pool, ["rpi-001", "nobody"]) == {"rpi-001": inserted}
    assert await get_device(pool, "nobody") is None
    updated = await update_device(pool, "rpi-001", DeviceChanges(name="m"), 30.0)
    assert updated is not None and updated.name == "m"
    assert updated.updated_at >= inserted.updated_at
    for column in DEVICE_COLUMNS.split(", "):
        assert inserted[column] == getattr(inserted, column)
    with pytest.raises(KeyError):
        inserted["secret_column"]


async def test_a_written_through_heartbeat_reaches_redis_and_postgresql(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
    seen = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    await record_heartbeat(
        pool,
        redis,
        "default",
        ("rpi-001", seen, 12.5, None, 30.0, 60, *REST),
        state=device_pb2.ONLINE,
    )
    assert await redis.zscore(redis_keys.last_seen("default"), "rpi-001") == seen.timestamp()
    key = redis_keys.device_stats("rpi-001")
    stats = await redis.hgetall(key)
    assert (
        stats[b"cpu"] == b"12.5"
        and stats[b"mem"] == b""
        and stats[b"state"] == b"%d" % device_pb2.ONLINE
    )
    assert 0 < await redis.ttl(key) <= redis_keys.STATS_TTL_SECONDS
    row = await get_device(pool, "rpi-001")
    assert row is not None
    assert (row.last_seen, row.cpu_usage, row.memory_usage, row.status) == (
        seen,
        12.5,
        None,
        "online",
    )


async def test_duplicate_device_id_is_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
        with pytest.raises(DeviceExists):
            await insert_device(conn, _device("rpi-001"))


async def test_listing_orders_limits_and_applies_conditions(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for i in range(25):
            await insert_device(conn, _device(f"dev-{i:03d}"))
    page = await list_devices(pool, limit=10, order_by="device_id DESC")
    assert [r["device_id"] for r in page] == [f"dev-{i:03d}" for i in range(24, 14, -1)]
    after = await list_devices(
        pool,
        limit=100,
        order_by="device_id",
        conditions=[lambda first: (f"device_id > ${first}", ["dev-019"])],
    )
    assert [r["device_id"] for r in after] == [f"dev-{i:03d}" for i in range(20, 25)]
    assert await count_devices(pool) == 25


async def test_certificate_standing_reports_revocation_and_offboarding(pool: asyncpg.Pool) -> None:
    now = dt.datetime.now(dt.UTC)
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
        await add_certificate(conn, "rpi-001", "abc", "f" * 64, now, now + dt.timedelta(days=1))
    standing = await certificate_standing(pool, "abc", "f" * 64)
    assert standing is not None
    assert (standing.device_id, standing.revoked, standing.offboarded) == ("rpi-001", False, False)
    assert (standing.device_type, standing.version) == ("raspberry-pi", "1.0.0")
    assert await certificate_standing(pool, "abc", "e" * 64) is None
    await pool.execute("UPDATE device_certificates SET revoked_at = now()")
    await pool.execute("UPDATE devices SET offboarded_at = now()")
    standing = await certificate_standing(pool, "abc", "f" * 64)
    assert standing is not None and standing.revoked and standing.offboarded


async def test_reregistration_refreshes_profile_and_keeps_operator_metadata(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await insert_device(
            conn,
            NewDevice("rpi-001", "default", "n", "raspberry-pi", "1", {}, {"site": "a"}),
        )
    row = await refresh_registration(
        pool,
        "rpi-001",
        device_type="",
        agent_version="0.2.0",
        system_info={"arch": "aarch64"},
        tags=["lab"],
        metadata={"rack": "7"},
    )
    assert row is not None
    assert row["device_type"] == "raspberry-pi"
    assert row["agent_version"] == "0.2.0"
    assert row["tags"] == ["lab"]
    assert row["metadata"] == {"site": "a", "rack": "7"}
    assert row["system_info"] == {"arch": "aarch64"}


async def test_merged_heartbeats_set_online_and_never_move_last_seen_back(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
        await insert_device(conn, _device("rpi-002"))
        t1 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
        t0 = t1 - dt.timedelta(minutes=1)
        merged = await merge_heartbeats(conn, [("rpi-001", t1, 10.0, 20.0, 30.0, 100, *REST)])
        assert merged.updated == 1
        older = await merge_heartbeats(conn, [("rpi-001", t0, 99.0, 99.0, 99.0, 1, *REST)])
        assert older.updated == 0
        unknown = await merge_heartbeats(conn, [("unknown-device", t1, 1.0, 1.0, 1.0, 1, *REST)])
        assert unknown.updated == 0
    row = await get_device(pool, "rpi-001")
    assert row is not None
    assert row["last_seen"] == t1
    assert row["status"] == "online"
    assert row["cpu_usage"] == pytest.approx(10.0)
    other = await get_device(pool, "rpi-002")
    assert other is not None and other["status"] == "unknown" and other["last_seen"] is None


async def test_heartbeat_keeps_an_operator_set_maintenance_status(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
        await conn.execute("UPDATE devices SET status = 'maintenance'")
        now = dt.datetime.now(dt.UTC)
        await merge_heartbeats(conn, [("rpi-001", now, 1.0, 1.0, 1.0, 1, *REST)])
    row = await get_device(pool, "rpi-001")
    assert row is not None and row["status"] == "maintenance"


async def _assign(conn: Connection, assignment_id: str, state: str, *, active: bool = True) -> None:
    await conn.execute(
        """INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version, spec,
                                    active, state)
           VALUES ($1, 'rpi-001', 'deploy-001', $1, '2.0.0', '', $2, $3)""",
        assignment_id,
        active,
        state,
    )


@pytest.mark.parametrize("state", IN_PROGRESS_STATES)
async def test_offboarding_a_device_in_an_active_deployment_needs_force(
    pool: asyncpg.Pool, state: str
) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
        await _assign(conn, "firmware", state)
        with pytest.raises(ActiveDeployment) as refused:
            async with conn.transaction():
                await offboard_device(conn, "rpi-001", "test")
        assert [a.assignment_id for a in refused.value.assignments] == ["firmware"]
        assert "deploy-001" in str(refused.value)
        # Refused means nothing changed.
        row = await get_device(conn, "rpi-001")
        assert row is not None and row["offboarded_at"] is None
        assert await conn.fetchval("SELECT state FROM assignments") == state


async def test_forced_offboarding_cancels_in_progress_assignments_only(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
        await _assign(conn, "firmware", "applying")
        await _assign(conn, "config", "healthy")
        await _assign(conn, "old-firmware", "pending", active=False)  # superseded: not active
        async with conn.transaction():
            done = await offboard_device(conn, "rpi-001", "test", force=True)
        assert done is not None
        assert [(a.assignment_id, a.state) for a in done.cancelled] == [("firmware", "applying")]
        rows = await conn.fetch("SELECT assignment_id, state, active FROM assignments")
        assert {r["assignment_id"]: (r["state"], r["active"]) for r in rows} == {
            "firmware": ("cancelled", False),
            "config": ("healthy", True),
            "old-firmware": ("pending", False),
        }


async def test_offboarding_without_assignments_needs_no_force(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, _device("rpi-001"))
        await _assign(conn, "firmware", "failed")
        async with conn.transaction():
            done = await offboard_device(conn, "rpi-001", "test")
        assert done is not None and done.cancelled == []
        async with conn.transaction():
            assert await offboard_device(conn, "rpi-001", "test") is None


async def _fleet(pool: asyncpg.Pool, size: int) -> None:
    async with pool.acquire() as conn:
        for i in range(size):
            await insert_device(conn, _device(f"dev-{i:03d}"))
        await conn.execute("ANALYZE devices")


def _type_is(value: str) -> Callable[[int], SqlCondition]:
    return lambda first: (f"device_type = ${first}", [value])


async def test_total_is_exact_up_to_the_limit(pool: asyncpg.Pool) -> None:
    await _fleet(pool, 25)
    async with pool.acquire() as conn:
        assert await total_devices(conn, exact_up_to=25) == Total(25, False)
        assert await total_devices(conn, _type_is("raspberry-pi"), exact_up_to=100) == Total(
            25, False
        )
        assert await total_devices(conn, _type_is("esp32"), exact_up_to=100) == Total(0, False)


async def test_total_past_the_limit_is_an_estimate_of_at_least_the_rows_counted(
    pool: asyncpg.Pool,
) -> None:
    await _fleet(pool, 25)
    async with pool.acquire() as conn:
        total = await total_devices(conn, _type_is("raspberry-pi"), exact_up_to=10)
        assert total.estimated
        assert total.count >= 11
        assert total.count == pytest.approx(25, abs=3)  # the statistics are fresh


async def test_total_over_the_time_budget_is_an_estimate(pool: asyncpg.Pool) -> None:
    await _fleet(pool, 25)
    slow: Callable[[int], SqlCondition] = lambda first: ("pg_sleep(0.01) IS NOT NULL", [])  # noqa: E731
    async with pool.acquire() as conn:
        total = await total_devices(conn, slow, exact_up_to=1000, budget_ms=20)
        assert total.estimated
        # The cancelled count left the connection usable.
        assert await conn.fetchval("SELECT 1") == 1
        assert await total_devices(conn, slow, exact_up_to=0) == Total(25, False)
