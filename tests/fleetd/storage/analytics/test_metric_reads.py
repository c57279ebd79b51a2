"""GetMetrics' reads against real PostgreSQL: every value equals the one computed here from
the same generated readings (rollups, census, per-device samples)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import asyncpg
import pytest

from core_ext import Sketch
from fleetd.domain.analytics import groups, metrics, query_plan
from fleetd.domain.analytics.query_plan import (
    InvalidQuery,
    MetricsQuery,
    QueryPlan,
    Retentions,
    Tier,
    plan,
)
from fleetd.storage.analytics.metric_reads import Answer, Series, read_metrics
from tests.support.analytics import create_partition

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 2, tzinfo=UTC)
NOW = T0 + dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
CPU = metrics.BY_NAME["cpu_usage"]
MEMORY = metrics.BY_NAME["memory_usage"]
ALPHA = 0.01

Full = tuple[str, str, str]
Readings = dict[tuple[Full, dt.datetime, int], list[float]]
"""(full group, minute, metric id) → the readings of that minute."""


# --- writing ------------------------------------------------------------------------------


async def partitions(pool: asyncpg.Pool) -> None:
    for parent in ("metric_rollups_1m", "metric_rollups_1h", "fleet_census_1m", "fleet_census_1h"):
        await create_partition(pool, parent, T0 - dt.timedelta(days=1), NOW + HOUR)
    for parent in ("device_samples", "device_samples_1h"):
        await create_partition(pool, parent, T0 - dt.timedelta(days=3), NOW + HOUR)


async def group_id(pool: asyncpg.Pool, group: groups.Group) -> int:
    await pool.execute(
        """INSERT INTO metric_groups (fleet, device_type, version) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING""",
        *group,
    )
    found: int = await pool.fetchval(
        """SELECT group_id FROM metric_groups WHERE fleet IS NOT DISTINCT FROM $1
           AND device_type IS NOT DISTINCT FROM $2 AND version IS NOT DISTINCT FROM $3""",
        *group,
    )
    return found


def generate(
    fulls: Sequence[Full],
    minutes: Iterable[dt.datetime],
    metric_ids: Sequence[int] = (CPU.metric_id or 0,),
    seed: int = 1,
) -> Readings:
    rng = random.Random(seed)
    readings: Readings = {}
    for minute in minutes:
        for full in fulls:
            for metric_id in metric_ids:
                count = rng.randint(20, 60)
                readings[full, minute, metric_id] = [
                    round(rng.betavariate(2, 5) * 100, 3) for _ in range(count)
                ]
    return readings


def _row(values: list[float]) -> tuple[int, float, float, float, bytes]:
    sketch = Sketch()
    sketch.add_many(values)
    return len(values), math.fsum(values), min(values), max(values), sketch.to_bytes()


async def write_rollups(
    pool: asyncpg.Pool,
    readings: Readings,
    table: str = "metric_rollups_1m",
    step: dt.timedelta = MINUTE,
) -> None:
    """What the compactor (and downsampler, with ``step`` = 1 h) write: every full group
    and the grouping-set rows it contributes to, per bucket of ``step``."""
    merged: dict[tuple[groups.Group, dt.datetime, int], list[float]] = defaultdict(list)
    for (full, minute, metric_id), values in readings.items():
        bucket = query_plan.bucket_start(minute, step)
        for group in groups.rows_for(*full):
            merged[group, bucket, metric_id].extend(values)
    rows = []
    for (group, bucket, metric_id), values in merged.items():
        rows.append((bucket, await group_id(pool, group), metric_id, *_row(values)))
    await pool.executemany(
        f"""INSERT INTO {table} (bucket_start, group_id, metric, count, sum, min, max, sketch)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        rows,
    )


