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


async def close(client: Redis) -> None:
    """Close the client's connections."""
    await client.aclose()
