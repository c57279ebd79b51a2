"""A PostgreSQL session advisory lock on a dedicated connection: how one rollout engine
is chosen across control API replicas.

The lock lives exactly as long as its connection: when the holding process or its
connection dies, PostgreSQL releases it and another replica's :meth:`try_acquire`
succeeds. A holder therefore checks its connection (:meth:`check`) between rounds and
stops when that fails, since another replica may hold the lock by then.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

CLOSE_SECONDS = 5.0
"""How long closing the lock's connection may take (a hung server must not block a stop)."""


class AdvisoryLock:
    """One advisory lock ``key`` and the connection that may hold it."""

    def __init__(self, conn: asyncpg.Connection, key: int) -> None:
        self._conn = conn
        self._key = key

    @classmethod
    async def connect(cls, database_url: str, key: int) -> AdvisoryLock:
        """A new dedicated connection (not from a pool: the lock must not outlive a use)."""
        return cls(await asyncpg.connect(database_url), key)

    async def try_acquire(self) -> bool:
        """Take the lock if it is free (or already ours); never waits."""
        return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key))

    async def check(self) -> None:
        """Raise when the connection (and so the lock) is gone."""
        await self._conn.fetchval("SELECT 1")

    async def close(self) -> None:
        """Close the connection, releasing the lock; never raises (a dead connection has
        released it already) and gives up after :data:`CLOSE_SECONDS`."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._conn.close(), CLOSE_SECONDS)
