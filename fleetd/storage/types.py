"""Type aliases for store handles: storage functions accept a pool's connections, and code
above storage names a pool or a Redis client without importing the drivers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import asyncpg
    import redis.asyncio
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    """One connection: what transactions need."""

    Queryable: TypeAlias = Connection | asyncpg.Pool[asyncpg.Record]
    """A connection or a pool: enough for a single statement."""

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    """The PostgreSQL connection pool a process opens at start-up."""

    Redis: TypeAlias = redis.asyncio.Redis
    """The Redis client a process opens at start-up."""
else:
    Connection = Any
    Queryable = Any
    Pool = Any
    Redis = Any
