"""The transactional outbox against real PostgreSQL and Redis: an event exists exactly
when its transaction committed, reaches the stream once per relay, in order, and waits
while Redis is away."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.storage import events, outbox, redis_keys


async def _stream(redis: aioredis.Redis, fleet: str = "default") -> list[events.Event]:
    entries = await redis.xrange(redis_keys.events(fleet))
    assert entries is not None
    return [events.decode(fields or {}) for _, fields in entries]


async def test_only_committed_events_are_relayed_in_order_once(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with pool.acquire() as conn:
        # A change whose transaction rolls back leaves no event.
        transaction = conn.transaction()
        await transaction.start()
        await outbox.append(conn, "default", [events.Event("device.updated", "gone")])
        await transaction.rollback()
        async with conn.transaction():
            first = await outbox.append(
                conn,
                "default",
                [
                    events.Event("device.registered", "rpi-001", 1.5),
                    events.Event("device.online", "rpi-001", 2.5, {"previous": "unknown"}),
                ],
            )
        async with conn.transaction():
            second = await outbox.append(conn, "lab", [events.Event("device.offline", "x", 3.0)])
    assert await outbox.relay_once(pool, redis) == 3
    assert await outbox.relay_once(pool, redis) == 0
    relayed = await _stream(redis)
    assert [(e.type, e.device_id, e.at) for e in relayed] == [
        ("device.registered", "rpi-001", 1.5),
        ("device.online", "rpi-001", 2.5),
    ]
    assert [e.fields[outbox.EVENT_ID_FIELD] for e in relayed] == first
    assert relayed[1].fields["previous"] == "unknown"
    assert [e.fields[outbox.EVENT_ID_FIELD] for e in await _stream(redis, "lab")] == second


async def test_events_wait_while_redis_is_away(pool: asyncpg.Pool, redis: aioredis.Redis) -> None:
    async with pool.acquire() as conn, conn.transaction():
        [event_id] = await outbox.append(conn, "default", [events.Event("device.updated", "a")])
    away = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        with pytest.raises((aioredis.ConnectionError, OSError)):
            await outbox.relay_once(pool, away)
    finally:
        await away.aclose()
    assert await pool.fetchval("SELECT count(*) FROM event_outbox WHERE relayed_at IS NULL") == 1
    assert await outbox.relay_once(pool, redis) == 1
    assert [e.fields[outbox.EVENT_ID_FIELD] for e in await _stream(redis)] == [event_id]


async def test_one_relayer_at_a_time(pool: asyncpg.Pool, redis: aioredis.Redis) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.append(conn, "default", [events.Event("device.updated", "a")])
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock($1)", outbox.RELAY_LOCK)
        assert await outbox.relay_once(pool, redis) == 0
    assert await outbox.relay_once(pool, redis) == 1


async def test_bad_events_are_refused_before_anything_is_written(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="device_id"):
            await outbox.append(conn, "default", [events.Event("device.updated", "")])
        with pytest.raises(ValueError, match="reserved"):
            await outbox.append(
                conn, "default", [events.Event("device.updated", "a", fields={"event_id": "x"})]
            )
    assert await pool.fetchval("SELECT count(*) FROM event_outbox") == 0


async def test_prune_deletes_only_old_relayed_events(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.append(conn, "default", [events.Event("device.updated", "a")])
    await outbox.relay_once(pool, redis)
    async with pool.acquire() as conn, conn.transaction():
        await outbox.append(conn, "default", [events.Event("device.updated", "b")])
    now = dt.datetime.now(dt.UTC)
    assert await outbox.prune(pool, relayed_before=now - dt.timedelta(hours=1)) == 0
    assert await outbox.prune(pool, relayed_before=now + dt.timedelta(seconds=1)) == 1
    left = await pool.fetch("SELECT device_id, relayed_at FROM event_outbox")
    assert [(r["device_id"], r["relayed_at"]) for r in left] == [("b", None)]
