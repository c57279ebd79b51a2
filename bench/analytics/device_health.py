"""GetDeviceHealth at fleet scale: the SQL summary vs evaluating every device in Python.

    python -m bench.analytics.device_health [--devices N]

Generates N devices (default 1,000,000) in a dedicated database
(``bench/analytics/health_fleet.py``: readings, certificates with reissues and revocations,
a running and a completed deployment's assignments, direct assignments under way), then
measures, interleaved in one run:

- **sql**: ``fleetd.storage.analytics.health.summary``, COMPREHENSIVE, no filter (target
  <= 1 s, docs/analytics.md section 7), and the same with the seed's filter
  ``type:raspberry-pi``; and the map's query (``worst``, the 1,000 worst devices);
- **naive**: every selected device's Observed row fetched (the same SQL, all rows) and
  ``fleetd.domain.device_health.evaluate`` run per device in Python, then counted.

Before timing it asserts that both give the same summary (every status count and every
failing-check count) for both selections. ``now`` is pinned to the generation time plus a
few seconds and ``offline_after`` widened, so the answers do not drift while it runs.
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
from bench.analytics.health_fleet import generate
from bench.harness import Report
from fleetd.domain.device_health import Thresholds, evaluate
from fleetd.storage.analytics import health as health_store
from fleetd.v1 import device_pb2
from tests.support.storage import StorageServers, drop_database, fresh_database, storage_servers

SEED_FILTER = "type:raspberry-pi"
CHECK_TYPE = device_pb2.COMPREHENSIVE
THRESHOLDS = Thresholds(offline_after=3600.0, min_agent_version="1.2.0")
Counts = tuple[int, dict[int, int], dict[str, int]]


async def sql_summary(
    conn: asyncpg.Connection, selection: health_store.Selection, now: dt.datetime
) -> Counts:
    s = await health_store.summary(
        conn, thresholds=THRESHOLDS, check_type=CHECK_TYPE, selection=selection, now=now
    )
    return s.total, s.by_status, s.failing


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


async def run(servers: StorageServers, devices: int, repeat: int) -> None:
    command = "python -m bench.analytics.device_health" + (
        f" --devices {devices}" if devices != 1_000_000 else ""
    )
    report = Report("analytics_device_health", command)
    url = await fresh_database(servers)
    try:
        conn = await asyncpg.connect(url)
        started = time.perf_counter()
        await generate(conn, devices)
        now = dt.datetime.now(dt.UTC)
        print(f"{devices:,} devices generated in {time.perf_counter() - started:.0f} s")
        selections = {
            "no filter": health_store.Selection(),
            f"filter {SEED_FILTER}": health_store.Selection(
                condition=core_ext.compile_filter(SEED_FILTER).to_sql
            ),
        }
        for name, selection in selections.items():
            fast = await sql_summary(conn, selection, now)
            slow = await naive_summary(conn, selection, now)
            assert fast == slow, f"{name}: SQL summary {fast} != Python {slow}"
            assert fast[0] > 0 and all(fast[1].values()), f"{name}: a degenerate fleet {fast}"
            print(f"{name}: {fast}")
        results: dict[str, list[float]] = {}
        for _ in range(repeat):  # interleaved: sql, naive, sql, naive...
            for name, selection in selections.items():

                def bind(
                    f: Callable[..., Awaitable[object]], s: health_store.Selection = selection
                ) -> Callable[[], Awaitable[object]]:
                    return lambda: f(conn, s, now)

                async def worst(s: health_store.Selection = selection) -> object:
                    return await health_store.worst(
                        conn,
                        thresholds=THRESHOLDS,
                        check_type=CHECK_TYPE,
                        selection=s,
                        now=now,
                        limit=1000,
                    )

                for kind, fn in (
                    ("sql", bind(sql_summary)),
                    ("worst", worst),
                    ("naive", bind(naive_summary)),
                ):
                    results.setdefault(f"{kind}|{name}", []).extend(await timed(fn, 1))
        load = f"{os.getloadavg()[0]:.1f}"
        for name in selections:
            sql = statistics.median(results[f"sql|{name}"])
            worst_s = statistics.median(results[f"worst|{name}"])
            naive = statistics.median(results[f"naive|{name}"])
            report.add(
                f"COMPREHENSIVE summary, {name}, {devices:,} devices (median of {repeat})",
                f"{sql * 1e3:,.0f} ms SQL vs {naive * 1e3:,.0f} ms fetching + evaluating "
                f"each device in Python ({naive / sql:.1f}x); the map's 1,000 worst "
                f"{worst_s * 1e3:,.0f} ms (load average {load})",
                "<= 1 s" if name == "no filter" else "informational",
                sql <= 1.0 or name != "no filter",
                sql_s=sql,
                naive_s=naive,
                worst_s=worst_s,
                devices=devices,
            )
        await conn.close()
    finally:
        await drop_database(servers, url)
    report.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with storage_servers() as servers:
        asyncio.run(run(servers, args.devices, args.repeat))


if __name__ == "__main__":
    main()
