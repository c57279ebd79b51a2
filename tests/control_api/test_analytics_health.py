"""GetDeviceHealth over the running control API (Connect JSON): the summary and the map,
the request checks (INVALID_ARGUMENT naming the field), RBAC, and GetDevice's
include_health giving the same evaluation."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from control_api.analytics_health import MAX_DEVICE_IDS, MAX_ENTRIES
from fleetd.storage.bearer_tokens import create_api_key
from fleetd.storage.postgres import connect
from tests.support.deployment import Deployment, running_deployment
from tests.support.http import connect_json

HEALTH = "fleetd.v1.AnalyticsService/GetDeviceHealth"
GET_DEVICE = "fleetd.v1.DeviceService/GetDevice"


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect(database_url, run_migrations=False)
    yield pool
    await pool.close()


async def _devices(db: asyncpg.Pool, rows: list[tuple[str, str, float | None, bool]]) -> None:
    """(device_id, type, disk_usage, seen just now) rows, each with a year-long certificate."""
    now = dt.datetime.now(dt.UTC)
    await db.executemany(
        """INSERT INTO devices (device_id, fleet, device_type, disk_usage, last_seen)
           VALUES ($1, 'default', $2, $3, CASE WHEN $4 THEN $5::timestamptz END)""",
        [(i, t, disk, seen, now) for i, t, disk, seen in rows],
    )
    await db.executemany(
        """INSERT INTO device_certificates (serial, device_id, fingerprint, not_before, not_after)
           VALUES ($1, $1, $1, $2, $3)""",
        [(i, now, now + dt.timedelta(days=365)) for i, *_ in rows],
    )


async def _call(dep: Deployment, body: dict[str, Any], key: str | None = None) -> Any:
    return await connect_json(
        dep.api_endpoint, HEALTH, body, ca_pem=dep.ca_pem, api_key=key or dep.admin_api_key
    )


async def test_summary_and_map_of_the_whole_fleet(deployment: Deployment, db: asyncpg.Pool) -> None:
    await _devices(
        db,
        [
            ("ok-1", "raspberry-pi", 40.0, True),
            ("full-1", "raspberry-pi", 96.0, True),
            ("filling-1", "esp32", 90.0, True),
            ("silent-1", "esp32", 10.0, False),
        ],
    )
    response = await _call(deployment, {})
    assert response.status == 200, response.body
    summary = response.body["summary"]
    assert summary["totalDevices"] == 4
    assert (summary["healthyCount"], summary["degradedCount"]) == (1, 1)
    assert (summary["unhealthyCount"], summary["unreachableCount"]) == (1, 1)
    assert summary["failingChecks"]["disk"] == 2
    assert summary["failingChecks"]["heartbeat"] == 1
    assert summary["checkType"] == "COMPREHENSIVE"
    health = response.body["deviceHealth"]
    assert {k: v["status"] for k, v in health.items()} == {
        "ok-1": "HEALTHY",
        "full-1": "UNHEALTHY",
        "filling-1": "DEGRADED",
        "silent-1": "UNREACHABLE",
    }
    disk = next(c for c in health["full-1"]["checks"] if c["name"] == "disk")
    assert (disk["value"], disk["threshold"]) == (96.0, 95.0)


async def test_filter_and_ids_select_and_basic_checks_only_liveness(
    deployment: Deployment, db: asyncpg.Pool
) -> None:
    await _devices(
        db, [("a", "raspberry-pi", 99.0, True), ("b", "esp32", 99.0, True), ("c", "esp32", 1, True)]
    )
    response = await _call(deployment, {"device_filter": "type:esp32", "check_type": "BASIC"})
    assert response.status == 200, response.body
    assert set(response.body["deviceHealth"]) == {"b", "c"}
    assert response.body["summary"]["healthyCount"] == 2  # BASIC: the full disk is not checked
    response = await _call(deployment, {"device_ids": ["a", "c", "unknown"]})
    assert set(response.body["deviceHealth"]) == {"a", "c"}
    assert response.body["summary"]["totalDevices"] == 2


async def test_map_is_capped_but_the_summary_counts_every_device(
    deployment: Deployment, db: asyncpg.Pool
) -> None:
    count = MAX_ENTRIES + 5
    await _devices(db, [(f"d-{i:05d}", "raspberry-pi", 50.0, i >= 10) for i in range(count)])
    response = await _call(deployment, {})
    assert response.status == 200, response.body
    assert response.body["summary"]["totalDevices"] == count
    assert response.body["summary"]["unreachableCount"] == 10
    health = response.body["deviceHealth"]
    assert len(health) == MAX_ENTRIES
    # worst first: the 10 unreachable are in; the 5 healthy with the highest ids are out
    assert {f"d-{i:05d}" for i in range(10)} <= set(health)
    assert not {f"d-{i:05d}" for i in range(count - 5, count)} & set(health)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device_filter": "type:"}, "device_filter"),
        ({"device_filter": "cpu_usage:>high"}, "device_filter"),
        ({"device_ids": [f"d{i}" for i in range(MAX_DEVICE_IDS + 1)]}, "device_ids"),
        ({"device_ids": ["ok", "not an id"]}, "device_ids[1]"),
    ],
)
async def test_bad_selection_is_invalid_argument_naming_the_field(
    deployment: Deployment, body: dict[str, Any], field: str
) -> None:
    response = await _call(deployment, body)
    assert response.status == 400, response.body
    assert response.body["code"] == "invalid_argument"
    assert response.body["message"].startswith(field), response.body


async def test_a_principal_without_analytics_view_is_refused(
    deployment: Deployment, db: asyncpg.Pool
) -> None:
    await _devices(db, [("dev-1", "raspberry-pi", 10.0, True)])
    device_key = (await create_api_key(db, "device", "device", device_id="dev-1")).token
    viewer_key = (await create_api_key(db, "viewer", "viewer")).token
    refused = await _call(deployment, {}, device_key)
    assert refused.status == 403, refused.body
    assert refused.body["code"] == "permission_denied"
    allowed = await _call(deployment, {}, viewer_key)
    assert allowed.status == 200, allowed.body


async def test_get_device_include_health_matches_get_device_health(
    deployment: Deployment, db: asyncpg.Pool
) -> None:
    await _devices(db, [("rpi-1", "raspberry-pi", 90.0, True)])
    await db.execute("UPDATE devices SET temperature = 80 WHERE device_id = 'rpi-1'")
    one = await connect_json(
        deployment.api_endpoint,
        GET_DEVICE,
        {"device_id": "rpi-1", "include_health": True},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    many = await _call(deployment, {"device_ids": ["rpi-1"]})
    assert one.status == 200 and many.status == 200, (one.body, many.body)
    from_get_device = one.body["health"]
    from_summary = many.body["deviceHealth"]["rpi-1"]
    assert from_get_device["status"] == from_summary["status"] == "DEGRADED"

    def statuses(health: dict[str, Any]) -> dict[str, str]:
        return {c["name"]: c.get("status", "HEALTH_STATUS_UNSPECIFIED") for c in health["checks"]}

    assert statuses(from_get_device) == statuses(from_summary)
    assert statuses(from_get_device)["temperature"] == "DEGRADED"
    assert statuses(from_get_device)["certificate"] == "HEALTHY"
