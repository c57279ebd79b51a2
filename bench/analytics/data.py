"""Synthetic analytics data for a 1,000,000-device fleet, generated once and kept.

The database (``fleetd_bench_analytics`` in an embedded PostgreSQL under
``/tmp/fleetd-bench-analytics``) is reused when its ``bench_meta`` row says it was made
with the same parameters, so a second run only measures.

Rollups: 50 full groups (5 fleets x 10 device types, one version), every grouping-set
row of ``fleetd.domain.analytics.groups`` (126 groups), for ``DAYS`` days:

* minute rows of the full groups for each metric (what the compactor writes per full
  group; 50 x 1,440 x days x metrics rows). A group-minute at a 5-minute heartbeat sees
  1,000,000 / 300 x 60 / 50 = 4,000 heartbeats: each row's sketch is one of a pool of
  ``POOL`` sketches of 4,000 realistic readings (so its bytes have the real size), and its
  count/sum/min/max are that sketch's own;
* hourly rows of every group (full and grouping sets), each the merge of the minute
  sketches below it (compiled ``Sketch.merge``), as the downsampler writes them.

The truth for any hour or window is known without the rows: it is the pool readings
weighted by how often each pool sketch was used (``Truth``).

Per-device samples: ``devices`` rows and one day of ``device_samples`` (288 per device,
every 300 s, jittered) for ``--devices`` devices.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg

from core_ext import Sketch
from fleetd.domain.analytics import groups, metrics
from fleetd.storage.embedded import EmbeddedPostgres
from fleetd.storage.migrate import migrate
from tests.support.analytics import create_partition

ROOT: Final = Path("/tmp/fleetd-bench-analytics")
DATABASE: Final = "fleetd_bench_analytics"
END: Final = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""The window ends here (the benchmark's "now")."""
FLEETS: Final = [f"fleet-{i}" for i in range(5)]
TYPES: Final = [f"type-{i}" for i in range(10)]
VERSION: Final = "1.0"
FULLS: Final = [(f, t, VERSION) for f in FLEETS for t in TYPES]
METRICS: Final = [metrics.BY_NAME[n] for n in ("cpu_usage", "memory_usage", "disk_usage")]
POOL: Final = 64
HEARTBEATS_PER_GROUP_MINUTE: Final = 4000
SAMPLE_EVERY: Final = dt.timedelta(seconds=300)


def readings(metric: str, rng: random.Random, n: int) -> list[float]:
    """n readings shaped like the metric (docs/analytics.md 1.1 distributions)."""
    if metric == "cpu_usage":
        return [0.0 if rng.random() < 0.02 else 100 * rng.betavariate(2, 5) for _ in range(n)]
    if metric == "memory_usage":
        return [min(max(rng.gauss(55, 15), 0.0), 100.0) for _ in range(n)]
    return [min(max(rng.gauss(40, 20), 0.5), 100.0) for _ in range(n)]


@dataclass
class Pool:
    """Per metric, ``POOL`` sketches of 4,000 readings each, their bytes and readings."""

    values: dict[int, list[list[float]]] = field(default_factory=dict)
    sketches: dict[int, list[Sketch]] = field(default_factory=dict)
    blobs: dict[int, list[bytes]] = field(default_factory=dict)

    @classmethod
    def build(cls, seed: int = 1) -> Pool:
        pool = cls()
        rng = random.Random(seed)
        for metric in METRICS:
            mid = metric.metric_id or 0
            pool.values[mid] = []
            pool.sketches[mid] = []
            pool.blobs[mid] = []
            for _ in range(POOL):
                values = readings(metric.name, rng, HEARTBEATS_PER_GROUP_MINUTE)
                sketch = Sketch()
                sketch.add_many(values)
                pool.values[mid].append(values)
                pool.sketches[mid].append(sketch)
                pool.blobs[mid].append(sketch.to_bytes())
        return pool


