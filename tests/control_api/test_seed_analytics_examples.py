"""The seed's AnalyticsService examples, as written, over grpcurl against a running control
API; only the host (and the credential header the seed's Authentication section asks for)
added. One test per example: GetMetrics here; GetDeviceHealth and ExportData join them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fleetd.domain.analytics import groups
from fleetd.storage.postgres import connect
from tests.fleetd.storage.analytics.test_metric_reads import generate, write_rollups
from tests.support.analytics import create_partition
from tests.support.deployment import Deployment, running_deployment

GET_METRICS = {
    "start_time": "2024-01-01T00:00:00Z",
    "end_time": "2024-01-02T00:00:00Z",
    "metric_names": ["cpu_usage", "memory_usage", "device_online_count"],
    "aggregation": "AVG",
    "interval": "3600s",
}


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect(database_url, run_migrations=False)
    yield pool
    await pool.close()


def grpcurl(dep: Deployment, method: str, body: dict[str, Any]) -> dict[str, Any]:
    tool = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    out = subprocess.run(
        [
            tool,
            "-cacert",
            str(dep.settings.paths.ca_cert),
            "-H",
            f"X-API-Key: {dep.admin_api_key}",
            "-d",
            json.dumps(body),
            f"127.0.0.1:{dep.api_port}",
            f"fleetd.v1.AnalyticsService/{method}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# --- GetMetrics ---------------------------------------------------------------------------


async def test_get_metrics_example(deployment: Deployment, db: asyncpg.Pool) -> None:
    day = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for parent in ("metric_rollups_1m", "metric_rollups_1h", "fleet_census_1h"):
        await create_partition(db, parent, day, day + dt.timedelta(days=1))
    fulls = [("default", "raspberry-pi", "1.0.0"), ("default", "jetson", "2.1.0")]
    hours = [day + dt.timedelta(hours=h) for h in range(24)]
    # One reading-minute per hour, written as the downsampler would (hourly rows).
    readings = generate(fulls, hours, (1, 2), seed=31)
    await write_rollups(db, readings, "metric_rollups_1h", dt.timedelta(hours=1))
    everyone: int = await db.fetchval(
        "SELECT group_id FROM metric_groups WHERE fleet IS NULL AND device_type IS NULL "
        "AND version IS NULL"
    )
    await db.executemany(
        """INSERT INTO fleet_census_1h (bucket_start, group_id, status, minutes, devices_sum,
               devices_min, devices_max) VALUES ($1, $2, 'online', 60, $3, 0, 0)""",
        [(hour, everyone, 60 * (100 + i)) for i, hour in enumerate(hours)],
    )
    assert groups.rows_for(*fulls[0])[0] == (None, None, None)

    answer = await asyncio.to_thread(grpcurl, deployment, "GetMetrics", GET_METRICS)

    names = [s["name"] for s in answer["series"]]
    assert names == ["cpu_usage", "memory_usage", "device_online_count"]
    for series in answer["series"]:
        assert series["aggregation"] == "AVG"
        assert len(series["points"]) == 24
        assert series["points"][0]["timestamp"] == "2024-01-01T00:00:00Z"
        assert series["points"][23]["timestamp"] == "2024-01-01T23:00:00Z"
    cpu = answer["series"][0]["points"]
    for hour, point in zip(hours, cpu, strict=True):
        values = [
            v
            for (_, minute, mid), vs in readings.items()
            if mid == 1 and minute == hour
            for v in vs
        ]
        assert point["value"] == pytest.approx(math.fsum(values) / len(values), rel=1e-12)
        assert int(point["sample_count"]) == len(values)
    online = answer["series"][2]
    assert online["unit"] == "count"
    assert [p["value"] for p in online["points"]] == [100 + i for i in range(24)]
    summary = answer["summary"]
    assert (summary["start_time"], summary["end_time"]) == (
        GET_METRICS["start_time"],
        GET_METRICS["end_time"],
    )
    assert set(summary["metrics"]) == {"cpu_usage", "memory_usage", "device_online_count"}


# --- ExportData ---------------------------------------------------------------------------

EXPORT_DATA = {
    "format": "CSV",
    "data_type": "DEVICE_METRICS",
    "start_time": "2024-01-01T00:00:00Z",
    "end_time": "2024-01-31T23:59:59Z",
    "fields": ["device_id", "timestamp", "cpu_usage", "memory_usage"],
}


async def test_export_data_example(deployment: Deployment, db: asyncpg.Pool) -> None:
    """The seed's ExportData example answers a signed URL at once; the file it names is
    produced by an export worker (any replica's: here one in this process, on the same
    database and data directory) and served by /exports/ (called directly: the lead mounts
    it in control_api/app.py) with the seed's rows."""
    import csv
    import io
    from urllib.parse import urlsplit

    from control_api.exports_http import ExportDownloads
    from fleetd.services.analytics.export_jobs import ExportWorker, export_files
    from tests.control_api.test_exports_http import call
    from tests.fleetd.storage.analytics.test_exports import FEB1, JAN1, SAMPLES, seed_samples

    await seed_samples(db)
    answer = await asyncio.to_thread(grpcurl, deployment, "ExportData", EXPORT_DATA)
    assert set(answer) == {"export_url", "expires_at"}  # size_bytes 0: not printed
    url = urlsplit(answer["export_url"])
    assert url.scheme == "https" and url.path.startswith("/exports/")
    app = ExportDownloads(db, export_files(deployment.settings))
    target = f"{url.path}?{url.query}"
    pending = await call(app, target)
    assert (pending.status, pending.headers["retry-after"]) == (202, "5")
    worker = ExportWorker(db, export_files(deployment.settings), raw_retention=1e10)
    assert await worker.run_once() is not None
    ready = await call(app, target)
    assert ready.status == 200
    header, *rows = csv.reader(io.StringIO(ready.body.decode(), newline=""))
    assert header == EXPORT_DATA["fields"]
    expected = [
        [s.device_id, s.seen_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), repr(s.cpu), repr(s.memory)]
        for s in SAMPLES
        if JAN1 <= s.seen_at < FEB1
    ]
    assert sorted(rows) == sorted(expected)


