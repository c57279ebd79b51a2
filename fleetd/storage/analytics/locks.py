"""The analytics roles' PostgreSQL advisory locks: one holder of each role at a time.

Each key is "fleetd" plus a byte, as the other locks of fleetd (``storage/migrate.py``,
``storage/blob_index.py``...), so they never collide with one another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fleetd.storage.types import Connection, Pool

PARTITIONS: Final = 0x666C656574640050  # "fleetd" + "P": partition DDL, one process at a time
ROLLUP_COMPACTOR: Final = 0x666C656574640052  # "fleetd" + "R"
DEVICE_DOWNSAMPLER: Final = 0x666C656574640044  # "fleetd" + "D"
CENSUS: Final = 0x666C656574640053  # "fleetd" + "S"


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
