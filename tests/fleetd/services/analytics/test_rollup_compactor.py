"""The rollup compactor against a real PostgreSQL: every partial counted exactly once
(two writers, late partials, failed rounds, concurrent rounds), grouping-set rows, and hour
rows equal to the merge of their minutes; values checked against sketches built directly
from the same values."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from core_ext import Sketch
from fleetd.domain.analytics.groups import Group
from fleetd.services.analytics.partition_maintenance import ensure_partitions
from fleetd.services.analytics.rollup_compactor import compact_once
from fleetd.settings import Settings
from fleetd.storage.analytics import watermarks
from tests.support.analytics import create_partition

UTC = dt.UTC
T0 = dt.datetime(2031, 3, 10, 13, 0, tzinfo=UTC)
CPU = 1
TEMPERATURE = 9
QUANTILES = (0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)


@pytest.fixture(autouse=True)
async def _partitions(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await ensure_partitions(pool, Settings(data_dir=tmp_path), now=T0)


def _values(seed: int, n: int) -> list[float]:
    """Quarter steps: every sum is exact in any order, so sums compare with ``==``."""
    rng = random.Random(seed)
    return [rng.randrange(-40, 400) / 4 for _ in range(n)]


async def _partial(
    pool: asyncpg.Pool,
    writer: str,
    minute: dt.datetime,
    group: tuple[str, str, str],
    metric: int,
    values: list[float],
) -> None:
    sketch = Sketch()
    sketch.add_many(values)
    await pool.execute(
        """INSERT INTO metric_rollup_partials
               (writer, bucket_start, fleet, device_type, version, metric,
                count, sum, min, max, sketch)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        writer,
        minute,
        *group,
        metric,
        len(values),
        sum(values),
        min(values),
        max(values),
        sketch.to_bytes(),
    )


@dataclass(frozen=True)
class Row:
    count: int
    sum: float
    min: float
    max: float
    quantiles: tuple[float | None, ...]


def _expected(values: list[float]) -> Row:
    sketch = Sketch()
    sketch.add_many(values)
    return Row(
        len(values),
        sum(values),
        min(values),
        max(values),
        tuple(sketch.quantile(q) for q in QUANTILES),
    )


async def _rows(pool: asyncpg.Pool, table: str) -> dict[tuple[dt.datetime, Group, int], Row]:
    records = await pool.fetch(
        f"""SELECT r.bucket_start, g.fleet, g.device_type, g.version, r.metric,
                   r.count, r.sum, r.min, r.max, r.sketch
              FROM {table} r JOIN metric_groups g USING (group_id)"""
    )
    out = {}
    for r in records:
        sketch = Sketch.from_bytes(bytes(r["sketch"]))
        assert sketch.count == r["count"]
        out[(r["bucket_start"], (r["fleet"], r["device_type"], r["version"]), r["metric"])] = Row(
            r["count"],
            r["sum"],
            r["min"],
            r["max"],
            tuple(sketch.quantile(q) for q in QUANTILES),
        )
    return out


