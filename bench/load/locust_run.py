"""A short headless locust run against a real gateway, its figures recorded.

    python -m bench.load.locust_run [--users 300] [--time 30]   (make bench-load-locust)

Starts embedded storage with the provisioned devices and one gateway process (the bench
data directory, so the locust users' certificates verify), runs
``locust -f bench/load/locustfile.py --headless`` with ``--users`` device users, then reads
locust's CSV statistics: heartbeats/s, p50/p99 and failures per request type.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import subprocess
import sys
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from bench.harness import RESULTS_DIR, Report
from bench.load import plots
from bench.load.provision import ROOT
from bench.load.stack import load_stack
from fleetd.device.v1 import agent_pb2
from fleetd.storage.assignments import create_assignments
from fleetd.storage.desired import mark_changed

GROUP = "load_locust"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--time", type=int, default=30, help="seconds")
    parser.add_argument("--interval", type=float, default=2.0, help="heartbeat interval")
    args = parser.parse_args()
    report = Report(GROUP, "make bench-load-locust")
    prefix = ROOT / "locust"
    with load_stack(args.users, heartbeat_interval=args.interval) as stack:
        assert stack.settings.database_url and stack.settings.redis_url
        asyncio.run(
            assign_one_artifact_each(
                stack.settings.database_url,
                stack.settings.redis_url,
                [d.device_id for d in stack.population.load(0, args.users)],
            )
        )
        gateway = stack.start_gateway()
        argv = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(Path(__file__).with_name("locustfile.py")),
        ]
        argv += ["--headless", "-u", str(args.users), "-r", str(max(1, args.users // 10))]
        argv += ["-t", f"{args.time}s", "--host", gateway.target, "--csv", str(prefix)]
        argv += ["--only-summary", "--heartbeat-interval", str(args.interval)]
        argv += ["--status-report-fraction", "0.5", "--stop-timeout", "5"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1):  # 1: some requests failed; reported below
            raise SystemExit(f"locust failed ({done.returncode}):\n{done.stderr[-2000:]}")
    with open(f"{prefix}_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    hb = rows["Heartbeat"]
    count, failures = int(hb["Request Count"]), int(hb["Failure Count"])
    assert count > 0, "locust recorded no heartbeats"
    reports = {n: int(r["Request Count"]) for n, r in rows.items() if "Report" in n}
    report_failures = sum(int(r["Failure Count"]) for n, r in rows.items() if "Report" in n)
    report.add(
        f"locust gRPC device users: {args.users} devices (own cert + mTLS channel each), "
        f"heartbeat every {args.interval:.0f} s, {args.time} s headless",
        f"{float(hb['Requests/s']):,.0f} heartbeats/s, p50 {hb['50%']} ms, p99 {hb['99%']} ms, "
        f"{failures} failures of {count:,}; status reports {reports or 'none'}",
        "runs clean (no failures)",
        failures == 0 and report_failures == 0 and sum(reports.values()) > 0,
        heartbeats=count,
        failures=failures,
    )
    report.write()
    _plot(prefix)


async def assign_one_artifact_each(database_url: str, redis_url: str, devices: list[str]) -> None:
    """One model assignment per device (what a deployment would write), so the users have
    a lifecycle to report on; the gateways' cache told as a writer must."""
    conn = await asyncpg.connect(database_url)
    redis = aioredis.Redis.from_url(redis_url)
    revisions: dict[str, int] = {}
    try:
        for device_id in devices:
            spec = agent_pb2.ArtifactAssignment(
                deployment_id="locust",
                name="detector-model",
                version="2.0.0",
                kind=agent_pb2.ARTIFACT_KIND_MODEL,
                target_path="detector-model/2.0.0/model.onnx",
                sha256="ab" * 32,
                length=1024,
            )
            created = await create_assignments(conn, device_id, [spec])
            revisions.update(created.revisions)
        await mark_changed(redis, revisions)
    finally:
        await conn.close()
        await redis.aclose()


def _plot(prefix: Path) -> None:
    with open(f"{prefix}_stats_history.csv") as f:
        history = list(csv.DictReader(f))
    rows = [r for r in history if r["Name"] == "Aggregated"]
    if not rows:
        return
    t0 = int(rows[0]["Timestamp"])
    xs = [int(r["Timestamp"]) - t0 for r in rows]
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(xs, [float(r["Requests/s"]) for r in rows], label="requests/s")
    ax.plot(xs, [float(r["User Count"]) for r in rows], label="users")
    ax.set_xlabel("seconds")
    ax.set_title("locust gRPC device users against one gateway process")
    ax.legend()
    plots.save(fig, GROUP)
    (RESULTS_DIR / f"{GROUP}_stats.csv").write_text(Path(f"{prefix}_stats.csv").read_text())


if __name__ == "__main__":
    main()
