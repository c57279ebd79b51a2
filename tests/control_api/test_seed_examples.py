"""Every request example of the seed's DeviceService section, as written, over grpcurl
(gRPC with reflection) and over curl (Connect JSON); only the host (and the credential
header the seed's Authentication section asks for) added."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployment import Deployment, running_deployment

REGISTER = {
    "device_id": "rpi-001",
    "device_name": "Raspberry Pi 001",
    "device_type": "raspberry-pi",
    "version": "1.0.0",
    "system_info": {"os": "Linux", "arch": "arm64", "cpu_cores": 4, "memory_mb": 4096},
}
LIST = {"page_size": 20, "filter": "status:online", "order_by": "last_seen DESC"}
GET = {"device_id": "rpi-001", "include_metrics": True, "include_health": True}
UPDATE = {
    "device_id": "rpi-001",
    "update_mask": {"paths": ["name", "metadata"]},
    "device": {"name": "Raspberry Pi Production", "metadata": {"location": "datacenter-1"}},
}
HEARTBEAT = {
    "device_id": "rpi-001",
    "status": {"state": "ONLINE", "uptime_seconds": 3600, "last_boot": "2024-01-01T12:00:00Z"},
    "stats": {"cpu_percent": 25.5, "memory_used_mb": 1024, "disk_used_gb": 10.5},
}
DELETE = {"device_id": "rpi-001", "force": False}


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


def _grpcurl(dep: Deployment, method: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    tool = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    out = subprocess.run(
        [
            tool,
            "-cacert",
            str(dep.settings.paths.ca_cert),
            "-H",
            f"X-API-Key: {key}",
            "-d",
            json.dumps(body),
            f"127.0.0.1:{dep.api_port}",
            f"fleetd.v1.DeviceService/{method}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    # grpcurl prints the proto field names; Connect JSON uses lowerCamelCase. Compare alike.
    result: dict[str, Any] = _camel(json.loads(out.stdout))
    return result


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _curl(dep: Deployment, method: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-f",
            "--cacert",
            str(dep.settings.paths.ca_cert),
            "-H",
            f"X-API-Key: {key}",
            "-H",
            "content-type: application/json",
            "-d",
            json.dumps(body),
            f"{dep.api_endpoint}/fleetd.v1.DeviceService/{method}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("tool", ["grpcurl", "curl"])
async def test_every_device_service_example(deployment: Deployment, tool: str) -> None:
    call = _grpcurl if tool == "grpcurl" else _curl
    admin = deployment.admin_api_key

    async def run(method: str, body: dict[str, Any], key: str = admin) -> dict[str, Any]:
        return await asyncio.to_thread(call, deployment, method, body, key)

    registered = await run("RegisterDevice", REGISTER)
    assert registered["deviceId"] == "rpi-001"
    assert registered["registeredAt"]
    device_key = registered["apiKey"]
    beat = await run("Heartbeat", HEARTBEAT, device_key)
    assert beat["acknowledged"] is True
    listed = await run("ListDevices", LIST)
    assert [d["id"] for d in listed["devices"]] == ["rpi-001"]
    got = await run("GetDevice", GET)
    assert got["device"]["stats"]["cpuPercent"] == pytest.approx(25.5)
    assert got["health"]["checks"]
    updated = await run("UpdateDevice", UPDATE)
    assert updated["device"]["name"] == "Raspberry Pi Production"
    assert updated["device"]["metadata"] == {"location": "datacenter-1"}
    deleted = await run("DeleteDevice", DELETE)
    assert deleted["success"] is True