def pool_index(group: int, minute: int, metric_id: int) -> int:
    """Which pool sketch full group ``group`` has at minute ``minute`` (deterministic)."""
    return (group * 7919 + minute * 104729 + metric_id * 31) % POOL


@dataclass
class Truth:
    """Exact answers from pool usage counts: readings weighted by use."""

    pool: Pool

    def usage(self, metric_id: int, first_minute: int, minutes: int) -> list[int]:
        counts = [0] * POOL
        for minute in range(first_minute, first_minute + minutes):
            for group in range(len(FULLS)):
                counts[pool_index(group, minute, metric_id)] += 1
        return counts

    def avg(self, metric_id: int, counts: list[int]) -> float:
        total = math.fsum(
            c * s.sum for c, s in zip(counts, self.pool.sketches[metric_id], strict=True)
        )
        n = sum(c * s.count for c, s in zip(counts, self.pool.sketches[metric_id], strict=True))
        return total / n

    def quantile(self, metric_id: int, counts: list[int], q: float) -> float:
        """The reading of rank floor(q * (n - 1)) of the weighted multiset (DDSketch's rank)."""
        weighted = sorted(
            (v, c)
            for c, values in zip(counts, self.pool.values[metric_id], strict=True)
            if c
            for v in values
        )
        n = sum(c for _, c in weighted)
        rank = math.floor(q * (n - 1))
        cumulative = list(itertools.accumulate(c for _, c in weighted))
        return weighted[bisect.bisect_right(cumulative, rank)][0]


def server() -> EmbeddedPostgres:
    """The benchmark's PostgreSQL (kept between runs under ROOT)."""
    pg = EmbeddedPostgres(ROOT / "postgres")
    pg.start()
    return pg


def database_url(pg: EmbeddedPostgres) -> str:
    """The benchmark database's URL on ``pg`` (its socket in the query string is kept)."""
    base, _, query = pg.url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{DATABASE}" + (f"?{query}" if query else "")


