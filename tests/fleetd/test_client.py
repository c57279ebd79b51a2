"""The seed's Python client example, run against a real deployment (host changed only)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError

import fleetd
from tests.support.deployment import Deployment, running_deployment


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


def seed_example(endpoint: str, api_key: str) -> list[str]:
    """The seed's "Python Client" section, with its print lines collected instead."""
    printed: list[str] = []
    client = fleetd.Client(endpoint=endpoint, api_key=api_key)
    response = client.device.register(
        device_id="rpi-001",
        device_name="Raspberry Pi 001",
        device_type="raspberry-pi",
        version="1.0.0",
    )
    printed.append(f"Registered with API key: {response.api_key}")
    devices = client.device.list(page_size=10)
    for device in devices.devices:
        printed.append(f"Device: {device.id} ({device.name})")
    client.close()
    return printed


async def test_seed_python_client_example_works_as_written(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETD_CA_CERT", str(deployment.settings.paths.ca_cert))
    printed = await asyncio.to_thread(
        seed_example, deployment.api_endpoint, deployment.admin_api_key
    )
    assert printed[0].startswith("Registered with API key: fk_")
    assert printed[1:] == ["Device: rpi-001 (Raspberry Pi 001)"]


async def test_client_surfaces_the_servers_error_code(deployment: Deployment) -> None:
    def call() -> None:
        with fleetd.Client(
            deployment.api_endpoint, "fk_0000000000000000_" + "A" * 43, ca_cert=deployment.ca_pem
        ) as client:
            client.device.list()

    with pytest.raises(ConnectError) as err:
        await asyncio.to_thread(call)
    assert err.value.code == Code.UNAUTHENTICATED


async def test_client_analytics_health_and_an_export_downloaded(
    deployment: Deployment, tmp_path: Path
) -> None:
    def call() -> tuple[int, bytes]:
        with fleetd.Client(
            deployment.api_endpoint, deployment.admin_api_key, ca_cert=deployment.ca_pem
        ) as client:
            client.device.register(device_id="rpi-001", device_name="a", device_type="rpi")
            health = client.analytics.get_device_health(device_filter="type:rpi")
            export = client.analytics.export_data(
                format="JSONL", data_type="DEVICE_INVENTORY", fields=["device_id", "device_type"]
            )
            seen: list[str] = []
            path = client.analytics.download_export(
                export.export_url,
                tmp_path / "inventory.jsonl",
                progress=lambda state, done, total: seen.append(state),
            )
            assert seen and seen[-1] == "downloading"
            return health.summary.total_devices, path.read_bytes()

    total, content = await asyncio.to_thread(call)
    assert total == 1
    assert [json.loads(line) for line in content.splitlines()] == [
        {"device_id": "rpi-001", "device_type": "rpi"}
    ]


async def test_an_interrupted_export_download_resumes_with_a_range(
    deployment: Deployment, tmp_path: Path
) -> None:
    def call() -> tuple[bytes, bytes, int]:
        with fleetd.Client(
            deployment.api_endpoint, deployment.admin_api_key, ca_cert=deployment.ca_pem
        ) as client:
            for index in range(50):
                client.device.register(device_id=f"rpi-{index:03d}", device_name="a")
            export = client.analytics.export_data(format="CSV", data_type="DEVICE_INVENTORY")
            whole = client.analytics.download_export(export.export_url, tmp_path / "a.csv")
            content = whole.read_bytes()
            # An earlier attempt stopped half-way: its part file and the ETag it saw.
            target = tmp_path / "b.csv"
            (tmp_path / "b.csv.part").write_bytes(content[: len(content) // 2])
            etag = '"' + hashlib.sha256(content).hexdigest() + '"'
            (tmp_path / "b.csv.part.etag").write_text(etag)
            received: list[int] = []
            client.analytics.download_export(
                export.export_url,
                target,
                progress=lambda state, done, total: received.append(done),
            )
            return content, target.read_bytes(), min(received)

    content, resumed, first_progress = await asyncio.to_thread(call)
    assert resumed == content
    # Progress started past the half already held: only the rest was asked for (Range).
    assert first_progress > len(content) // 2
