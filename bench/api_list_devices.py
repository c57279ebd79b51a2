"""ListDevices at fleet scale: a filtered, sorted first page with total_count, over the API.

    python -m bench.api_list_devices [--devices N]

Loads N devices (default 1,000,000; the distribution of bench.core_filter) into a fresh
database with the indexes a user would create, starts two real deployments on it (control
API on pyvoy over TLS, API key auth) that differ only in how total_count is computed:

- **bounded** (the default): exact up to ``FLEETD_EXACT_COUNT_LIMIT`` (10,000) matches
  within 20 ms, else the planner's estimate (``total_count_estimated``);
- **exact** (``FLEETD_EXACT_COUNT_LIMIT=0``): ``count(*)`` over every match, as before;

and measures both in one run, interleaved, over Connect JSON with kept-alive HTTPS
connections:

- the seed's kind of query: ``filter: "type:raspberry-pi AND status:online"``,
  ``order_by: "last_seen DESC"``, page_size 50, with total_count (target: <= 100 ms);
- the unfiltered first page, for comparison;
- where the time goes (the X-Debug SQL timings: page query vs total_count).

Before timing it asserts that the page equals the same query run directly in PostgreSQL,
that the exact deployment's total_count is the true count, and that the bounded one's is
flagged as an estimate and within 5 % of it.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import ssl
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.core_filter import Fleet, load
from bench.harness import Report
from fleetd.settings import Settings
from tests.support.deployment import running_deployment
from tests.support.storage import (
    StorageServers,
    drop_database,
    fresh_database,
    storage_servers,
)

FILTERED = {
    "page_size": 50,
    "filter": "type:raspberry-pi AND status:online",
    "order_by": "last_seen DESC",
}
UNFILTERED = {"page_size": 50}
EXACT_COUNT_LIMIT = Settings(Path(".")).exact_count_limit  # the default
SORT_INDEX = "CREATE INDEX IF NOT EXISTS devices_type_status_seen_idx ON devices (device_type, status, last_seen DESC NULLS LAST, device_id)"  # noqa: E501


class Client:
    def __init__(self, port: int, ca: bytes, api_key: str) -> None:
        context = ssl.create_default_context(cadata=ca.decode())
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
        self.headers = {"content-type": "application/json", "x-api-key": api_key}

    def call(self, body: dict[str, Any], debug: bool = False) -> tuple[float, dict[str, Any], str]:
        headers = dict(self.headers)
        if debug:
            headers["x-debug"] = "true"
        start = time.perf_counter()
        self.conn.request("POST", "/fleetd.v1.DeviceService/ListDevices", json.dumps(body), headers)
        with self.conn.getresponse() as reply:
            payload = json.loads(reply.read())
            elapsed = time.perf_counter() - start
            if reply.status != 200:
                raise AssertionError(f"ListDevices answered {reply.status}: {payload}")
            return elapsed, payload, reply.headers.get("x-debug", "")


def _count_ms(trace: str) -> tuple[float, float]:
    """(page query ms, total_count ms) from an X-Debug header: the count is every query
    but the page's (the bounded count and, when it estimates, the EXPLAIN), summed."""
    sql = json.loads(trace)["sql"]
    page = sum(q["ms"] for q in sql if "ORDER BY" in q["query"])
    count = sum(
        q["ms"]
        for q in sql
        if "ORDER BY" not in q["query"]
        and any(word in q["query"] for word in ("count(*)", "EXPLAIN"))
    )
    return page, count


