from __future__ import annotations

import asyncio

import asyncpg
import pytest

from fleetd.storage.migrate import MigrationError, load_migrations, migrate
from tests.support.storage import StorageServers


async def _empty_database(servers: StorageServers, name: str) -> str:
    conn = await asyncpg.connect(servers.admin_database_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return servers.database_url(name)


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_migrate_applies_everything_once(servers: StorageServers) -> None:
    url = await _empty_database(servers, "migrate_once")
    conn = await asyncpg.connect(url)
    try:
        applied = await migrate(conn)
        assert applied == [m.version for m in load_migrations()]
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM devices") == 0
    finally:
        await conn.close()


async def test_concurrent_starters_apply_each_migration_once(servers: StorageServers) -> None:
    url = await _empty_database(servers, "migrate_concurrent")
    conns = [await asyncpg.connect(url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in load_migrations()]
    finally:
        for c in conns:
            await c.close()


async def test_edited_applied_migration_is_refused(servers: StorageServers) -> None:
    url = await _empty_database(servers, "migrate_edited")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_database_from_newer_fleetd_is_refused(servers: StorageServers) -> None:
    url = await _empty_database(servers, "migrate_newer")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'x', 'x')"
        )
        with pytest.raises(MigrationError, match="newer version"):
            await migrate(conn)
    finally:
        await conn.close()