async def write_partials(pool: asyncpg.Pool, readings: Readings, writer: str = "w1") -> None:
    await pool.executemany(
        """INSERT INTO metric_rollup_partials (writer, bucket_start, fleet, device_type,
               version, metric, count, sum, min, max, sketch)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        [
            (writer, minute, *full, metric_id, *_row(values))
            for (full, minute, metric_id), values in readings.items()
        ],
    )


# --- the independent computation ----------------------------------------------------------


def expected(
    readings: Readings,
    metric_id: int,
    interval: dt.timedelta,
    key_of: Mapping[Full, tuple[tuple[str, str], ...] | None],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[tuple[tuple[str, str], ...], dict[dt.datetime, list[float]]]:
    out: dict[tuple[tuple[str, str], ...], dict[dt.datetime, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for (full, minute, mid), values in readings.items():
        key = key_of[full]
        if mid == metric_id and key is not None and start <= minute < end:
            out[key][query_plan.bucket_start(minute, interval)].extend(values)
    return out


def exact(values: list[float], aggregation: str) -> float:
    if aggregation == "AVG":
        return math.fsum(values) / len(values)
    if aggregation == "MIN":
        return min(values)
    if aggregation == "MAX":
        return max(values)
    if aggregation == "SUM":
        return math.fsum(values)
    if aggregation == "COUNT":
        return float(len(values))
    ordered = sorted(values)
    # The rank DDSketch estimates: floor(q * (n - 1)).
    return ordered[math.floor(metrics.PERCENTILES[aggregation] * (len(values) - 1))]


def assert_series_match(
    answer: Answer,
    truth: dict[tuple[tuple[str, str], ...], dict[dt.datetime, list[float]]],
    aggregation: str,
) -> None:
    got = {s.labels: s for s in answer.series}
    assert set(got) == set(truth)
    for key, buckets in truth.items():
        series: Series = got[key]
        assert [p.start for p in series.points] == sorted(buckets)
        for point in series.points:
            values = buckets[point.start]
            assert point.sample_count == len(values)
            want = exact(values, aggregation)
            if aggregation in metrics.PERCENTILES:
                assert abs(point.value - want) <= ALPHA * abs(want) + 1e-9, (point, want)
            else:
                assert point.value == pytest.approx(want, rel=1e-12)


def make_plan(
    names: Sequence[str],
    aggregation: str,
    start: dt.datetime,
    end: dt.datetime,
    interval_seconds: int,
    labels: dict[str, str] | None = None,
) -> QueryPlan:
    return plan(
        MetricsQuery(
            names, aggregation, start, end, dt.timedelta(seconds=interval_seconds), labels or {}
        ),
        now=NOW,
        retentions=Retentions(),
    )


FULLS: list[Full] = [
    ("a", "pi", "1.0"),
    ("a", "pi", "2.0"),
    ("a", "nuc", "1.0"),
    ("b", "pi", "1.0"),
]


# --- rollups ------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", ["AVG", "MIN", "MAX", "SUM", "COUNT", "P50", "P95", "P99"])
async def test_each_aggregation_equals_the_readings_fleet_wide(
    pool: asyncpg.Pool, aggregation: str
) -> None:
    await partitions(pool)
    # Minutes 00:50-01:10 and 02:00-02:05: 01:00 sits exactly on a bucket boundary (it
    # belongs to 01:00), and the 01:30 bucket is empty (omitted).
    minutes = [T0 + HOUR - 10 * MINUTE + i * MINUTE for i in range(21)]
    minutes += [T0 + 2 * HOUR + i * MINUTE for i in range(6)]
    readings = generate(FULLS, minutes)
    await write_rollups(pool, readings)
    start, end = T0, T0 + 3 * HOUR
    answer = await read_metrics(
        pool, make_plan(["cpu_usage"], aggregation, start, end, 1800), now=NOW
    )
    truth = expected(
        readings,
        CPU.metric_id or 0,
        dt.timedelta(seconds=1800),
        dict.fromkeys(FULLS, ()),
        start,
        end,
    )
    assert sorted(truth[()]) == [T0 + 30 * MINUTE, T0 + HOUR, T0 + 2 * HOUR]
    assert_series_match(answer, truth, aggregation)
    stats = answer.statistics["cpu_usage"]
    everything = [v for values in readings.values() for v in values]
    assert stats.sample_count == len(everything)
    assert stats.avg == pytest.approx(math.fsum(everything) / len(everything), rel=1e-12)
    assert (stats.min, stats.max) == (min(everything), max(everything))
    for got, aggregation_name in ((stats.p50, "P50"), (stats.p95, "P95"), (stats.p99, "P99")):
        want = exact(everything, aggregation_name)
        assert abs(got - want) <= ALPHA * want


@pytest.mark.parametrize(
    ("labels", "key_of"),
    [
        # {type}: a stored grouping set.
        ({"type": "*"}, {f: (("type", f[1]),) for f in FULLS}),
        # {fleet, type}: stored, with a restriction.
        (
            {"fleet": "a", "type": "*"},
            {f: (("fleet", "a"), ("type", f[1])) if f[0] == "a" else None for f in FULLS},
        ),
        # {fleet, version}: not stored, the full groups are merged.
        (
            {"fleet": "*", "version": "*"},
            {f: (("fleet", f[0]), ("version", f[2])) for f in FULLS},
        ),
        # {version} restricted: not stored either.
        ({"version": "1.0"}, {f: (("version", "1.0"),) if f[2] == "1.0" else None for f in FULLS}),
    ],
)
async def test_grouped_and_restricted_labels_give_one_series_per_value(
    pool: asyncpg.Pool,
    labels: dict[str, str],
    key_of: dict[Full, tuple[tuple[str, str], ...] | None],
) -> None:
    await partitions(pool)
    readings = generate(FULLS, [T0 + i * MINUTE for i in range(90)], seed=2)
    await write_rollups(pool, readings)
    start, end = T0, T0 + 2 * HOUR
    for aggregation in ("AVG", "P95"):
        answer = await read_metrics(
            pool, make_plan(["cpu_usage"], aggregation, start, end, 900, labels), now=NOW
        )
        truth = expected(
            readings, CPU.metric_id or 0, dt.timedelta(seconds=900), key_of, start, end
        )
        assert_series_match(answer, truth, aggregation)


async def test_a_stored_grouping_set_and_merged_full_groups_agree(pool: asyncpg.Pool) -> None:
    # One device type, so {type, version} (stored) and {version} (merged from full groups)
    # ask the same question.
    fulls: list[Full] = [("a", "pi", "1.0"), ("b", "pi", "1.0"), ("b", "pi", "2.0")]
    await partitions(pool)
    await write_rollups(pool, generate(fulls, [T0 + i * MINUTE for i in range(60)], seed=3))
    for aggregation in ("AVG", "MAX", "P99"):
        stored = await read_metrics(
            pool,
            make_plan(
                ["cpu_usage"], aggregation, T0, T0 + HOUR, 600, {"type": "*", "version": "*"}
            ),
            now=NOW,
        )
        merged = await read_metrics(
            pool,
            make_plan(["cpu_usage"], aggregation, T0, T0 + HOUR, 600, {"version": "*"}),
            now=NOW,
        )
        assert len(stored.series) == len(merged.series) == 2
        for a, b in zip(stored.series, merged.series, strict=True):
            assert [(p.start, p.sample_count) for p in a.points] == [
                (p.start, p.sample_count) for p in b.points
            ]
            # Float sums in another order: equal to the last bits, not bit for bit.
            assert [p.value for p in a.points] == pytest.approx(
                [p.value for p in b.points], rel=1e-12
            )
        assert [dict(s.labels)["version"] for s in merged.series] == ["1.0", "2.0"]


async def test_hourly_and_minute_tiers_agree_and_the_unwritten_hour_comes_from_minutes(
    pool: asyncpg.Pool,
) -> None:
    await partitions(pool)
    readings = generate(FULLS, [T0 + i * MINUTE for i in range(180)], (1, 2), seed=4)
    await write_rollups(pool, readings)
    # The downsampler has written the first two hours only.
    await write_rollups(
        pool,
        {k: v for k, v in readings.items() if k[1] < T0 + 2 * HOUR},
        "metric_rollups_1h",
        HOUR,
    )
    for aggregation in ("AVG", "MIN", "COUNT", "P95"):
        hourly = make_plan(["cpu_usage", "memory_usage"], aggregation, T0, T0 + 3 * HOUR, 3600)
        assert {r.tier for r in hourly.reads} == {Tier.ROLLUPS_1H}
        minutely = dataclasses.replace(
            hourly, reads=tuple(dataclasses.replace(r, tier=Tier.ROLLUPS_1M) for r in hourly.reads)
        )
        from_hours = await read_metrics(pool, hourly, now=NOW)
        from_minutes = await read_metrics(pool, minutely, now=NOW)
        assert len(from_hours.series) == 2
        for a, b in zip(from_hours.series, from_minutes.series, strict=True):
            assert [p.start for p in a.points] == [T0, T0 + HOUR, T0 + 2 * HOUR]
            assert [p.sample_count for p in a.points] == [p.sample_count for p in b.points]
            for p, q in zip(a.points, b.points, strict=True):
                assert p.value == pytest.approx(q.value, rel=1e-12)
        truth = expected(
            readings, MEMORY.metric_id or 0, HOUR, dict.fromkeys(FULLS, ()), T0, T0 + 3 * HOUR
        )
        memory = dataclasses.replace(from_hours, series=from_hours.series[1:])
        assert_series_match(memory, truth, aggregation)


async def test_partials_of_uncompacted_minutes_are_included(pool: asyncpg.Pool) -> None:
    await partitions(pool)
    compacted = generate(FULLS, [T0 + i * MINUTE for i in range(5)], seed=5)
    await write_rollups(pool, compacted)
    # A late partial for a compacted minute, and two workers' partials of the last minute.
    late = generate(FULLS[:1], [T0 + 4 * MINUTE], seed=6)
    last_w1 = generate(FULLS, [T0 + 5 * MINUTE], seed=7)
    last_w2 = generate(FULLS[1:], [T0 + 5 * MINUTE], seed=8)
    await write_partials(pool, late, "w1")
    await write_partials(pool, last_w1, "w1")
    await write_partials(pool, last_w2, "w2")
    everything: Readings = defaultdict(list)
    for part in (compacted, late, last_w1, last_w2):
        for k, v in part.items():
            everything[k].extend(v)
    labels = {"fleet": "*"}
    key_of = {f: (("fleet", f[0]),) for f in FULLS}
    for aggregation in ("SUM", "COUNT", "P50"):
        answer = await read_metrics(
            pool, make_plan(["cpu_usage"], aggregation, T0, T0 + HOUR, 60, labels), now=NOW
        )
        truth = expected(everything, CPU.metric_id or 0, MINUTE, key_of, T0, T0 + HOUR)
        assert_series_match(answer, truth, aggregation)
        assert answer.series[0].points[-1].start == T0 + 5 * MINUTE


async def test_heartbeat_rate_is_the_cpu_count_over_the_bucket_seconds(pool: asyncpg.Pool) -> None:
    await partitions(pool)
    readings = generate(FULLS, [T0 + i * MINUTE for i in range(20)], seed=9)
    await write_rollups(pool, readings)
    answer = await read_metrics(
        pool, make_plan(["heartbeat_rate"], "AVG", T0, T0 + HOUR, 600), now=NOW
    )
    truth = expected(
        readings,
        CPU.metric_id or 0,
        dt.timedelta(seconds=600),
        dict.fromkeys(FULLS, ()),
        T0,
        T0 + HOUR,
    )
    got = answer.series[0].points
    assert [(p.start, p.value, p.sample_count) for p in got] == [
        (bucket, len(values) / 600, len(values)) for bucket, values in sorted(truth[()].items())
    ]


async def test_too_many_series_is_refused_before_reading(pool: asyncpg.Pool) -> None:
    for i in range(201):
        await group_id(pool, (None, f"type-{i}", None))
    with pytest.raises(InvalidQuery) as refused:
        await read_metrics(
            pool, make_plan(["cpu_usage"], "AVG", T0, T0 + HOUR, 600, {"type": "*"}), now=NOW
        )
    assert str(refused.value) == (
        'labels type="*" give 201 series; at most 200 are allowed: restrict the labels'
    )


# --- census -------------------------------------------------------------------------------


async def test_census_counts_per_bucket_with_missing_minutes_as_zero(pool: asyncpg.Pool) -> None:
    await partitions(pool)
    everyone = await group_id(pool, (None, None, None))
    fleet_a = await group_id(pool, ("a", None, None))
    rng = random.Random(10)
    online_a: dict[dt.datetime, int] = {}
    online_all: dict[dt.datetime, int] = {}
    rows = []
    for i in range(120):
        minute = T0 + i * MINUTE
        a_online = rng.randint(0, 50) if i % 7 else 0  # every 7th minute: no row (0 online)
        others = rng.randint(1, 50)
        offline = rng.randint(1, 20)
        if a_online:
            rows.append((minute, fleet_a, "online", a_online))
        rows.append((minute, everyone, "online", a_online + others))
        rows.append((minute, everyone, "offline", offline))
        online_a[minute] = a_online
        online_all[minute] = a_online + others
    await pool.executemany(
        """INSERT INTO fleet_census_1m (bucket_start, group_id, status, devices)
           VALUES ($1, $2, $3, $4)""",
        rows,
    )
    for aggregation in ("AVG", "MAX", "MIN", "P95"):
        answer = await read_metrics(
            pool,
            make_plan(
                ["device_online_count"], aggregation, T0, T0 + 2 * HOUR, 1800, {"fleet": "a"}
            ),
            now=NOW,
        )
        [series] = answer.series
        assert series.labels == (("fleet", "a"),)
        assert len(series.points) == 4
        for point in series.points:
            values = [float(online_a[point.start + i * MINUTE]) for i in range(30)]
            assert point.sample_count == 30
            want = {
                "AVG": math.fsum(values) / 30,
                "MAX": max(values),
                "MIN": min(values),
                "P95": sorted(values)[math.ceil(0.95 * 30) - 1],
            }[aggregation]
            assert point.value == pytest.approx(want)
    # The summary's counts at end_time: the census minute at (or just before) end_time.
    answer = await read_metrics(
        pool,
        make_plan(
            ["device_count"], "AVG", T0, T0 + 119 * MINUTE + 30 * dt.timedelta(seconds=1), 600
        ),
        now=NOW,
    )
    last = T0 + 119 * MINUTE
    offline_last = next(r[3] for r in rows if r[0] == last and r[2] == "offline")
    assert (answer.device_count, answer.online_count) == (
        online_all[last] + offline_last,
        online_all[last],
    )


async def test_hourly_census_average_is_the_devices_sum_over_the_minutes(
    pool: asyncpg.Pool,
) -> None:
    await partitions(pool)
    everyone = await group_id(pool, (None, None, None))
    await pool.executemany(
        """INSERT INTO fleet_census_1h (bucket_start, group_id, status, minutes, devices_sum,
               devices_min, devices_max) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [
            (T0, everyone, "online", 60, 60 * 100 + 30, 90, 110),
            (T0, everyone, "offline", 60, 600, 5, 15),
            (T0 + HOUR, everyone, "online", 60, 60 * 120, 115, 125),
        ],
    )
    answer = await read_metrics(
        pool,
        make_plan(["device_online_count", "device_count"], "AVG", T0, T0 + 2 * HOUR, 3600),
        now=NOW,
    )
    online, count = answer.series
    assert [(p.value, p.sample_count) for p in online.points] == [(100.5, 60), (120.0, 60)]
    assert [p.value for p in count.points] == [110.5, 120.0]


