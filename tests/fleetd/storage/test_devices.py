from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from fleetd.storage.devices import (
    DeviceExists,
    NewDevice,
    add_certificate,
    certificate_standing,
    count_devices,
    get_device,
    insert_device,
    list_devices,
    merge_heartbeats,
    refresh_registration,
)


def _device(device_id: str) -> NewDevice:
    return NewDevice(device_id, "default", device_id.upper(), "raspberry-pi", "1.0.0", {}, {})


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
        assert await merge_heartbeats(conn, [("rpi-001", t1, 10.0, 20.0, 30.0, 100)]) == 1
        assert await merge_heartbeats(conn, [("rpi-001", t0, 99.0, 99.0, 99.0, 1)]) == 0
        assert await merge_heartbeats(conn, [("unknown-device", t1, 1.0, 1.0, 1.0, 1)]) == 0
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
        await merge_heartbeats(conn, [("rpi-001", now, 1.0, 1.0, 1.0, 1)])
    row = await get_device(pool, "rpi-001")
    assert row is not None and row["status"] == "maintenance"
