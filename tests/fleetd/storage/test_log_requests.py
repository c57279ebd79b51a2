"""Log requests and bundles in PostgreSQL: issuing, what heartbeats carry, fulfilment."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest

from fleetd.device.v1 import agent_pb2
from fleetd.storage.blobs import Blob
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.log_requests import (
    MAX_LOG_BYTES,
    MAX_PENDING_PER_DEVICE,
    AlreadyFulfilled,
    DeviceNotFound,
    Expired,
    LogRequestNotFound,
    TooManyPending,
    fulfil,
    get_bundle,
    issue_log_request,
    list_log_requests,
    pending_log_requests,
    upload_target,
)

BLOB = Blob("ab" * 32, 1234)


@pytest.fixture
async def devices(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for device_id in ("rpi-001", "rpi-002"):
            await insert_device(
                conn, NewDevice(device_id, "default", device_id, "raspberry-pi", "1.0", {}, {})
            )


async def _issue(pool: asyncpg.Pool, device_id: str = "rpi-001", **kw: Any) -> str:
    kw.setdefault("source", "agent_journal")
    async with pool.acquire() as conn:
        issued = await issue_log_request(conn, device_id, **kw)
    return issued.request.log_request_id


async def _fulfil(pool: asyncpg.Pool, request_id: str, device_id: str = "rpi-001") -> str:
    async with pool.acquire() as conn:
        done = await fulfil(
            conn, device_id, request_id, BLOB, content_encoding="gzip", uncompressed_size=9999
        )
    return done.bundle.bundle_id


@pytest.mark.usefixtures("devices")
async def test_issued_request_is_pending_and_bumps_the_revision(pool: asyncpg.Pool) -> None:
    since = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    until = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    async with pool.acquire() as conn:
        issued = await issue_log_request(
            conn,
            "rpi-001",
            source=agent_pb2.LOG_SOURCE_AGENT_LOG_FILE,
            since=since,
            until=until,
            max_bytes=1_000_000,
            requested_by="alice",
        )
    assert issued.revisions == {"rpi-001": 1}
    record = issued.request
    assert (record.source, record.max_bytes, record.requested_by) == (
        "agent_log_file",
        1_000_000,
        "alice",
    )
    assert dt.timedelta(hours=23) < record.expires_at - record.created_at <= dt.timedelta(hours=24)
    [pending] = await pending_log_requests(pool, "rpi-001")
    assert pending == agent_pb2.LogRequest(
        log_request_id=record.log_request_id,
        source=agent_pb2.LOG_SOURCE_AGENT_LOG_FILE,
        since=pending.since,
        until=pending.until,
        max_bytes=1_000_000,
    )
    assert pending.since.ToDatetime(tzinfo=dt.UTC) == since
    assert pending.until.ToDatetime(tzinfo=dt.UTC) == until
    assert await pending_log_requests(pool, "rpi-002") == []


@pytest.mark.usefixtures("devices")
async def test_unbounded_request_carries_no_time_range(pool: asyncpg.Pool) -> None:
    await _issue(pool)
    [pending] = await pending_log_requests(pool, "rpi-001")
    assert not pending.HasField("since")
    assert not pending.HasField("until")
    assert pending.source == agent_pb2.LOG_SOURCE_AGENT_JOURNAL


@pytest.mark.usefixtures("devices")
async def test_max_bytes_is_capped_at_the_server_maximum(pool: asyncpg.Pool) -> None:
    await _issue(pool, max_bytes=10 * MAX_LOG_BYTES)
    [pending] = await pending_log_requests(pool, "rpi-001")
    assert pending.max_bytes == MAX_LOG_BYTES


@pytest.mark.usefixtures("devices")
@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"source": "/etc/shadow"}, "log source"),
        ({"source": agent_pb2.LOG_SOURCE_UNSPECIFIED}, "log source"),
        ({"max_bytes": 0}, "max_bytes"),
        (
            {
                "since": dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
                "until": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
            },
            "since",
        ),
        ({"ttl": dt.timedelta(0)}, "ttl"),
        ({"ttl": dt.timedelta(days=31)}, "ttl"),
    ],
)
async def test_invalid_requests_are_refused(
    pool: asyncpg.Pool, kw: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        await _issue(pool, **kw)
    assert await pool.fetchval("SELECT count(*) FROM log_requests") == 0


@pytest.mark.usefixtures("devices")
async def test_requests_need_an_active_device(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE devices SET offboarded_at = now() WHERE device_id = 'rpi-002'")
    for device_id in ("ghost", "rpi-002"):
        with pytest.raises(DeviceNotFound):
            await _issue(pool, device_id)


@pytest.mark.usefixtures("devices")
async def test_pending_requests_per_device_are_bounded(pool: asyncpg.Pool) -> None:
    for _ in range(MAX_PENDING_PER_DEVICE):
        await _issue(pool)
    with pytest.raises(TooManyPending):
        await _issue(pool)
    await _issue(pool, "rpi-002")  # other devices are not affected
    # Once one is answered, there is room again.
    first = (await pending_log_requests(pool, "rpi-001"))[0].log_request_id
    await _fulfil(pool, first)
    await _issue(pool)


@pytest.mark.usefixtures("devices")
async def test_expired_request_is_no_longer_pending_nor_uploadable(pool: asyncpg.Pool) -> None:
    request_id = await _issue(pool)
    await pool.execute("UPDATE log_requests SET expires_at = now() - interval '1 second'")
    assert await pending_log_requests(pool, "rpi-001") == []
    with pytest.raises(Expired):
        await upload_target(pool, "rpi-001", request_id)
    [listed] = await list_log_requests(pool, "rpi-001")
    assert listed.status(dt.datetime.now(dt.UTC)) == "expired"


@pytest.mark.usefixtures("devices")
async def test_another_devices_request_looks_like_an_unknown_one(pool: asyncpg.Pool) -> None:
    theirs = await _issue(pool, "rpi-002")
    with pytest.raises(LogRequestNotFound) as other:
        await upload_target(pool, "rpi-001", theirs)
    with pytest.raises(LogRequestNotFound) as unknown:
        await upload_target(pool, "rpi-001", "lr_unknown")
    assert str(other.value).replace(theirs, "ID") == str(unknown.value).replace("lr_unknown", "ID")
    with pytest.raises(LogRequestNotFound):
        await _fulfil(pool, theirs)
    assert await pool.fetchval("SELECT count(*) FROM log_bundles") == 0


@pytest.mark.usefixtures("devices")
async def test_fulfilment_stores_the_bundle_and_closes_the_request(pool: asyncpg.Pool) -> None:
    request_id = await _issue(pool)
    target = await upload_target(pool, "rpi-001", request_id)
    assert target.log_request_id == request_id
    async with pool.acquire() as conn:
        done = await fulfil(
            conn, "rpi-001", request_id, BLOB, content_encoding="gzip", uncompressed_size=9999
        )
    assert done.revisions == {"rpi-001": 2}
    assert (done.bundle.sha256, done.bundle.size_bytes, done.bundle.uncompressed_size) == (
        BLOB.sha256,
        BLOB.size,
        9999,
    )
    assert await pool.fetchval("SELECT size_bytes FROM blobs WHERE sha256 = $1", BLOB.sha256) == (
        BLOB.size
    )
    assert await pending_log_requests(pool, "rpi-001") == []
    assert await get_bundle(pool, done.bundle.bundle_id) == done.bundle
    assert await get_bundle(pool, "lb_unknown") is None
    [listed] = await list_log_requests(pool, "rpi-001")
    assert listed.status(dt.datetime.now(dt.UTC)) == "fulfilled"
    assert (listed.bundle_id, listed.bundle_size) == (done.bundle.bundle_id, BLOB.size)
    with pytest.raises(AlreadyFulfilled):
        await upload_target(pool, "rpi-001", request_id)
    with pytest.raises(AlreadyFulfilled):
        await _fulfil(pool, request_id)
    assert await pool.fetchval("SELECT count(*) FROM log_bundles") == 1


@pytest.mark.usefixtures("devices")
async def test_listing_is_newest_first_per_device(pool: asyncpg.Pool) -> None:
    first = await _issue(pool)
    second = await _issue(pool, source="agent_log_file")
    await pool.execute(
        "UPDATE log_requests SET created_at = created_at - interval '1 minute' "
        "WHERE log_request_id = $1",
        first,
    )
    await _issue(pool, "rpi-002")
    listed = await list_log_requests(pool, "rpi-001")
    assert [r.log_request_id for r in listed] == [second, first]
    assert [r.status(dt.datetime.now(dt.UTC)) for r in listed] == ["pending", "pending"]
