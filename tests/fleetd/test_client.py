"""The seed's Python client example, run against a real deployment (host changed only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
