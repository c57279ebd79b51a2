"""Partition DDL against a real PostgreSQL: an interrupted concurrent detach is finished by
the next drop, and group interning keeps NULL ("all") labels distinct and stable."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from fleetd.domain.analytics.partitions import DAY, partition_of
from fleetd.domain.analytics.tiers import Tier
from fleetd.storage.analytics import metric_groups
from fleetd.storage.analytics.partitions import create, drop, existing

UTC = dt.UTC
CENSUS = Tier(
    "fleet_census_1m", "bucket_start", DAY, 2, dt.timedelta(days=1), (("fillfactor", 100),)
)
DAY_2031 = dt.datetime(2031, 3, 10, tzinfo=UTC)


async def test_a_detach_left_pending_is_finalized_by_the_next_drop(
    pool: asyncpg.Pool, database_url: str
) -> None:
    partition = partition_of("fleet_census_1m", DAY_2031, DAY)
    async with pool.acquire() as conn:
        assert await create(conn, CENSUS, partition)
    reader = await asyncpg.connect(database_url)
    detacher = await asyncpg.connect(database_url)
    try:
        # A reader's open transaction makes the detach wait in its second phase; cut
        # short there, the partition stays attached with its detach pending.
        reader_tx = reader.transaction()
        await reader_tx.start()
        await reader.fetch("SELECT * FROM fleet_census_1m WHERE bucket_start = $1", DAY_2031)
        await detacher.execute("SET statement_timeout = '300ms'")
        with pytest.raises(asyncpg.QueryCanceledError):
            await detacher.execute(
                f"ALTER TABLE fleet_census_1m DETACH PARTITION {partition.name} CONCURRENTLY"
            )
        await reader_tx.rollback()
    finally:
        await reader.close()
        await detacher.close()

    (pending,) = [t for t in await existing(pool, "fleet_census_1m") if t.name == partition.name]
    assert pending.detach_pending

    async with pool.acquire() as conn:
        await drop(conn, "fleet_census_1m", pending)

    assert partition.name not in {t.name for t in await existing(pool, "fleet_census_1m")}
    assert await pool.fetchval("SELECT to_regclass($1)", partition.name) is None


async def test_groups_are_interned_once_with_null_meaning_all(pool: asyncpg.Pool) -> None:
    groups = [(None, None, None), ("north", None, None), ("north", "sensor", "1.0")]
    async with pool.acquire() as conn:
        first = await metric_groups.intern(conn, groups)
        again = await metric_groups.intern(conn, [*groups, ("north", "sensor", None)])

    assert set(first) == set(groups)
    assert len(set(first.values())) == 3
    assert {g: again[g] for g in groups} == first
    assert await pool.fetchval("SELECT count(*) FROM metric_groups") == 4
