"""Filter expressions on 1,000,000 devices: compiled vs reference vs PostgreSQL.

    python -m bench.core_filter [--devices N] [--no-postgres]

Builds one fleet (a few device types, ~70% online, cpu uniform 0-100, realistic
memory/disk/uptime/last_seen), as a ``FleetSnapshot`` for both implementations and as rows
of the ``devices`` table (COPY, the index a user would make for this filter, VACUUM
ANALYZE) in PostgreSQL: ``FLEETD_TEST_DATABASE_URL``'s server, else the embedded one.
Before timing, asserts that the compiled rows equal the reference's and the SQL's. Then
measures, in this one run: compiled evaluation, its ratio to the reference and to the same
filter as SQL (``SELECT device_id FROM devices WHERE ...``, every match fetched by
asyncpg), and parse + compile. Writes bench/results/filter.json and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

import core_ext.compiled as compiled
import core_ext.reference as reference
from bench.harness import Report, best_of, interleaved

EXPRESSION = "type:raspberry-pi AND status:online AND cpu_usage:>80"
TYPES = ("raspberry-pi", "esp32", "arduino", "jetson-nano", "beaglebone")
TYPE_WEIGHTS = (0.35, 0.30, 0.20, 0.10, 0.05)
STATUSES = ("online", "offline", "maintenance", "updating", "error", "unknown")
STATUS_WEIGHTS = (0.70, 0.20, 0.04, 0.03, 0.02, 0.01)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
INDEX = "CREATE INDEX devices_type_status_cpu_idx ON devices (device_type, status, cpu_usage)"


class Fleet:
    """Column data for one fleet, shared by the snapshots and the table."""

    def __init__(self, size: int, seed: int = 42) -> None:
        rng = random.Random(seed)
        self.size = size
        self.ids = [f"dev-{i:07d}" for i in range(size)]
        self.type_codes = array("I", rng.choices(range(len(TYPES)), TYPE_WEIGHTS, k=size))
        self.status_codes = array("I", rng.choices(range(len(STATUSES)), STATUS_WEIGHTS, k=size))
        # No stats yet for ~2% (never heartbeated).
        nan = float("nan")
        fresh = [rng.random() < 0.02 for _ in range(size)]
        self.cpu = array("d", [nan if f else rng.uniform(0, 100) for f in fresh])
        self.memory = array("d", [nan if f else rng.betavariate(2, 3) * 100 for f in fresh])
        self.disk = array("d", [nan if f else rng.uniform(5, 95) for f in fresh])
        self.uptime = array("d", [nan if f else float(rng.randrange(86_400 * 90)) for f in fresh])
        now = NOW.timestamp()
        self.last_seen = array("d", [nan if f else now - rng.expovariate(1 / 300) for f in fresh])

    def snapshot(self, implementation: Any) -> Any:
        ids = array("I", range(self.size))
        return implementation.FleetSnapshot(
            self.size,
            strings={
                "id": (self.ids, ids),
                "type": (list(TYPES), self.type_codes),
                "status": (list(STATUSES), self.status_codes),
                "fleet": (["default"], array("I", [0]) * self.size),
            },
            numbers={
                "cpu_usage": self.cpu,
                "memory_usage": self.memory,
                "disk_usage": self.disk,
                "uptime_seconds": self.uptime,
                "last_seen": self.last_seen,
            },
        )

    def rows(self) -> Iterator[tuple[object, ...]]:
        def value(x: float) -> float | None:
            return None if x != x else x

        for i in range(self.size):
            seen = self.last_seen[i]
            uptime = self.uptime[i]
            yield (
                self.ids[i],
                "default",
                TYPES[self.type_codes[i]],
                STATUSES[self.status_codes[i]],
                value(self.cpu[i]),
                value(self.memory[i]),
                value(self.disk[i]),
                None if uptime != uptime else int(uptime),
                None if seen != seen else dt.datetime.fromtimestamp(seen, dt.UTC),
            )


@contextmanager
def database() -> Iterator[str]:
    """A fresh migrated database on the test server (env) or an embedded one."""
    from tests.support.storage import drop_database, fresh_database, storage_servers

    with storage_servers() as servers:
        url = asyncio.run(fresh_database(servers))
        try:
            yield url
        finally:
            asyncio.run(drop_database(servers, url))


async def load(conn: asyncpg.Connection, fleet: Fleet) -> None:
    await conn.copy_records_to_table(
        "devices",
        records=fleet.rows(),
        columns=[
            "device_id",
            "fleet",
            "device_type",
            "status",
            "cpu_usage",
            "memory_usage",
            "disk_usage",
            "uptime_seconds",
            "last_seen",
        ],
    )
    await conn.execute(INDEX)
    await conn.execute("VACUUM ANALYZE devices")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true", help="skip the SQL comparison")
    args = parser.parse_args()
    command = "python -m bench.core_filter" + (
        f" --devices {args.devices}" if args.devices != 1_000_000 else ""
    )
    report = Report("filter", command)
    now = NOW.timestamp()

    started = time.perf_counter()
    fleet = Fleet(args.devices)
    snap_c = fleet.snapshot(compiled)
    snap_r = fleet.snapshot(reference)
    print(f"fleet of {fleet.size} built in {time.perf_counter() - started:.1f} s", flush=True)

    f_c = compiled.compile_filter(EXPRESSION, now=now)
    f_r = reference.compile_filter(EXPRESSION, now=now)
    expected = f_r.evaluate(snap_r)
    got = f_c.evaluate(snap_c)
    assert got == expected, "compiled and reference rows differ"
    assert f_c.to_sql() == f_r.to_sql()
    assert len(expected) > 0
    print(f"{len(expected)} matching devices; compiled == reference", flush=True)

    ms = 1e3
    vs_ref = interleaved(
        {"compiled": lambda: f_c.evaluate(snap_c), "reference": lambda: f_r.evaluate(snap_r)},
        repeat=3,
    )
    ratio_ref = vs_ref["reference"] / vs_ref["compiled"]
    # The headline figure: the longer interleaved session (with SQL) when there is one.
    compiled_time = vs_ref["compiled"]

    vs_sql: dict[str, float] | None = None
    if not args.no_postgres:
        with database() as url:
            loop = asyncio.new_event_loop()
            try:
                conn = loop.run_until_complete(asyncpg.connect(url))
                started = time.perf_counter()
                loop.run_until_complete(load(conn, fleet))
                print(f"PostgreSQL loaded in {time.perf_counter() - started:.1f} s", flush=True)
                sql, params = f_c.to_sql()
                query = f"SELECT device_id FROM devices WHERE {sql}"
                plan = loop.run_until_complete(conn.fetch(f"EXPLAIN {query}", *params))
                print("plan:", " / ".join(r[0].strip() for r in plan), flush=True)
                found = loop.run_until_complete(conn.fetch(query, *params))
                assert sorted(int(r[0][4:]) for r in found) == list(expected), "SQL differs"
                print("SQL rows == compiled rows", flush=True)
                vs_sql = interleaved(
                    {
                        "compiled": lambda: f_c.evaluate(snap_c),
                        "sql": lambda: loop.run_until_complete(conn.fetch(query, *params)),
                    },
                    repeat=21,
                )
                compiled_time = vs_sql["compiled"]
                loop.run_until_complete(conn.close())
            finally:
                loop.close()

    compiled_ms = compiled_time * ms
    report.add(
        f"evaluate `{EXPRESSION}` on {fleet.size:,} devices (compiled)",
        f"{compiled_ms:.2f} ms ({len(expected):,} matches)",
        "<= 5 ms",
        compiled_ms <= 5.0,
        seconds=compiled_time,
        matches=len(expected),
        devices=fleet.size,
    )
    report.add(
        "compiled vs reference evaluate (interleaved, 3 rounds)",
        f"{ratio_ref:.0f}x faster ({vs_ref['compiled'] * ms:.2f} ms vs "
        f"{vs_ref['reference'] * ms:.0f} ms)",
        ">= 100x",
        ratio_ref >= 100,
        reference_seconds=vs_ref["reference"],
        compiled_seconds=vs_ref["compiled"],
    )
    if vs_sql is not None:
        ratio_sql = vs_sql["sql"] / vs_sql["compiled"]
        report.add(
            "compiled vs the same filter as SQL in PostgreSQL, all matches fetched by asyncpg "
            "(interleaved, 21 rounds)",
            f"{ratio_sql:.0f}x faster ({vs_sql['compiled'] * ms:.2f} ms vs "
            f"{vs_sql['sql'] * ms:.1f} ms)",
            ">= 20x",
            ratio_sql >= 20,
            sql_seconds=vs_sql["sql"],
            compiled_seconds=vs_sql["compiled"],
            index=INDEX,
        )

    compile_c = best_of(lambda: compiled.compile_filter(EXPRESSION, now=now), number=20_000)
    compile_r = best_of(lambda: reference.compile_filter(EXPRESSION, now=now), number=2_000)
    report.add(
        "parse + compile (compiled)",
        f"{compile_c * 1e6:.2f} us (reference {compile_r * 1e6:.1f} us)",
        "<= 20 us",
        compile_c <= 20e-6,
        seconds=compile_c,
        reference_seconds=compile_r,
    )
    if args.devices == 1_000_000 and not args.no_postgres:
        report.write()
        print("wrote bench/results/filter.json and bench/RESULTS.md")
    else:
        print("not written: only the default run (1,000,000 devices, with PostgreSQL) is")


if __name__ == "__main__":
    main()