# --- per device ---------------------------------------------------------------------------


async def add_device(
    pool: asyncpg.Pool, device_id: str, tags: list[str], metadata: dict[str, str], status: str
) -> int:
    key: int = await pool.fetchval(
        """INSERT INTO devices (device_id, fleet, device_type, version, status, tags, metadata)
           VALUES ($1, 'a', 'pi', '1.0', $2, $3, $4::jsonb) RETURNING device_key""",
        device_id,
        status,
        tags,
        metadata,
    )
    return key


async def test_per_device_series_come_from_raw_samples_exactly(pool: asyncpg.Pool) -> None:
    await partitions(pool)
    rng = random.Random(11)
    devices = {
        "d-1": await add_device(pool, "d-1", ["lab", "eu"], {"site": "x"}, "online"),
        "d-2": await add_device(pool, "d-2", ["lab"], {"site": "y"}, "offline"),
        "d-3": await add_device(pool, "d-3", [], {}, "online"),
    }
    start = NOW - 6 * HOUR
    samples: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
    rows = []
    for device_id, key in devices.items():
        for i in range(72):
            seen = start + i * 5 * MINUTE + dt.timedelta(seconds=rng.randint(0, 299))
            if i == 12:
                seen = start + HOUR  # exactly on a bucket boundary
            cpu = round(rng.uniform(0, 100), 2)
            samples[device_id].append((seen, cpu))
            rows.append((seen, key, cpu))
    await pool.executemany(
        """INSERT INTO device_samples (seen_at, device_key, cpu_usage, memory_usage,
               memory_used_mb, memory_total_mb, disk_usage, disk_used_gb, disk_total_gb,
               uptime_seconds, load_avg_1m, load_avg_5m, load_avg_15m)
           VALUES ($1, $2, $3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)""",
        rows,
    )
    cases: list[tuple[dict[str, str], dict[tuple[tuple[str, str], ...], list[str]]]] = [
        ({"device_id": "d-2"}, {(("device_id", "d-2"),): ["d-2"]}),
        ({"device_id": "*"}, {(("device_id", d),): [d] for d in devices}),
        ({"tags": "*"}, {(("tags", "lab"),): ["d-1", "d-2"], (("tags", "eu"),): ["d-1"]}),
        ({"metadata.site": "x"}, {(("metadata.site", "x"),): ["d-1"]}),
        ({"status": "online"}, {(("status", "online"),): ["d-1", "d-3"]}),
    ]
    for labels, members in cases:
        for aggregation in ("AVG", "MAX", "COUNT", "P95"):
            answer = await read_metrics(
                pool, make_plan(["cpu_usage"], aggregation, start, NOW, 3600, labels), now=NOW
            )
            assert answer.series and answer.series[0].metric is CPU
            assert {s.labels for s in answer.series} == set(members)
            for series in answer.series:
                buckets: dict[dt.datetime, list[float]] = defaultdict(list)
                for device_id in members[series.labels]:
                    for seen, cpu in samples[device_id]:
                        buckets[query_plan.bucket_start(seen, HOUR)].append(cpu)
                assert [p.start for p in series.points] == sorted(buckets)
                for point in series.points:
                    values = sorted(float(asyncpg_real(v)) for v in buckets[point.start])
                    assert point.sample_count == len(values)
                    want = {
                        "AVG": math.fsum(values) / len(values),
                        "MAX": values[-1],
                        "COUNT": float(len(values)),
                        "P95": values[math.ceil(0.95 * len(values)) - 1],
                    }[aggregation]
                    assert point.value == pytest.approx(want, rel=1e-6)


