"""The liveness scripts and statements: arrivals, departures, the lease, the backstop."""

from __future__ import annotations

import time

import asyncpg
import redis.asyncio as aioredis

from fleetd.storage import redis_keys
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.liveness import (
    ARRIVE,
    announce_offline,
    arrivals,
    depart,
    hold_lease,
    mark_offline,
    mark_silent_offline,
    release_lease,
    silent_devices,
)
from fleetd.storage.redis_scripts import execute

FLEET = "default"


async def _online(pool: asyncpg.Pool, *device_ids: str, last_seen: float) -> None:
    async with pool.acquire() as conn:
        for device_id in device_ids:
            await insert_device(conn, NewDevice(device_id, FLEET, device_id, "rpi", "1.0", {}, {}))
    await pool.execute(
        "UPDATE devices SET status = 'online', last_seen = to_timestamp($1)", last_seen
    )


async def _events(redis: aioredis.Redis) -> list[tuple[bytes | str, bytes | str]]:
    entries = await redis.xrange(redis_keys.events(FLEET))
    assert entries is not None
    return [(f[b"type"], f[b"device_id"]) for _, f in entries if f is not None]


async def _status(pool: asyncpg.Pool) -> dict[str, str]:
    return {r["device_id"]: r["status"] for r in await pool.fetch("SELECT * FROM devices")}


async def test_arrivals_announce_only_absent_members(redis: aioredis.Redis) -> None:
    key = redis_keys.last_seen(FLEET)
    await redis.zadd(key, {"rpi-1": 100.0})
    zadd = ("ZADD", key, 200.0, "rpi-1", 200.0, "rpi-2")
    (online,) = await execute(redis, arrivals(FLEET, zadd), 1, (ARRIVE,))
    assert online == 1
    assert await _events(redis) == [(b"device.online", b"rpi-2")]
    assert await redis.zscore(key, "rpi-1") == 200.0


async def test_the_lease_has_one_holder_and_only_the_holder_releases_it(
    redis: aioredis.Redis,
) -> None:
    assert await hold_lease(redis, FLEET, "first", 2000)
    assert not await hold_lease(redis, FLEET, "second", 2000)
    await release_lease(redis, FLEET, "second")  # not the holder: no effect
    assert await hold_lease(redis, FLEET, "first", 2000)  # renewal
    await release_lease(redis, FLEET, "first")
    assert await hold_lease(redis, FLEET, "second", 2000)


async def test_a_sweep_step_spares_devices_heard_since_it_read(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    now = time.time()
    cutoff = now - 30
    await _online(pool, "rpi-1", "rpi-2", last_seen=now - 60)
    key = redis_keys.last_seen(FLEET)
    await redis.zadd(key, {"rpi-1": now - 60, "rpi-2": now - 60, "rpi-3": now})
    silent = await silent_devices(redis, FLEET, cutoff, 10)
    assert sorted(silent) == ["rpi-1", "rpi-2"]
    await redis.zadd(key, {"rpi-2": now})  # rpi-2 heartbeats between the two steps
    await mark_offline(pool, silent, cutoff)
    assert await depart(redis, FLEET, silent, cutoff, now) == ["rpi-1"]
    assert await _events(redis) == [(b"device.offline", b"rpi-1")]
    assert await redis.zrange(key, 0, -1) == [b"rpi-2", b"rpi-3"]
    # PostgreSQL had not merged rpi-2's heartbeat yet: offline until the next merge.
    assert await _status(pool) == {"rpi-1": "offline", "rpi-2": "offline"}


async def test_silent_devices_is_bounded(redis: aioredis.Redis) -> None:
    await redis.zadd(redis_keys.last_seen(FLEET), {f"rpi-{n}": n for n in range(5)})
    assert await silent_devices(redis, FLEET, 10.0, 3) == ["rpi-0", "rpi-1", "rpi-2"]


async def test_the_backstop_takes_silent_devices_offline_with_their_events(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    now = time.time()
    await _online(pool, "rpi-1", last_seen=now - 60)
    gone = await mark_silent_offline(pool, now - 30)
    assert [(d.device_id, round(d.last_seen)) for d in gone] == [("rpi-1", round(now - 60))]
    await announce_offline(redis, FLEET, gone, now)
    assert await _events(redis) == [(b"device.offline", b"rpi-1")]
    assert await mark_silent_offline(pool, now - 30) == []
    await announce_offline(redis, FLEET, [], now)  # nothing to send: no round trip
    assert await _status(pool) == {"rpi-1": "offline"}
