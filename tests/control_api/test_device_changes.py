"""UpdateDevice (field masks) and DeleteDevice (offboarding), with the seed's examples."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.support.deployment import Deployment, running_deployment
from tests.support.http import Response, connect_json

UPDATE = "fleetd.v1.DeviceService/UpdateDevice"
DELETE = "fleetd.v1.DeviceService/DeleteDevice"


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


async def _call(dep: Deployment, method: str, body: dict[str, Any]) -> Response:
    return await connect_json(
        dep.api_endpoint, method, body, ca_pem=dep.ca_pem, api_key=dep.admin_api_key
    )


async def _register(dep: Deployment, device_id: str = "rpi-001") -> None:
    response = await _call(
        dep,
        "fleetd.v1.DeviceService/RegisterDevice",
        {"device_id": device_id, "device_name": "Raspberry Pi 001", "metadata": {"rack": "7"}},
    )
    assert response.status == 200, response.body


async def test_seed_update_example_works_with_the_object_form_mask(
    deployment: Deployment,
) -> None:
    await _register(deployment)
    response = await _call(
        deployment,
        UPDATE,
        {  # the seed's UpdateDevice example, verbatim
            "device_id": "rpi-001",
            "update_mask": {"paths": ["name", "metadata"]},
            "device": {
                "name": "Raspberry Pi Production",
                "metadata": {"location": "datacenter-1"},
            },
        },
    )
    assert response.status == 200, response.body
    device = response.body["device"]
    assert device["name"] == "Raspberry Pi Production"
    assert device["metadata"] == {"location": "datacenter-1"}
    assert response.body["updatedAt"]


async def test_seed_field_mask_example_with_nested_path_and_status(
    deployment: Deployment,
) -> None:
    await _register(deployment)
    response = await _call(
        deployment,
        UPDATE,
        {  # the seed's "Field Masks" example, plus the device it applies to
            "device_id": "rpi-001",
            "update_mask": {"paths": ["name", "metadata.location", "status"]},
            "device": {
                "name": "New Name",
                "metadata": {"location": "Building A"},
                "status": "MAINTENANCE",
            },
        },
    )
    assert response.status == 200, response.body
    device = response.body["device"]
    assert device["metadata"] == {"rack": "7", "location": "Building A"}  # merged, not replaced
    assert device["status"] == "MAINTENANCE"


async def test_string_form_mask_and_key_removal(deployment: Deployment) -> None:
    await _register(deployment)
    response = await _call(
        deployment,
        UPDATE,
        {"device_id": "rpi-001", "update_mask": "metadata.rack", "device": {}},
    )
    assert response.status == 200, response.body
    assert response.body["device"].get("metadata", {}) == {}


@pytest.mark.parametrize(
    ("paths", "fragment"),
    [
        (["id"], "output only"),
        (["last_seen"], "output only"),
        (["system_info.arch"], "output only"),
        (["colour"], "unknown path"),
        (["name.first"], "unknown path"),
        ([], "update_mask is required"),
    ],
)
async def test_unknown_or_immutable_paths_are_invalid_argument(
    deployment: Deployment, paths: list[str], fragment: str
) -> None:
    await _register(deployment)
    response = await _call(
        deployment,
        UPDATE,
        {"device_id": "rpi-001", "update_mask": {"paths": paths}, "device": {"name": "x"}},
    )
    assert response.status == 400
    assert fragment in response.body["message"]


async def test_operators_cannot_set_liveness_states_other_than_maintenance(
    deployment: Deployment,
) -> None:
    await _register(deployment)
    response = await _call(
        deployment,
        UPDATE,
        {"device_id": "rpi-001", "update_mask": "status", "device": {"status": "UPDATING"}},
    )
    assert response.status == 400


async def test_delete_offboards_revokes_and_hides_the_device(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    await _register(deployment)
    await pool.execute(
        """INSERT INTO device_certificates (serial, device_id, fingerprint, not_before, not_after)
           VALUES ('ab', 'rpi-001', 'ff', now(), now() + interval '1 day')"""
    )
    response = await _call(deployment, DELETE, {"device_id": "rpi-001", "force": False})
    assert response.status == 200, response.body
    assert response.body["success"] is True
    assert response.body["deletedAt"]
    row = await pool.fetchrow("SELECT status, offboarded_at FROM devices")
    assert row is not None
    assert row["status"] == "offboarded"
    assert await pool.fetchval("SELECT bool_and(revoked_at IS NOT NULL) FROM device_certificates")
    assert await pool.fetchval(
        "SELECT bool_and(revoked_at IS NOT NULL) FROM api_keys WHERE role = 'device'"
    )
    gone = await _call(deployment, "fleetd.v1.DeviceService/GetDevice", {"device_id": "rpi-001"})
    assert gone.status == 404
    listed = await _call(deployment, "fleetd.v1.DeviceService/ListDevices", {})
    assert listed.body.get("devices", []) == []
    again = await _call(deployment, DELETE, {"device_id": "rpi-001"})
    assert again.status == 404
    # The same hardware can be provisioned again under its old id.
    await _register(deployment)


async def _assign_in_progress(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version, spec,
                                    state)
           VALUES ('asg-1', 'rpi-001', 'deploy-001', 'firmware', '2.0.0', '', 'downloading')"""
    )