def asyncpg_real(value: float) -> float:
    """``value`` as a PostgreSQL ``real`` holds it (single precision)."""
    import struct

    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


async def test_per_device_questions_over_too_many_devices_are_refused(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_plan, "MAX_DEVICES", 2)
    for i in range(3):
        await add_device(pool, f"d-{i}", ["lab"], {}, "online")
    with pytest.raises(InvalidQuery) as refused:
        await read_metrics(
            pool, make_plan(["cpu_usage"], "AVG", NOW - HOUR, NOW, 300, {"tags": "lab"}), now=NOW
        )
    assert str(refused.value).startswith('labels tags="lab" match 3 devices; per-device metrics')


async def test_older_per_device_windows_come_from_hourly_rows_weighted_by_samples(
    pool: asyncpg.Pool,
) -> None:
    await partitions(pool)
    rng = random.Random(12)
    keys = {d: await add_device(pool, d, [], {}, "online") for d in ("d-1", "d-2")}
    start = NOW - 2 * dt.timedelta(days=1)
    hours: dict[str, list[tuple[dt.datetime, int, float, float]]] = defaultdict(list)
    rows = []
    for device_id, key in keys.items():
        for h in range(24):
            hour = start + h * HOUR
            samples = rng.randint(1, 12)
            avg, high = round(rng.uniform(0, 60), 2), round(rng.uniform(60, 100), 2)
            hours[device_id].append((hour, samples, avg, high))
            rows.append((hour, key, samples, avg, high))
    await pool.executemany(
        """INSERT INTO device_samples_1h (hour_start, device_key, samples, cpu_usage_avg,
               cpu_usage_max) VALUES ($1, $2, $3, $4, $5)""",
        rows,
    )
    for aggregation in ("AVG", "MAX", "COUNT"):
        planned = make_plan(["cpu_usage"], aggregation, start, NOW, 6 * 3600, {"device_id": "*"})
        assert planned.reads[0].tier is Tier.SAMPLES_1H
        answer = await read_metrics(pool, planned, now=NOW)
        assert [s.labels for s in answer.series] == [
            (("device_id", "d-1"),),
            (("device_id", "d-2"),),
        ]
        for series in answer.series:
            device_id = series.labels[0][1]
            assert len(series.points) == 4
            for point in series.points:
                inside = [
                    (n, asyncpg_real(a), asyncpg_real(m))
                    for hour, n, a, m in hours[device_id]
                    if point.start <= hour < point.start + 6 * HOUR
                ]
                count = sum(n for n, _, _ in inside)
                want = {
                    "AVG": math.fsum(n * a for n, a, _ in inside) / count,
                    "MAX": max(m for _, _, m in inside),
                    "COUNT": float(count),
                }[aggregation]
                assert point.sample_count == count
                assert point.value == pytest.approx(want, rel=1e-9)
