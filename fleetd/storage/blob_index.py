"""The blob collector's PostgreSQL side: which blobs rows refer to, and dropping the index
row of one that none does (fleetd/services/blob_collection.py decides; this module only asks and
acts).

A blob is *referenced* while any row of :data:`REFERENCING_TABLES` names its SHA-256.
``binaries`` and ``log_bundles`` also hold a foreign key to ``blobs``; ``tuf_targets`` and
``update_artifacts`` do not (a target may be an artifact fetched from a URL, whose bytes
this store never held), so they are checked by value. A test compares this list with every
``sha256`` column of the schema: a new table that names blobs must be added here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fleetd.storage.advisory_locks import session_lock
from fleetd.storage.types import Connection, Pool, Queryable

REFERENCING_TABLES: tuple[str, ...] = ("binaries", "log_bundles", "tuf_targets", "update_artifacts")
COLLECTOR_LOCK_KEY = 0x666C656574640042  # "fleetd" + "B": one blob collector at a time
BATCH = 1000


def _referenced_by_any(column: str) -> str:
    return " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} r WHERE r.sha256 = {column})"
        for table in REFERENCING_TABLES
    )


async def referenced(conn: Queryable, digests: Sequence[str]) -> set[str]:
    """The digests among ``digests`` that some row refers to."""
    found: set[str] = set()
    for start in range(0, len(digests), BATCH):
        rows = await conn.fetch(
            f"""SELECT s FROM unnest($1::text[]) AS s
                WHERE {_referenced_by_any("s")}""",
            list(digests[start : start + BATCH]),
        )
        found.update(r["s"] for r in rows)
    return found


async def unreferenced_index_rows(
    conn: Queryable, created_before: dt.datetime, limit: int
) -> list[str]:
    """Index rows older than ``created_before`` that no row refers to (oldest first)."""
    rows = await conn.fetch(
        f"""SELECT b.sha256 FROM blobs b
            WHERE b.created_at < $1 AND NOT ({_referenced_by_any("b.sha256")})
            ORDER BY b.created_at LIMIT $2""",
        created_before,
        limit,
    )
    return [r["sha256"] for r in rows]


async def forget(conn: Connection, sha256: str, created_before: dt.datetime) -> bool:
    """Drop the blob's index row if nothing refers to it and the row is older than
    ``created_before``; True when the blob may go (row dropped, or there was none and
    nothing refers to the digest), False when it must stay.

    The row is locked first, so a writer inserting a reference (whose foreign-key check
    locks the same row) either committed before (and is seen) or fails after (and
    retries, writing the index row again).
    """
    async with conn.transaction():
        old = await conn.fetchval(
            "SELECT created_at < $2 FROM blobs WHERE sha256 = $1 FOR UPDATE",
            sha256,
            created_before,
        )
        if old is False:
            return False
        if await conn.fetchval(f"SELECT {_referenced_by_any('$1::text')}", sha256):
            return False
        if old is not None:
            await conn.execute("DELETE FROM blobs WHERE sha256 = $1", sha256)
    return True


async def reindex(conn: Queryable, sha256: str, size: int) -> None:
    """Write the index row again (a blob the collector put back)."""
    await conn.execute(
        """INSERT INTO blobs (sha256, size_bytes) VALUES ($1, $2)
           ON CONFLICT (sha256) DO NOTHING""",
        sha256,
        size,
    )


@asynccontextmanager
async def collector_lock(pool: Pool) -> AsyncIterator[bool]:
    """Try the collector's advisory lock for the block; yields whether this holder got it
    (another replica holding it means this round is its, not ours)."""
    async with session_lock(pool, COLLECTOR_LOCK_KEY, wait=False) as conn:
        yield conn is not None
