"""Whether each store answers right now: one cheap round trip, bounded by a timeout.

For health reporting (``gateway.serving_status``): a store that is unreachable, too slow,
or answers a trivial command with an error counts as down. Never raises for a store
failure.
"""

from __future__ import annotations

import asyncio

import asyncpg

from fleetd.storage.errors import REDIS_ERRORS, STORE_DOWN
from fleetd.storage.types import Queryable, Redis

_POSTGRES_DOWN: tuple[type[BaseException], ...] = (*STORE_DOWN, asyncpg.PostgresError)
"""Unreachable, or answering even ``SELECT 1`` with an error: down, for health's sake."""


async def redis_answers(redis: Redis, within: float) -> bool:
    """PING answered within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            await redis.ping()
    except REDIS_ERRORS:  # TimeoutError included (an OSError)
        return False
    return True


async def postgres_answers(db: Queryable, within: float) -> bool:
    """``SELECT 1`` answered within ``within`` seconds (on a connection from the pool)."""
    try:
        async with asyncio.timeout(within):
            await db.fetchval("SELECT 1")
    except _POSTGRES_DOWN:
        return False
    return True
