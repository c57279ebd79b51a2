"""Type aliases for asyncpg handles, so storage functions accept a pool's connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    """One connection: what transactions need."""

    Queryable: TypeAlias = Connection | asyncpg.Pool[asyncpg.Record]
    """A connection or a pool: enough for a single statement."""
else:
    Connection = Any
    Queryable = Any
