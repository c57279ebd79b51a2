"""Session advisory locks: one holder of a background role's round at a time.

Each key is "fleetd" plus a byte (``0x666C65657464_00XX``), so fleetd's locks never collide
with one another; the keys are named beside the code that takes them
(``storage/blob_index.py``, ``storage/analytics/locks.py``, ``storage/outbox.py``...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fleetd.storage.types import Connection, Pool


@asynccontextmanager
async def session_lock(pool: Pool, key: int, *, wait: bool) -> AsyncIterator[Connection | None]:
    """Hold the session advisory lock ``key`` on one pooled connection for the block.

    Yields that connection, or None when ``wait`` is false and another session holds the
    lock (its round, not ours). A session lock, not a transaction's, because the holder
    runs several transactions (and ``DETACH PARTITION CONCURRENTLY``, which refuses to run
    inside one); it is released at the end of the block, or by PostgreSQL with the
    connection if the process dies.
    """
    async with pool.acquire() as conn:
        if wait:
            await conn.execute("SELECT pg_advisory_lock($1)", key)
        elif not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            yield None
            return
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def try_transaction_lock(conn: Connection, key: int) -> bool:
    """Take ``key`` for the current transaction if it is free; never waits."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", key))
