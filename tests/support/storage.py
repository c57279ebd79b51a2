"""Real PostgreSQL and Redis for tests: embedded by default, or the servers named by
``FLEETD_TEST_DATABASE_URL`` / ``FLEETD_TEST_REDIS_URL``.

Each test gets its own database, cloned from a migrated template (fast), and a flushed
Redis database. Tests flush the Redis database they are given: do not point
``FLEETD_TEST_REDIS_URL`` at one whose contents matter.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from fleetd.services.analytics.partition_maintenance import ensure_partitions
from fleetd.settings import Settings
from fleetd.storage.embedded import EmbeddedPostgres, EmbeddedRedis
from fleetd.storage.migrate import migrate
from fleetd.storage.postgres import connect

TEMPLATE = "fleetd_test_template"


@dataclass(frozen=True, slots=True)
class StorageServers:
    admin_database_url: str
    redis_url: str
    root: Path

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.admin_database_url)
        return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def storage_servers() -> Iterator[StorageServers]:
    root = Path(tempfile.mkdtemp(prefix="fleetd-test-", dir="/tmp"))
    pg: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    try:
        db_url = os.environ.get("FLEETD_TEST_DATABASE_URL")
        if not db_url:
            pg = EmbeddedPostgres(root / "postgres")
            pg.start()
            db_url = pg.url
        redis_url = os.environ.get("FLEETD_TEST_REDIS_URL")
        if not redis_url:
            redis = EmbeddedRedis(root / "redis")
            redis.start()
            redis_url = redis.url
        servers = StorageServers(db_url, redis_url, root)
        asyncio.run(_make_template(servers))
        yield servers
    finally:
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()


async def _make_template(servers: StorageServers) -> None:
    conn = await asyncpg.connect(servers.admin_database_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(servers.database_url(TEMPLATE))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    # The analytics partitions partition maintenance makes around "now" (default
    # retentions), so tests can write samples, rollups and census rows at the current time.
    pool = await connect(servers.database_url(TEMPLATE), run_migrations=False, max_size=2)
    try:
        await ensure_partitions(pool, Settings(data_dir=servers.root))
    finally:
        await pool.close()


_counter = itertools.count()


async def fresh_database(servers: StorageServers) -> str:
    """A new, migrated database for one test; returns its URL."""
    name = f"fleetd_test_{os.getpid()}_{next(_counter)}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(servers.admin_database_url)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await conn.close()
    return servers.database_url(name)


async def drop_database(servers: StorageServers, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(servers.admin_database_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()
