"""One deployment for the whole sweep (starting one per method would cost more than the
sweep itself), with the rate limits lifted so that every request reaches validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import redis.asyncio as aioredis
from pyqwest import Client, HTTPTransport

from fleetd.services.pki import CertificateAuthority
from fleetd.storage.postgres import connect
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import device_channel, enrol_device
from tests.support.storage import StorageServers, drop_database, fresh_database
from tests.sweep.cases import KNOWN_DEVICE

UNLIMITED = "9999999/s"


@dataclass(frozen=True, slots=True)
class Sweep:
    """The deployment and a client for each transport."""

    deployment: Deployment
    http: Client
    """Connect JSON to the control API (TLS, the deployment's CA)."""
    operator: grpc.aio.Channel
    """gRPC to the control API."""
    device: grpc.aio.Channel
    """gRPC to the device gateway, as an enrolled device (mutual TLS)."""
    auth: tuple[str, str]
    """The header that authenticates the operator (the admin API key)."""


@pytest.fixture(scope="module")
async def sweep(servers: StorageServers) -> AsyncIterator[Sweep]:
    url = await fresh_database(servers)
    flush = aioredis.Redis.from_url(servers.redis_url)
    await flush.flushdb()
    await flush.aclose()
    try:
        async with running_deployment(
            url,
            servers.redis_url,
            rate_authenticated=UNLIMITED,
            rate_anonymous=UNLIMITED,
            rate_device=UNLIMITED,
            gateway_device_rate="off",
        ) as dep:
            pool = await connect(url, run_migrations=False)
            try:
                ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
                creds = await enrol_device(pool, ca, "sweep-device")
                await enrol_device(pool, ca, KNOWN_DEVICE)
            finally:
                await pool.close()
            transport = HTTPTransport(tls_ca_cert=dep.ca_pem, tls_include_system_certs=False)
            operator = grpc.aio.secure_channel(
                f"127.0.0.1:{dep.api_port}",
                grpc.ssl_channel_credentials(root_certificates=dep.ca_pem),
            )
            device = device_channel(dep.gateway_target, dep.ca_pem, creds)
            try:
                auth = ("x-api-key", dep.admin_api_key)
                yield Sweep(dep, Client(transport), operator, device, auth)
            finally:
                await device.close(None)
                await operator.close(None)
                await transport.aclose()
    finally:
        await drop_database(servers, url)