async def _partials_left(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM metric_rollup_partials"))


A = ("north", "sensor", "1.0")
B = ("south", "sensor", "2.0")
M1 = T0 + dt.timedelta(minutes=1)
M2 = T0 + dt.timedelta(minutes=2)
AFTER = T0 + dt.timedelta(minutes=10)


async def test_two_writers_of_one_minute_are_merged_into_one_row(pool: asyncpg.Pool) -> None:
    first, second = _values(1, 300), _values(2, 200)
    await _partial(pool, "gw1", M1, A, CPU, first)
    await _partial(pool, "gw2", M1, A, CPU, second)

    report = await compact_once(pool, now=AFTER)

    assert report is not None and report.partials == 2
    rows = await _rows(pool, "metric_rollups_1m")
    assert rows[(M1, A, CPU)] == _expected(first + second)
    assert await _partials_left(pool) == 0


async def test_every_grouping_set_row_gets_the_groups_it_covers(pool: asyncpg.Pool) -> None:
    a, b = _values(3, 100), _values(4, 150)
    await _partial(pool, "gw1", M1, A, TEMPERATURE, a)
    await _partial(pool, "gw1", M1, B, TEMPERATURE, b)

    await compact_once(pool, now=AFTER)

    rows = await _rows(pool, "metric_rollups_1m")
    expected = {
        (None, None, None): a + b,
        ("north", None, None): a,
        ("south", None, None): b,
        (None, "sensor", None): a + b,
        ("north", "sensor", None): a,
        ("south", "sensor", None): b,
        (None, "sensor", "1.0"): a,
        (None, "sensor", "2.0"): b,
        A: a,
        B: b,
    }
    assert {group: rows[(M1, group, TEMPERATURE)] for group in expected} == {
        group: _expected(values) for group, values in expected.items()
    }
    assert len(rows) == len(expected)


async def test_a_late_partial_is_merged_into_the_compacted_row_once(pool: asyncpg.Pool) -> None:
    early, late = _values(5, 250), _values(6, 40)
    await _partial(pool, "gw1", M1, A, CPU, early)
    await compact_once(pool, now=AFTER)

    await _partial(pool, "gw2", M1, A, CPU, late)  # a gateway retrying after an outage
    await compact_once(pool, now=AFTER + dt.timedelta(minutes=1))
    await compact_once(pool, now=AFTER + dt.timedelta(minutes=2))  # nothing new

    minute = await _rows(pool, "metric_rollups_1m")
    hour = await _rows(pool, "metric_rollups_1h")
    assert minute[(M1, A, CPU)] == _expected(early + late)
    assert hour[(T0, A, CPU)] == _expected(early + late)
    assert minute[(M1, (None, None, None), CPU)] == _expected(early + late)


async def test_an_hour_row_is_the_merge_of_its_minutes(pool: asyncpg.Pool) -> None:
    per_minute = {T0 + dt.timedelta(minutes=m): _values(10 + m, 50 + m) for m in (0, 1, 2, 59)}
    for minute, values in per_minute.items():
        await _partial(pool, f"gw{minute.minute}", minute, A, CPU, values)
        # Rounds between minutes: the hour row is re-read and merged each time.
        await compact_once(pool, now=minute + dt.timedelta(minutes=2))
    next_hour = T0 + dt.timedelta(hours=1, minutes=3)
    await _partial(pool, "gw1", next_hour, A, CPU, _values(99, 10))
    await compact_once(pool, now=next_hour + dt.timedelta(minutes=2))

    minute_rows = await _rows(pool, "metric_rollups_1m")
    hour_rows = await _rows(pool, "metric_rollups_1h")
    everything = [v for values in per_minute.values() for v in values]
    assert hour_rows[(T0, A, CPU)] == _expected(everything)
    for minute, values in per_minute.items():
        assert minute_rows[(minute, A, CPU)] == _expected(values)
    assert hour_rows[(T0 + dt.timedelta(hours=1), A, CPU)] == _expected(_values(99, 10))


async def test_an_open_minute_waits_for_its_grace_period(pool: asyncpg.Pool) -> None:
    await _partial(pool, "gw1", M2, A, CPU, [1.0, 2.0])

    # M2 ends at 13:03; with 15 s of grace it closes at 13:03:15.
    await compact_once(pool, now=M2 + dt.timedelta(seconds=74))
    assert await _partials_left(pool) == 1
    assert await _rows(pool, "metric_rollups_1m") == {}

    await compact_once(pool, now=M2 + dt.timedelta(seconds=75))
    assert await _partials_left(pool) == 0
    assert (await _rows(pool, "metric_rollups_1m"))[(M2, A, CPU)] == _expected([1.0, 2.0])
    assert await watermarks.get(pool, "rollup_compactor") == M2


async def test_a_failed_round_leaves_its_partials_for_the_next(pool: asyncpg.Pool) -> None:
    # A minute whose minute partition exists but whose hour partition does not: the
    # round's hour write fails, and with it the whole transaction.
    june = dt.datetime(2031, 6, 1, 0, 5, tzinfo=UTC)
    await create_partition(pool, "metric_rollups_1m", june.replace(minute=0), june.replace(hour=1))
    values = _values(7, 80)
    await _partial(pool, "gw1", june, A, CPU, values)

    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await compact_once(pool, now=june + dt.timedelta(minutes=5))
    assert await _partials_left(pool) == 1
    assert await _rows(pool, "metric_rollups_1m") == {}

    await create_partition(
        pool, "metric_rollups_1h", june.replace(day=1, minute=0), june.replace(month=7, minute=0)
    )
    await compact_once(pool, now=june + dt.timedelta(minutes=5))
    assert (await _rows(pool, "metric_rollups_1m"))[(june, A, CPU)] == _expected(values)


async def test_batches_and_concurrent_rounds_count_each_partial_once(pool: asyncpg.Pool) -> None:
    everything: list[float] = []
    for i in range(12):
        values = _values(100 + i, 20)
        everything += values
        await _partial(pool, f"gw{i}", M1, A, CPU, values)

    results = await asyncio.gather(
        compact_once(pool, now=AFTER, batch=5), compact_once(pool, now=AFTER, batch=5)
    )

    assert sum(r.partials for r in results if r is not None) == 12
    assert (await _rows(pool, "metric_rollups_1m"))[(M1, A, CPU)] == _expected(everything)
    assert (await _rows(pool, "metric_rollups_1h"))[(T0, A, CPU)] == _expected(everything)


async def test_a_partial_with_an_unreadable_sketch_is_dropped_not_retried(
    pool: asyncpg.Pool,
) -> None:
    good = _values(8, 30)
    await _partial(pool, "gw1", M1, A, CPU, good)
    await pool.execute(
        """INSERT INTO metric_rollup_partials
           VALUES ('gw2', $1, 'north', 'sensor', '1.0', 1, 3, 6, 1, 3, '\\x0102'::bytea)""",
        M1,
    )

    report = await compact_once(pool, now=AFTER)

    assert report is not None and report.rejected == 1
    assert await _partials_left(pool) == 0
    assert (await _rows(pool, "metric_rollups_1m"))[(M1, A, CPU)] == _expected(good)
