"""The repository in PostgreSQL: metadata versions as rows, targets as an index.

Writers serialise on one advisory lock held for their transaction (:func:`locked`), read
the newest versions, and insert the next ones; ``(role, version)`` is the primary key, so
even a writer that skipped the lock could not fork a role's history. Readers need no
lock: a version, once inserted, never changes (a trigger refuses UPDATE and DELETE).
Bodies are stored as the bytes that were signed and served, never re-serialised.

This module stores bytes; what they mean (python-tuf metadata, which roles exist) is
fleetd/services/tuf_repo's business (``state`` turns rows into metadata and back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fleetd.domain.signed_target import TargetCustom
from fleetd.storage.types import Connection, Pool, Queryable

_LOCK_KEY = 0x666C656574640054  # "fleetd" + "T": the TUF repository's writer lock


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A version of a role to insert: its signed bytes and their expiry."""

    role: str
    version: int
    body: bytes
    expires_at: dt.datetime


@asynccontextmanager
async def locked(pool: Pool) -> AsyncIterator[Connection]:
    """A connection in a transaction holding the repository's writer lock."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        yield conn


async def newest_bodies(conn: Queryable, roles: Sequence[str]) -> dict[str, bytes]:
    """The newest stored version of each of ``roles`` that has one, by role."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (role) role, body FROM tuf_metadata"
        " WHERE role = ANY($1::text[]) ORDER BY role, version DESC",
        list(roles),
    )
    return {r["role"]: bytes(r["body"]) for r in rows}


async def insert(conn: Queryable, versions: Sequence[NewVersion]) -> None:
    """Insert new versions; fails (unique violation) if any version exists already."""
    await conn.executemany(
        "INSERT INTO tuf_metadata (role, version, body, expires_at) VALUES ($1, $2, $3, $4)",
        [(v.role, v.version, v.body, v.expires_at) for v in versions],
    )


async def body(conn: Queryable, role: str, version: int | None) -> bytes | None:
    """A stored version of ``role`` (the newest if ``version`` is None)."""
    if version is None:
        value = await conn.fetchval(
            "SELECT body FROM tuf_metadata WHERE role = $1 ORDER BY version DESC LIMIT 1", role
        )
    else:
        value = await conn.fetchval(
            "SELECT body FROM tuf_metadata WHERE role = $1 AND version = $2", role, version
        )
    return None if value is None else bytes(value)


async def versions(conn: Queryable) -> dict[str, tuple[int, dt.datetime]]:
    """Newest version and expiry of every stored role."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (role) role, version, expires_at FROM tuf_metadata"
        " ORDER BY role, version DESC"
    )
    return {r["role"]: (r["version"], r["expires_at"]) for r in rows}


async def insert_target(
    conn: Queryable, path: str, sha256: str, length: int, custom: TargetCustom
) -> None:
    await conn.execute(
        "INSERT INTO tuf_targets (path, sha256, length, custom) VALUES ($1, $2, $3, $4::jsonb)",
        path,
        sha256,
        length,
        custom.to_json(),
    )


async def target_blob(conn: Queryable, path: str, sha256: str) -> int | None:
    """The length of the signed target ``path`` if its content is ``sha256``, else None."""
    value = await conn.fetchval(
        "SELECT length FROM tuf_targets WHERE path = $1 AND sha256 = $2", path, sha256
    )
    return None if value is None else int(value)
