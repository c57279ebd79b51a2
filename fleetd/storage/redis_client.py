"""Opening a Redis client: the one place above the wire that names redis-py's client."""

from __future__ import annotations

import redis.asyncio as aioredis

from fleetd.storage.types import Redis


def connect(url: str, *, socket_timeout: float | None = None) -> Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``); it connects on
    first use, so this never fails for an unreachable server. ``socket_timeout`` bounds
    every command (None: wait as long as the server takes)."""
    client: Redis = aioredis.Redis.from_url(url, socket_timeout=socket_timeout)
    return client


def connect_bounded(
    url: str,
    *,
    max_connections: int,
    wait: float,
    socket_timeout: float,
    socket_connect_timeout: float,
) -> Redis:
    """A client over a blocking pool of at most ``max_connections``: past that a command
    waits (up to ``wait`` seconds) for a free connection instead of failing. For servers
    whose hot paths batch, so that a few connections carry the load. The client owns the
    pool: ``close`` closes its connections too."""
    client: Redis = aioredis.Redis.from_pool(
        aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=wait,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
        )
    )
    return client


async def close(client: Redis) -> None:
    """Close the client's connections."""
    await client.aclose()
