"""GetDeviceHealth at fleet scale: the SQL summary vs evaluating every device in Python.

    python -m bench.analytics.device_health [--devices N] [--database-url URL]

Generates N devices (default 1,000,000) in a dedicated database
(``bench/analytics/health_fleet.py``: readings, certificates with reissues and revocations,
a running and a completed deployment's assignments, direct assignments under way), then
measures, interleaved in one run:

- **sql**: ``fleetd.storage.analytics.health.summary``, COMPREHENSIVE, no filter (target
  <= 1 s, docs/analytics.md section 7), and the same with the seed's filter
  ``type:raspberry-pi``; and the map's query (``worst``, the 1,000 worst devices);
- **legacy**: the same two queries in their previous shape
  (``bench/analytics/health_legacy.py``: two assignment aggregates joined, greatest and a
  ``count(*) FILTER`` per status and check, thresholds' instants computed per row);
- **naive**: every selected device's Observed row fetched (the same SQL, all rows) and
  ``fleetd.domain.device_health.evaluate`` run per device in Python, then counted.

Before timing it asserts that all three give the same summary (every status count and
every failing-check count) and both map queries the same devices, for both selections.
``now`` is pinned to the newest heartbeat plus a few seconds and ``offline_after``
widened, so the answers do not drift while it runs, nor when a kept fleet is reused.

``--database-url`` names a database to keep the fleet in: generated there when its
``devices`` table is empty (it must be migrated), reused as it is otherwise, never
dropped (generating 1,000,000 devices takes minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg

import core_ext
from bench.analytics import health_legacy
from bench.analytics.health_fleet import generate
from bench.harness import Report
from fleetd.domain.device_health import Observed, Thresholds, evaluate
from fleetd.storage.analytics import health as health_store
from fleetd.v1 import device_pb2
from tests.support.storage import StorageServers, drop_database, fresh_database, storage_servers

SEED_FILTER = "type:raspberry-pi"
CHECK_TYPE = device_pb2.COMPREHENSIVE
THRESHOLDS = Thresholds(offline_after=3600.0, min_agent_version="1.2.0")
MAP_LIMIT = 1000
Counts = tuple[int, dict[int, int], dict[str, int]]


async def sql_summary(
    conn: asyncpg.Connection, selection: health_store.Selection, now: dt.datetime
) -> Counts:
    s = await health_store.summary(
        conn, thresholds=THRESHOLDS, check_type=CHECK_TYPE, selection=selection, now=now
    )
    return s.total, s.by_status, s.failing


async def legacy_summary(
    conn: asyncpg.Connection, selection: health_store.Selection, now: dt.datetime
) -> Counts:
    s = await health_legacy.summary(
        conn, thresholds=THRESHOLDS, check_type=CHECK_TYPE, selection=selection, now=now
    )
    return s.total, s.by_status, s.failing


async def sql_worst(
    conn: asyncpg.Connection, selection: health_store.Selection, now: dt.datetime
) -> list[Observed]:
    return await health_store.worst(
        conn,
        thresholds=THRESHOLDS,
        check_type=CHECK_TYPE,
        selection=selection,
        now=now,
        limit=MAP_LIMIT,
    )


async def legacy_worst(
    conn: asyncpg.Connection, selection: health_store.Selection, now: dt.datetime
) -> list[Observed]:
    return await health_legacy.worst(
        conn,
        thresholds=THRESHOLDS,
        check_type=CHECK_TYPE,
        selection=selection,
        now=now,
        limit=MAP_LIMIT,
    )


async def naive_summary(
    conn: asyncpg.Connection, selection: health_store.Selection, now: dt.datetime
) -> Counts:
    """What a summary costs without the SQL classification: fetch every device's
    observation, evaluate it in Python, count."""
    observed = await health_store.worst(
        conn,
        thresholds=THRESHOLDS,
        check_type=CHECK_TYPE,
        selection=selection,
        now=now,
        limit=2**31 - 1,
    )
    statuses: Counter[int] = Counter()
    failing: Counter[str] = Counter()
    for row in observed:
        health = evaluate(row, now=now, thresholds=THRESHOLDS, check_type=CHECK_TYPE)
        statuses[health.status] += 1
        for check in health.checks:
            if check.status >= device_pb2.DEGRADED:
                failing[check.name] += 1
    names = [rule.name for rule in THRESHOLDS.rules(CHECK_TYPE)]
    return (
        len(observed),
        {s: statuses[s] for s in (1, 2, 3, 4)},
        {name: failing[name] for name in names},
    )


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return samples


async def fleet_database(
    servers: StorageServers | None, database_url: str | None
) -> tuple[str, bool]:
    """The database holding the fleet, and whether it is this run's to drop."""
    if database_url is not None:
        return database_url, False
    assert servers is not None
    return await fresh_database(servers), True


