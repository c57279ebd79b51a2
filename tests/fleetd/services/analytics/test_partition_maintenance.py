"""Partition maintenance against a real PostgreSQL: the planned partitions are made (with
their indexes, storage parameters and bounds), rows land in them, running it twice or at
once is harmless, and expired partitions go only once consumed."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from fleetd.domain.analytics.tiers import DEVICE_DOWNSAMPLER
from fleetd.services.analytics.partition_maintenance import ensure_partitions, maintain_once
from fleetd.settings import Settings
from fleetd.storage.advisory_locks import session_lock
from fleetd.storage.analytics import locks, watermarks
from fleetd.storage.analytics.partitions import existing
from tests.support.analytics import create_partition

UTC = dt.UTC
# Far from the clock, so the template's partitions around "now" never meet these.
T0 = dt.datetime(2031, 3, 10, 13, 20, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def _expected_at(moment: dt.datetime) -> dict[str, list[str]]:
    """Independently of the planner: the names each tier must have at ``moment``."""
    six_hour = moment.replace(hour=moment.hour - moment.hour % 6, minute=0)
    day = moment.replace(hour=0, minute=0)
    raw = [f"device_samples_p{six_hour + dt.timedelta(hours=6 * i):%Y%m%d%H}" for i in range(9)]
    days = [f"{day + dt.timedelta(days=i):%Y%m%d}" for i in range(3)]
    months = ["203103", "203104", "203105"]
    return {
        "device_samples": raw,
        "device_samples_1h": [f"device_samples_1h_p{d}" for d in days],
        "metric_rollups_1m": [f"metric_rollups_1m_p{d}" for d in days],
        "fleet_census_1m": [f"fleet_census_1m_p{d}" for d in days],
        "metric_rollups_1h": [f"metric_rollups_1h_p{m}" for m in months],
        "fleet_census_1h": [f"fleet_census_1h_p{m}" for m in months],
    }


async def _names(pool: asyncpg.Pool, parent: str) -> set[str]:
    return {t.name for t in await existing(pool, parent)}


async def _around(pool: asyncpg.Pool, parent: str, moment: dt.datetime) -> set[str]:
    """The partitions of ``parent`` within a year of ``moment`` (the template also has
    partitions around the real clock)."""
    year = str(moment.year)
    return {n for n in await _names(pool, parent) if n.split("_p")[-1].startswith(year)}


async def test_ensure_creates_the_planned_partitions_of_every_tier(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    created = await ensure_partitions(pool, settings, now=T0)

    expected = _expected_at(T0)
    assert sorted(created) == sorted(n for names in expected.values() for n in names)
    for parent, names in expected.items():
        assert await _around(pool, parent, T0) == set(names)


async def test_a_partition_has_the_parents_indexes_its_bounds_and_storage_parameters(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    await ensure_partitions(pool, settings, now=T0)

    for parent, partition, options in (
        ("device_samples", "device_samples_p2031031012", {"fillfactor=100"}),
        (
            "metric_rollups_1m",
            "metric_rollups_1m_p20310310",
            {"fillfactor=100", "toast_tuple_target=8160"},
        ),
        ("fleet_census_1h", "fleet_census_1h_p203103", {"fillfactor=100"}),
    ):
        reloptions = await pool.fetchval(
            "SELECT reloptions FROM pg_class WHERE relname = $1", partition
        )
        assert set(reloptions) == options
        # Every index of the parent has exactly one attached child on the partition.
        parent_indexes = await pool.fetch(
            "SELECT indexrelid FROM pg_index WHERE indrelid = $1::regclass", parent
        )
        children = await pool.fetch(
            """SELECT i.indexrelid, inh.inhparent FROM pg_index i
                 LEFT JOIN pg_inherits inh ON inh.inhrelid = i.indexrelid
                WHERE i.indrelid = $1::regclass""",
            partition,
        )
        assert len(children) == len(parent_indexes) > 0
        assert {c["inhparent"] for c in children} == {p["indexrelid"] for p in parent_indexes}
    bound = await pool.fetchval(
        "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = $1",
        "device_samples_p2031031012",
    )
    assert bound == ("FOR VALUES FROM ('2031-03-10 12:00:00+00') TO ('2031-03-10 18:00:00+00')")
    storage = await pool.fetchval(
        """SELECT attstorage::text FROM pg_attribute
            WHERE attrelid = 'metric_rollups_1h_p203103'::regclass AND attname = 'sketch'"""
    )
    assert storage == "e"  # STORAGE EXTERNAL, as the parent's column


async def test_rows_land_in_the_partition_of_their_time_and_none_outside(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    await ensure_partitions(pool, settings, now=T0)
    insert = """INSERT INTO fleet_census_1m (bucket_start, group_id, status, devices)
                VALUES ($1, 1, 'online', 3) RETURNING tableoid::regclass::text"""

    assert await pool.fetchval(insert, T0) == "fleet_census_1m_p20310310"
    assert await pool.fetchval(insert, T0 + dt.timedelta(days=2)) == "fleet_census_1m_p20310312"
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await pool.fetchval(insert, T0 + dt.timedelta(days=3))
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await pool.fetchval(insert, T0 - dt.timedelta(days=1))


async def test_ensure_twice_creates_nothing_the_second_time(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    first = await ensure_partitions(pool, settings, now=T0)
    assert first
    assert await ensure_partitions(pool, settings, now=T0) == []


async def test_concurrent_ensures_create_each_partition_once(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    results = await asyncio.gather(*(ensure_partitions(pool, settings, now=T0) for _ in range(3)))

    created = [name for result in results for name in result]
    expected = sorted(n for names in _expected_at(T0).values() for n in names)
    assert sorted(created) == expected  # each exactly once, by whichever got there first


async def test_expired_partitions_are_dropped_and_raw_ones_only_once_downsampled(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, raw_retention=86400.0, rollup_retention=86400.0)
    await ensure_partitions(pool, settings, now=T0)
    later = T0 + dt.timedelta(days=2)  # 2031-03-12 13:20; cutoff one day before

    report = await maintain_once(pool, settings, now=later)

    assert report is not None
    # Minute rollups and census: 03-10 ends 03-11 00:00 <= 03-11 13:20, dropped.
    assert "metric_rollups_1m_p20310310" in report.dropped
    assert "fleet_census_1m_p20310310" in report.dropped
    assert "metric_rollups_1m_p20310311" not in report.dropped
    # Raw samples: expired, but no downsampler round yet, so all kept.
    assert not [n for n in report.dropped if n.startswith("device_samples_p")]
    assert "device_samples_p2031031012" in await _names(pool, "device_samples")

    # The downsampler got to 03-10 18:00: only the partition ending there goes.
    await watermarks.advance(pool, DEVICE_DOWNSAMPLER, dt.datetime(2031, 3, 10, 18, tzinfo=UTC))
    report = await maintain_once(pool, settings, now=later)

    assert report is not None
    # (The template's partitions around the real clock are long expired by 2031.)
    assert [n for n in report.dropped if "_p2031" in n] == ["device_samples_p2031031012"]
    remaining = await _around(pool, "device_samples", T0)
    assert "device_samples_p2031031012" not in remaining
    assert "device_samples_p2031031018" in remaining
    assert "metric_rollups_1m_p20310310" not in await _names(pool, "metric_rollups_1m")
    # Nothing was left behind detached.
    left = await pool.fetchval(
        "SELECT count(*) FROM pg_class WHERE relname = ANY($1::text[])",
        ["device_samples_p2031031012", "metric_rollups_1m_p20310310"],
    )
    assert left == 0


async def test_a_hand_made_partition_is_reported_not_dropped_and_not_overlapped(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    day = dt.datetime(2031, 3, 10, tzinfo=UTC)
    hand_made = await create_partition(pool, "fleet_census_1m", day, day + dt.timedelta(days=1))

    created = await ensure_partitions(pool, settings, now=T0)
    report = await maintain_once(pool, settings, now=T0 + dt.timedelta(days=400))

    assert "fleet_census_1m_p20310310" not in created
    assert report is not None
    assert hand_made in report.unknown
    assert hand_made in await _names(pool, "fleet_census_1m")


async def test_a_round_is_skipped_while_another_process_holds_the_lock(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    async with session_lock(pool, locks.PARTITIONS, wait=True):
        assert await maintain_once(pool, settings, now=T0) is None
    assert await _around(pool, "device_samples", T0) == set()
