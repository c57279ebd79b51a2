"""Store reachability for health: an answer within the time, or down."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from fleetd.storage.reachability import postgres_answers, redis_answers
from tests.support.waiting import free_port


async def test_reachable_stores_answer(pool: asyncpg.Pool, redis: aioredis.Redis) -> None:
    assert await redis_answers(redis, 1.0)
    assert await postgres_answers(pool, 1.0)


async def test_unreachable_redis_is_down() -> None:
    client = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    try:
        assert not await redis_answers(client, 1.0)
    finally:
        await client.aclose()


async def test_a_closed_pool_is_down(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await pool.close()
    assert not await postgres_answers(pool, 1.0)
