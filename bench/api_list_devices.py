"""ListDevices at fleet scale: a filtered, sorted first page over the real API.

    python -m bench.api_list_devices [--devices N]

Loads N devices (default 1,000,000; the distribution of bench.core_filter) into a fresh
database with the indexes a user would create, starts a real deployment (control API on
pyvoy over TLS, API key auth), and measures in one run, interleaved, over Connect JSON with
a kept-alive HTTPS connection:

- the seed's kind of query: ``filter: "type:raspberry-pi AND status:online"``,
  ``order_by: "last_seen DESC"``, page_size 50 (target: <= 100 ms);
- the unfiltered first page, for comparison;
- where the time goes (the X-Debug SQL timings: page query vs total_count).

Before timing it asserts that the page equals the same query run directly in PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import ssl
import statistics
import time
from typing import Any

import asyncpg

from bench.core_filter import Fleet, load
from bench.harness import Report
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
        await conn.close()
        async with running_deployment(url, servers.redis_url) as dep:
            client = Client(dep.api_port, dep.ca_pem, dep.admin_api_key)
            _, page, _ = await asyncio.to_thread(client.call, FILTERED)
            got = [d["id"] for d in page["devices"]]
            assert got == expected, "API page differs from the direct SQL query"
            times: dict[str, list[float]] = {"filtered": [], "unfiltered": []}
            for _ in range(15):
                for name, body in (("filtered", FILTERED), ("unfiltered", UNFILTERED)):
                    elapsed, _, _ = await asyncio.to_thread(client.call, body)
                    times[name].append(elapsed)
            _, _, trace = await asyncio.to_thread(client.call, FILTERED, True)
            sql = json.loads(trace)["sql"]
            page_ms = max((q["ms"] for q in sql if "ORDER BY" in q["query"]), default=float("nan"))
            count_ms = max((q["ms"] for q in sql if "count(*)" in q["query"]), default=float("nan"))
            client.conn.close()
    finally:
        await drop_database(servers, url)
    filtered = statistics.median(times["filtered"]) * 1000
    unfiltered = statistics.median(times["unfiltered"]) * 1000
    report.add(
        f"filtered, sorted first page, {devices:,} devices (median)",
        f"{filtered:.1f} ms",
        "<= 100 ms",
        filtered <= 100.0,
        filtered_ms=round(filtered, 2),
        unfiltered_ms=round(unfiltered, 2),
        page_query_ms=page_ms,
        count_query_ms=count_ms,
    )
    report.add(
        "unfiltered first page (same run)",
        f"{unfiltered:.1f} ms; filtered/unfiltered = {filtered / unfiltered:.1f}x",
        "reference",
        True,
    )
    report.add(
        "time inside PostgreSQL for the filtered request",
        f"page query {page_ms:.1f} ms + total_count {count_ms:.1f} ms",
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
