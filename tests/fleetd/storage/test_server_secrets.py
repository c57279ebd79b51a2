"""A shared secret is made once, by whoever asks first, and never changes."""

from __future__ import annotations

import asyncio

import asyncpg

from fleetd.storage.server_secrets import SECRET_BYTES, shared_secret


async def test_every_caller_gets_the_one_secret(pool: asyncpg.Pool) -> None:
    first = await asyncio.gather(*(shared_secret(pool, "page_tokens") for _ in range(5)))
    assert len(set(first)) == 1 and len(first[0]) == SECRET_BYTES
    assert await shared_secret(pool, "page_tokens") == first[0]
    assert await shared_secret(pool, "other") != first[0]
