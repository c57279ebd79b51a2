"""GetMetrics at fleet scale: 30 days of rollups of a 1,000,000-device fleet, and one device's day.

    python -m bench.analytics.get_metrics [--days 30] [--devices 20000] [--repeat 21]

Data (``bench/analytics/data.py``, generated once and reused): 50 full groups and their
grouping-set rows, ``--days`` days of minute rows (full groups) and hourly rows (every
group) for cpu_usage, memory_usage and disk_usage, sketches of 4,000 realistic readings per
group-minute; ``--devices`` devices with a day of ``device_samples`` each (288).

Measured, through the same functions GetMetrics calls (``query_plan.plan`` and
``metric_reads.read_metrics``, which includes the summary):

1. fleet-wide, 3 metrics, interval 3600 s over the whole window, AVG and P95 (target
   <= 200 ms p50; p99 reported), side by side with the same AVG answered by plain SQL over
   the minute tier (``sum(sum)/sum(count)`` of the full groups' minute rows, date_bin to
   hours), interleaved in the same run. Before timing: every AVG point equals the truth
   computed from the generated readings (rel 1e-9), and P95 of sampled hours and of the
   whole window are within 1 % of the exact P95 of the readings.
2. one device over 24 h from ``device_samples`` (AVG, interval 300 s; target <= 50 ms),
   beside the plain SQL for the same series; asserted equal first.

Writes bench/results/analytics_get_metrics.json and its rows of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.analytics import data
from bench.harness import Report
from fleetd.domain.analytics.query_plan import MetricsQuery, Retentions, plan
from fleetd.storage.analytics.metric_reads import Answer, read_metrics
from fleetd.storage.postgres import connect

ALPHA = 0.01
NAMES = ["cpu_usage", "memory_usage", "disk_usage"]
PLAIN_SQL_MINUTES = """
SELECT date_bin('1 hour', bucket_start, '1970-01-01 00:00:00+00') AS bucket, metric,
       sum(sum) / sum(count) AS value, sum(count) AS n
FROM metric_rollups_1m
WHERE metric = ANY($1::smallint[]) AND bucket_start >= $2 AND bucket_start < $3
  AND group_id = ANY($4::int[])
GROUP BY 1, 2 ORDER BY 2, 1"""
PLAIN_SQL_DEVICE = """
SELECT date_bin('300 seconds', seen_at, '1970-01-01 00:00:00+00') AS bucket,
       avg(cpu_usage::float8) AS value, count(*) AS n
