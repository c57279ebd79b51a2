"""Shared fixtures: real storage servers for the session, a fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.storage.postgres import connect
from tests.support.storage import StorageServers, drop_database, fresh_database, storage_servers


@pytest.fixture(scope="session")
def servers() -> Iterator[StorageServers]:
    with storage_servers() as s:
        yield s


@pytest.fixture
async def database_url(servers: StorageServers) -> AsyncIterator[str]:
    url = await fresh_database(servers)
    yield url
    await drop_database(servers, url)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await connect(database_url, run_migrations=False)
    yield p
    await p.close()


@pytest.fixture
async def redis_url(servers: StorageServers) -> str:
    client = aioredis.Redis.from_url(servers.redis_url)
    await client.flushdb()
    await client.aclose()
    return servers.redis_url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
