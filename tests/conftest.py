"""Shared fixtures: real storage servers for the session, a fresh database per test."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.storage.postgres import connect
from tests.support.storage import StorageServers, drop_database, fresh_database, storage_servers

STUCK_AFTER_SECONDS = 90.0


@pytest.fixture(autouse=True)
async def _report_stuck_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """If a test (with its fixtures) takes suspiciously long, print every asyncio task's
    stack to stderr once: a hung await is otherwise invisible."""

    def dump() -> None:
        out = io.StringIO()
        print(f"\n--- {request.node.nodeid}: still running, asyncio tasks:", file=out)
        for task in asyncio.all_tasks():
            task.print_stack(file=out)
        if sys.__stderr__ is not None:  # not captured: the test may never finish
            sys.__stderr__.write(out.getvalue())

    handle = asyncio.get_running_loop().call_later(STUCK_AFTER_SECONDS, dump)
    yield
    handle.cancel()


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