async def run(servers: StorageServers, devices: int) -> None:
    report = Report("api_list_devices", f"python -m bench.api_list_devices --devices {devices}")
    url = await fresh_database(servers)
    try:
        conn = await asyncpg.connect(url)
        await load(conn, Fleet(devices))
        await conn.execute(SORT_INDEX)
        await conn.execute("ANALYZE devices")
        expected = [
            r["device_id"]
            for r in await conn.fetch(
                """SELECT device_id FROM devices
                   WHERE device_type = 'raspberry-pi' AND status = 'online'
                   ORDER BY last_seen DESC NULLS LAST, device_id LIMIT 50"""
            )
        ]
        true_counts = {
            "filtered": await conn.fetchval(
                "SELECT count(*) FROM devices WHERE device_type = 'raspberry-pi' "
                "AND status = 'online'"
            ),
            "unfiltered": devices,
        }
        await conn.close()
        async with (
            running_deployment(url, servers.redis_url) as bounded_dep,
            running_deployment(url, servers.redis_url, exact_count_limit=0) as exact_dep,
        ):
            clients = {
                "bounded": Client(
                    bounded_dep.api_port, bounded_dep.ca_pem, bounded_dep.admin_api_key
                ),
                "exact": Client(exact_dep.api_port, exact_dep.ca_pem, exact_dep.admin_api_key),
            }
            queries: dict[str, dict[str, Any]] = {"filtered": FILTERED, "unfiltered": UNFILTERED}
            totals: dict[tuple[str, str], tuple[int, bool]] = {}
            for mode, client in clients.items():
                for name, body in queries.items():
                    _, page, _ = await asyncio.to_thread(client.call, body)
                    if name == "filtered":
                        got = [d["id"] for d in page["devices"]]
                        assert got == expected, f"{mode}: API page differs from the direct SQL"
                    totals[mode, name] = (
                        page["totalCount"],
                        page.get("totalCountEstimated", False),
                    )
            for name, true_count in true_counts.items():
                assert totals["exact", name] == (true_count, False), totals
                estimate, estimated = totals["bounded", name]
                if true_count <= EXACT_COUNT_LIMIT:
                    assert (estimate, estimated) == (true_count, False), (name, estimate)
                else:
                    assert estimated, f"bounded {name}: {true_count:,} matches, not estimated"
                    assert abs(estimate - true_count) <= 0.05 * true_count, (name, estimate)
            times: dict[tuple[str, str], list[float]] = {
                (mode, name): [] for mode in clients for name in queries
            }
            for _ in range(15):
                for name, body in queries.items():
                    for mode, client in clients.items():
                        elapsed, _, _ = await asyncio.to_thread(client.call, body)
                        times[mode, name].append(elapsed)
            inside = {}
            for mode, client in clients.items():
                split = [
                    _count_ms((await asyncio.to_thread(client.call, FILTERED, True))[2])
                    for _ in range(5)
                ]
                inside[mode] = (
                    statistics.median(page for page, _ in split),
                    statistics.median(count for _, count in split),
                )
            for client in clients.values():
                client.conn.close()
    finally:
        await drop_database(servers, url)
    ms = {key: statistics.median(values) * 1000 for key, values in times.items()}
    filtered, filtered_exact = ms["bounded", "filtered"], ms["exact", "filtered"]
    unfiltered, unfiltered_exact = ms["bounded", "unfiltered"], ms["exact", "unfiltered"]
    report.add(
        f"filtered, sorted first page with total_count, {devices:,} devices (median)",
        f"{filtered:.1f} ms (exact count(*), same run: {filtered_exact:.1f} ms)",
        "<= 100 ms",
        filtered <= 100.0,
        filtered_ms=round(filtered, 2),
        filtered_exact_ms=round(filtered_exact, 2),
        unfiltered_ms=round(unfiltered, 2),
        unfiltered_exact_ms=round(unfiltered_exact, 2),
        page_query_ms=inside["bounded"][0],
        count_ms=inside["bounded"][1],
        exact_count_ms=inside["exact"][1],
    )
    report.add(
        "unfiltered first page with total_count (same run)",
        f"{unfiltered:.1f} ms (exact count(*): {unfiltered_exact:.1f} ms)",
        "<= 100 ms",
        unfiltered <= 100.0,
    )
    accuracy = ", ".join(
        f"{name} {totals['bounded', name][0]:,} vs exact {count:,} "
        f"({abs(totals['bounded', name][0] - count) / count:.1%} off)"
        for name, count in true_counts.items()
    )
    report.add(
        "total_count estimate (total_count_estimated=true) vs the exact count",
        accuracy,
        "within 5 %",
        True,  # asserted above
    )
    report.add(
        "time inside PostgreSQL for the filtered request (X-Debug, median of 5)",
        f"page query {inside['bounded'][0]:.1f} ms + total_count {inside['bounded'][1]:.1f} ms "
        f"(exact count(*): {inside['exact'][1]:.1f} ms)",
        "diagnostic",
        True,
    )
    report.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    args = parser.parse_args()
    with storage_servers() as servers:
        asyncio.run(run(servers, args.devices))


if __name__ == "__main__":
    main()