async def ensure(pg: EmbeddedPostgres, *, days: int, devices: int, pool: Pool) -> bool:
    """Generate the data unless the database already holds it; True when generated."""
    wanted = f"days={days} devices={devices} pool={POOL} v1"
    admin = await asyncpg.connect(pg.url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if exists:
            conn = await asyncpg.connect(database_url(pg))
            try:
                made = (
                    await conn.fetchval("SELECT value FROM bench_meta WHERE key = 'params'")
                    if await conn.fetchval("SELECT to_regclass('bench_meta') IS NOT NULL")
                    else None
                )
            finally:
                await conn.close()
            if made == wanted:
                return False
            await admin.execute(f"DROP DATABASE {DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(database_url(pg))
    try:
        await migrate(conn)
        await _generate(conn, days=days, devices=devices, pool=pool)
        await conn.execute("CREATE TABLE bench_meta (key text PRIMARY KEY, value text)")
        await conn.execute("INSERT INTO bench_meta VALUES ('params', $1)", wanted)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return True


async def _generate(conn: Any, *, days: int, devices: int, pool: Pool) -> None:
    start = END - dt.timedelta(days=days)
    for day in range(days):
        lo = start + dt.timedelta(days=day)
        await create_partition(conn, "metric_rollups_1m", lo, lo + dt.timedelta(days=1))
    await create_partition(conn, "metric_rollups_1h", start, END)
    sample_day = END - dt.timedelta(days=1)
    for part in range(4):
        lo = sample_day + dt.timedelta(hours=6 * part)
        await create_partition(conn, "device_samples", lo, lo + dt.timedelta(hours=6))
    ids: dict[groups.Group, int] = {}
    for full in FULLS:
        for group in groups.rows_for(*full):
            if group not in ids:
                ids[group] = await conn.fetchval(
                    """INSERT INTO metric_groups (fleet, device_type, version)
                       VALUES ($1, $2, $3) RETURNING group_id""",
                    *group,
                )
    full_ids = [ids[f] for f in FULLS]
    await _minute_rows(conn, start, days, full_ids, pool)
    await _hourly_rows(conn, start, days, ids, pool)
    await _devices_and_samples(conn, sample_day, devices)


async def _minute_rows(
    conn: Any, start: dt.datetime, days: int, full_ids: list[int], pool: Pool
) -> None:
    def rows(day: int) -> Iterator[tuple[Any, ...]]:
        for minute in range(day * 1440, (day + 1) * 1440):
            at = start + dt.timedelta(minutes=minute)
            for metric in METRICS:
                mid = metric.metric_id or 0
                for group, group_id in enumerate(full_ids):
                    i = pool_index(group, minute, mid)
                    s = pool.sketches[mid][i]
                    yield (at, group_id, mid, s.count, s.sum, s.min, s.max, pool.blobs[mid][i])

    for day in range(days):
        await conn.copy_records_to_table(
            "metric_rollups_1m",
            records=rows(day),
            columns=["bucket_start", "group_id", "metric", "count", "sum", "min", "max", "sketch"],
        )
        print(f"  minute rollups: day {day + 1}/{days}", flush=True)


async def _hourly_rows(
    conn: Any, start: dt.datetime, days: int, ids: dict[groups.Group, int], pool: Pool
) -> None:
    records: list[tuple[Any, ...]] = []
    for hour in range(days * 24):
        at = start + dt.timedelta(hours=hour)
        for metric in METRICS:
            mid = metric.metric_id or 0
            merged: dict[groups.Group, Sketch] = {}
            for group, full in enumerate(FULLS):
                sketch = Sketch()
                for minute in range(hour * 60, hour * 60 + 60):
                    sketch.merge(pool.sketches[mid][pool_index(group, minute, mid)])
                for row in groups.rows_for(*full):
                    if row not in merged:
                        merged[row] = Sketch()
                    merged[row].merge(sketch)
            for row, s in merged.items():
                assert s.min is not None and s.max is not None
                records.append((at, ids[row], mid, s.count, s.sum, s.min, s.max, s.to_bytes()))
        if len(records) > 50_000 or hour == days * 24 - 1:
            await conn.copy_records_to_table(
                "metric_rollups_1h",
                records=records,
                columns=[
                    "bucket_start",
                    "group_id",
                    "metric",
                    "count",
                    "sum",
                    "min",
                    "max",
                    "sketch",
                ],
            )
            records = []
    print("  hourly rollups written", flush=True)


async def _devices_and_samples(conn: Any, day: dt.datetime, devices: int) -> None:
    await conn.copy_records_to_table(
        "devices",
        records=(
            (f"bench-{i:07d}", FLEETS[i % 5], TYPES[i % 10], VERSION, "online")
            for i in range(devices)
        ),
        columns=["device_id", "fleet", "device_type", "version", "status"],
    )
    keys = [r[0] for r in await conn.fetch("SELECT device_key FROM devices ORDER BY device_key")]
    rng = random.Random(5)
    chunk = 2000

    def rows(batch: list[int]) -> Iterator[tuple[Any, ...]]:
        # In time order (as the flush writes them): per 5-minute slot, every device.
        for slot in range(288):
            base = day + slot * SAMPLE_EVERY
            for key in batch:
                seen = base + dt.timedelta(microseconds=rng.randrange(300_000_000))
                cpu = 100 * rng.betavariate(2, 5)
                yield (seen, key, cpu, 50.0, 2048, 4096, 40.0, 12.0, 32.0, 86400, 0.5, 0.4, 0.3)

    for i in range(0, len(keys), chunk):
        await conn.copy_records_to_table(
            "device_samples",
            records=rows(keys[i : i + chunk]),
            columns=[
                "seen_at",
                "device_key",
                "cpu_usage",
                "memory_usage",
                "memory_used_mb",
                "memory_total_mb",
                "disk_usage",
                "disk_used_gb",
                "disk_total_gb",
                "uptime_seconds",
                "load_avg_1m",
                "load_avg_5m",
                "load_avg_15m",
            ],
        )
    print(f"  {devices} devices x 288 samples written", flush=True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