# --- GetDeviceHealth ----------------------------------------------------------------------

GET_DEVICE_HEALTH = {"device_filter": "type:raspberry-pi", "check_type": "COMPREHENSIVE"}


async def test_get_device_health_example(deployment: Deployment, db: asyncpg.Pool) -> None:
    now = dt.datetime.now(dt.UTC)
    # (device, type, disk %, heartbeat just now): two Pis, one with a nearly full disk, one
    # silent; and a Jetson the filter leaves out. Every device has a year-long certificate.
    fleet = [
        ("rpi-001", "raspberry-pi", 40.0, True),
        ("rpi-002", "raspberry-pi", 90.0, True),
        ("rpi-003", "raspberry-pi", 40.0, False),
        ("jetson-001", "jetson", 99.0, True),
    ]
    await db.executemany(
        """INSERT INTO devices (device_id, fleet, device_type, disk_usage, last_seen)
           VALUES ($1, 'default', $2, $3, CASE WHEN $4 THEN $5::timestamptz END)""",
        [(*row, now) for row in fleet],
    )
    await db.executemany(
        """INSERT INTO device_certificates (serial, device_id, fingerprint, not_before, not_after)
           VALUES ($1, $1, $1, $2, $3)""",
        [(device_id, now, now + dt.timedelta(days=365)) for device_id, *_ in fleet],
    )
    answer = await asyncio.to_thread(grpcurl, deployment, "GetDeviceHealth", GET_DEVICE_HEALTH)
    summary = answer["summary"]
    assert summary["total_devices"] == 3
    assert summary["healthy_count"] == 1
    assert summary["degraded_count"] == 1
    assert summary["unreachable_count"] == 1
    assert "unhealthy_count" not in summary  # 0: not printed
    assert summary["failing_checks"]["disk"] == 1
    assert summary["check_type"] == "COMPREHENSIVE"
    statuses = {k: v["status"] for k, v in answer["device_health"].items()}
    assert statuses == {"rpi-001": "HEALTHY", "rpi-002": "DEGRADED", "rpi-003": "UNREACHABLE"}