FROM device_samples WHERE device_key = $1 AND seen_at >= $2 AND seen_at < $3
GROUP BY 1 ORDER BY 1"""


async def timed(
    candidates: dict[str, Callable[[], Awaitable[object]]], repeat: int
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, interleaved (A B A B ...)."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            start = time.perf_counter()
            await fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


async def fleet_wide(
    db: asyncpg.Pool, truth: data.Truth, days: int, repeat: int, report: Report
) -> None:
    start = data.END - dt.timedelta(days=days)
    now = data.END

    def planned(aggregation: str) -> Any:
        query = MetricsQuery(NAMES, aggregation, start, data.END, dt.timedelta(hours=1))
        return plan(query, now=now, retentions=Retentions())

    avg_plan, p95_plan = planned("AVG"), planned("P95")
    avg = await read_metrics(db, avg_plan, now=now)
    p95 = await read_metrics(db, p95_plan, now=now)
    check_fleet_answers(avg, p95, truth, days)
    full_ids = [
        r[0]
        for r in await db.fetch(
            "SELECT group_id FROM metric_groups WHERE fleet IS NOT NULL "
            "AND device_type IS NOT NULL AND version IS NOT NULL"
        )
    ]
    ids = [m.metric_id for m in data.METRICS]

    async def plain() -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await db.fetch(
            PLAIN_SQL_MINUTES, ids, start, data.END, full_ids
        )
        return rows

    rows = await plain()
    by_metric = {(r["metric"], r["bucket"]): r["value"] for r in rows}
    for series in avg.series:
        for point in series.points:
            plain_value = by_metric[series.metric.metric_id, point.start]
            assert abs(plain_value - point.value) <= 1e-9 * abs(point.value)
    samples = await timed(
        {
            "avg": lambda: read_metrics(db, avg_plan, now=now),
            "p95": lambda: read_metrics(db, p95_plan, now=now),
            "plain_sql_minutes_avg": plain,
        },
        repeat,
    )
    for name, label in (("avg", "AVG"), ("p95", "P95")):
        median = statistics.median(samples[name]) * 1000
        report.add(
            f"GetMetrics fleet-wide, 3 metrics, {days} days, interval 3600 s, {label} "
            "(plan + read_metrics with summary, hourly rollups + grouping sets)",
            f"p50 {median:.1f} ms, p99 {p(samples[name], 0.99):.1f} ms "
            f"(plain SQL AVG over the full groups' minute rows, same run: "
            f"p50 {statistics.median(samples['plain_sql_minutes_avg']) * 1000:.0f} ms)",
            "<= 200 ms p50",
            median <= 200,
            p50_ms=median,
            p99_ms=p(samples[name], 0.99),
            plain_sql_p50_ms=statistics.median(samples["plain_sql_minutes_avg"]) * 1000,
            minute_rows_read_by_plain_sql=days * 1440 * len(full_ids) * len(ids),
        )


def check_fleet_answers(avg: Answer, p95: Answer, truth: data.Truth, days: int) -> None:
    assert [s.metric.name for s in avg.series] == NAMES
    hours = days * 24
    for series in avg.series:
        mid = series.metric.metric_id or 0
        assert len(series.points) == hours
        for i in (0, hours // 2, hours - 1):
            point = series.points[i]
            want = truth.avg(mid, truth.usage(mid, i * 60, 60))
            assert abs(point.value - want) <= 1e-9 * want, (series.metric.name, i)
    worst = 0.0
    for series in p95.series:
        mid = series.metric.metric_id or 0
        for i in (0, hours - 1):
            want = truth.quantile(mid, truth.usage(mid, i * 60, 60), 0.95)
            error = abs(series.points[i].value - want) / want
            worst = max(worst, error)
        window = truth.quantile(mid, truth.usage(mid, 0, hours * 60), 0.95)
        error = abs(p95.statistics[series.metric.name].p95 - window) / window
        worst = max(worst, error)
    assert worst <= ALPHA, worst
    print(f"  fleet answers checked: P95 worst relative error {worst:.4%}", flush=True)


async def one_device(db: asyncpg.Pool, devices: int, repeat: int, report: Report) -> None:
    now = data.END
    start = now - dt.timedelta(days=1)
    device_id = f"bench-{devices // 2:07d}"
    key = await db.fetchval("SELECT device_key FROM devices WHERE device_id = $1", device_id)
    query = MetricsQuery(
        ["cpu_usage"], "AVG", start, now, dt.timedelta(seconds=300), {"device_id": device_id}
    )
    device_plan = plan(query, now=now, retentions=Retentions())
    answer = await read_metrics(db, device_plan, now=now)

    async def plain() -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await db.fetch(PLAIN_SQL_DEVICE, key, start, now)
        return rows

    rows = await plain()
    [series] = answer.series
    assert [(pt.start, pt.sample_count) for pt in series.points] == [
        (r["bucket"], r["n"]) for r in rows
    ]
    assert all(
        abs(pt.value - r["value"]) <= 1e-9 * abs(r["value"])
        for pt, r in zip(series.points, rows, strict=True)
    )
    assert sum(pt.sample_count for pt in series.points) == 288
    samples = await timed(
        {"get_metrics": lambda: read_metrics(db, device_plan, now=now), "plain_sql": plain},
        repeat,
    )
    median = statistics.median(samples["get_metrics"]) * 1000
    total = await db.fetchval("SELECT count(*) FROM device_samples")
    report.add(
        f"GetMetrics one device, 24 h of device_samples (AVG, 300 s; {devices:,} devices, "
        f"{total:,} samples in the day)",
        f"p50 {median:.1f} ms, p99 {p(samples['get_metrics'], 0.99):.1f} ms (plain SQL for "
        f"the series alone, same run: p50 {statistics.median(samples['plain_sql']) * 1000:.1f} ms)",
        "<= 50 ms",
        median <= 50,
        p50_ms=median,
        p99_ms=p(samples["get_metrics"], 0.99),
        plain_sql_p50_ms=statistics.median(samples["plain_sql"]) * 1000,
        samples_in_table=int(total),
    )


async def main_async(days: int, devices: int, repeat: int, report: Report) -> None:
    pg = data.server()
    try:
        pool = data.Pool.build()
        began = time.perf_counter()
        if await data.ensure(pg, days=days, devices=devices, pool=pool):
            print(f"  generated in {time.perf_counter() - began:.0f} s", flush=True)
        else:
            print("  reusing the generated database", flush=True)
        db = await connect(data.database_url(pg), run_migrations=False, min_size=1, max_size=2)
        try:
            await fleet_wide(db, data.Truth(pool), days, repeat, report)
            await one_device(db, devices, repeat, report)
        finally:
            await db.close()
    finally:
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    command = "python -m bench.analytics.get_metrics"
    if (args.days, args.devices) != (30, 20_000):
        command += f" --days {args.days} --devices {args.devices}"
    report = Report("analytics_get_metrics", command)
    asyncio.run(main_async(args.days, args.devices, args.repeat, report))
    report.write()


if __name__ == "__main__":
    main()