async def run(
    servers: StorageServers | None, database_url: str | None, devices: int, repeat: int
) -> None:
    command = "python -m bench.analytics.device_health" + (
        f" --devices {devices}" if devices != 1_000_000 else ""
    )
    report = Report("analytics_device_health", command)
    url, owned = await fleet_database(servers, database_url)
    try:
        conn = await asyncpg.connect(url)
        existing = await conn.fetchval("SELECT count(*) FROM devices")
        if existing == 0:
            started = time.perf_counter()
            await generate(conn, devices)
            print(f"{devices:,} devices generated in {time.perf_counter() - started:.0f} s")
        elif existing != devices:
            raise SystemExit(f"{url} holds {existing:,} devices, not {devices:,}")
        else:
            print(f"reusing the {devices:,} devices in {url}")
        now = await conn.fetchval("SELECT max(last_seen) + interval '5 seconds' FROM devices")
        selections = {
            "no filter": health_store.Selection(),
            f"filter {SEED_FILTER}": health_store.Selection(
                condition=core_ext.compile_filter(SEED_FILTER).to_sql
            ),
        }
        for name, selection in selections.items():
            fast = await sql_summary(conn, selection, now)
            old = await legacy_summary(conn, selection, now)
            slow = await naive_summary(conn, selection, now)
            assert fast == slow, f"{name}: SQL summary {fast} != Python {slow}"
            assert fast == old, f"{name}: SQL summary {fast} != the legacy query's {old}"
            assert fast[0] > 0 and all(fast[1].values()), f"{name}: a degenerate fleet {fast}"
            mapped = await sql_worst(conn, selection, now)
            assert mapped == await legacy_worst(conn, selection, now), f"{name}: maps differ"
            assert len(mapped) == MAP_LIMIT, f"{name}: {len(mapped)} devices on the map"
            print(f"{name}: {fast}")
        results: dict[str, list[float]] = {}
        kinds: dict[str, Callable[..., Awaitable[object]]] = {
            "sql": sql_summary,
            "legacy": legacy_summary,
            "worst": sql_worst,
            "legacy worst": legacy_worst,
            "naive": naive_summary,
        }
        for _ in range(repeat):  # interleaved: sql, legacy, worst, ..., sql, legacy...
            for name, selection in selections.items():
                for kind, fn in kinds.items():

                    def bind(
                        f: Callable[..., Awaitable[object]] = fn,
                        s: health_store.Selection = selection,
                    ) -> Awaitable[object]:
                        return f(conn, s, now)

                    results.setdefault(f"{kind}|{name}", []).extend(await timed(bind, 1))
        load = f"{os.getloadavg()[0]:.1f}"
        for name in selections:
            ms = {k: statistics.median(results[f"{k}|{name}"]) * 1e3 for k in kinds}
            sql = ms["sql"] / 1e3
            report.add(
                f"COMPREHENSIVE summary, {name}, {devices:,} devices (median of {repeat})",
                f"{ms['sql']:,.0f} ms SQL (the previous query shape, same run: "
                f"{ms['legacy']:,.0f} ms; {ms['legacy'] / ms['sql']:.1f}x) vs "
                f"{ms['naive']:,.0f} ms fetching + evaluating each device in Python "
                f"({ms['naive'] / ms['sql']:.1f}x); the map's 1,000 worst "
                f"{ms['worst']:,.0f} ms (previous shape {ms['legacy worst']:,.0f} ms) "
                f"(load average {load})",
                "<= 1 s" if name == "no filter" else "informational",
                sql <= 1.0 or name != "no filter",
                sql_s=sql,
                legacy_s=ms["legacy"] / 1e3,
                naive_s=ms["naive"] / 1e3,
                worst_s=ms["worst"] / 1e3,
                legacy_worst_s=ms["legacy worst"] / 1e3,
                devices=devices,
            )
        await conn.close()
    finally:
        if owned:
            assert servers is not None
            await drop_database(servers, url)
    report.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--database-url", help="a migrated database to keep (and reuse) the fleet in"
    )
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(run(None, args.database_url, args.devices, args.repeat))
        return
    with storage_servers() as servers:
        asyncio.run(run(servers, None, args.devices, args.repeat))


if __name__ == "__main__":
    main()
