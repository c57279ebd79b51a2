"""Connecting to PostgreSQL: one pool per process, schema migrated before first use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import orjson

from fleetd.storage.migrate import migrate


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def connect(
    database_url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    run_migrations: bool = True,
    on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    connect_timeout: float = 60.0,
    command_timeout: float | None = None,
) -> asyncpg.Pool:
    """A pool with jsonb decoded to Python values; migrations applied first if asked.
    ``on_connect`` runs once on every new connection (after the codecs are set);
    ``connect_timeout`` bounds connecting, ``command_timeout`` each statement."""

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        if on_connect is not None:
            await on_connect(conn)

    if run_migrations:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=init,
        timeout=connect_timeout,
        command_timeout=command_timeout,
    )
    if pool is None:  # pragma: no cover - create_pool only returns None when not awaited
        raise RuntimeError("asyncpg.create_pool returned no pool")
    return pool