async def test_delete_without_force_refuses_a_device_in_an_active_deployment(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    await _register(deployment)
    await _assign_in_progress(pool)
    response = await _call(deployment, DELETE, {"device_id": "rpi-001", "force": False})
    assert response.status == 412, response.body
    assert response.body["code"] == "failed_precondition"
    assert "deploy-001" in response.body["message"]
    assert "force" in response.body["message"]
    assert await pool.fetchval("SELECT offboarded_at FROM devices") is None
    assert await pool.fetchval("SELECT state FROM assignments") == "downloading"


async def test_delete_with_force_cancels_the_deployment_and_offboards(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    await _register(deployment)
    await _assign_in_progress(pool)
    response = await _call(deployment, DELETE, {"device_id": "rpi-001", "force": True})
    assert response.status == 200, response.body
    assert response.body["success"] is True
    row = await pool.fetchrow("SELECT state, active, reason FROM assignments")
    assert row is not None
    assert (row["state"], row["active"], row["reason"]) == ("cancelled", False, "DEVICE_DELETED")
    assert await pool.fetchval("SELECT status FROM devices") == "offboarded"


async def test_mutating_calls_are_audited_with_who_what_and_outcome(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    await _register(deployment)
    await _call(deployment, "fleetd.v1.DeviceService/ListDevices", {})  # read-only: not audited
    denied = await _call(deployment, UPDATE, {"device_id": "rpi-001", "update_mask": "id"})
    assert denied.status == 400
    rows = await pool.fetch(
        "SELECT method, target, outcome, request_id, role FROM audit_log "
        "WHERE outcome <> 'STARTED' ORDER BY seq"
    )
    assert [(r["method"].rsplit("/", 1)[1], r["target"], r["outcome"]) for r in rows] == [
        ("RegisterDevice", "rpi-001", "OK"),
        ("UpdateDevice", "rpi-001", "INVALID_ARGUMENT"),
    ]
    assert rows[1]["request_id"] == denied.headers["x-request-id"]
    assert rows[0]["role"] == "admin"


async def test_seed_heartbeat_example_with_the_device_api_key(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    registered = await _call(
        deployment,
        "fleetd.v1.DeviceService/RegisterDevice",
        {  # the seed's RegisterDevice example, verbatim
            "device_id": "rpi-001",
            "device_name": "Raspberry Pi 001",
            "device_type": "raspberry-pi",
            "version": "1.0.0",
            "system_info": {"os": "Linux", "arch": "arm64", "cpu_cores": 4, "memory_mb": 4096},
        },
    )
    assert registered.status == 200, registered.body
    device_key = registered.body["apiKey"]
    beat = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/Heartbeat",
        {  # the seed's Heartbeat example, verbatim
            "device_id": "rpi-001",
            "status": {
                "state": "ONLINE",
                "uptime_seconds": 3600,
                "last_boot": "2024-01-01T12:00:00Z",
            },
            "stats": {"cpu_percent": 25.5, "memory_used_mb": 1024, "disk_used_gb": 10.5},
        },
        ca_pem=deployment.ca_pem,
        api_key=device_key,
    )
    assert beat.status == 200, beat.body
    assert beat.body["acknowledged"] is True
    row = await pool.fetchrow("SELECT status, cpu_usage, memory_usage, uptime_seconds FROM devices")
    assert row is not None
    assert row["status"] == "online"
    assert row["cpu_usage"] == pytest.approx(25.5)
    assert row["memory_usage"] == pytest.approx(25.0)  # 1024 of the registered 4096 MiB
    assert row["uptime_seconds"] == 3600
    impersonation = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/Heartbeat",
        {"device_id": "rpi-002", "stats": {"cpu_percent": 1}},
        ca_pem=deployment.ca_pem,
        api_key=device_key,
    )
    assert impersonation.status == 403
