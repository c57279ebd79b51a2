"""Bearer JWTs against the running API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from fleetd.services import jwt
from fleetd.services.pki import CertificateAuthority
from fleetd.storage.bearer_tokens import create_api_key, revoke_api_key
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import enrol_device
from tests.support.http import connect_json

LIST = "fleetd.v1.DeviceService/ListDevices"


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


def _bearer(dep: Deployment, role: str = "operator", key: jwt.SigningKey | None = None) -> str:
    signing = key or jwt.load_signing_key(dep.settings.paths.root)
    token = jwt.issue(signing, fleet="default", subject="alice", role=role, ttl_seconds=60)
    return f"Bearer {token}"


async def test_bearer_token_authenticates(deployment: Deployment) -> None:
    response = await connect_json(
        deployment.api_endpoint,
        LIST,
        {},
        ca_pem=deployment.ca_pem,
        headers={"authorization": _bearer(deployment)},
    )
    assert response.status == 200, response.body


async def test_bearer_token_role_is_enforced(deployment: Deployment) -> None:
    response = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/RegisterDevice",
        {"device_id": "x"},
        ca_pem=deployment.ca_pem,
        headers={"authorization": _bearer(deployment, role="viewer")},
    )
    assert response.status == 403


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer not-a-jwt", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer a.b.c"]
)
async def test_malformed_authorization_is_unauthenticated(
    deployment: Deployment, header: str
) -> None:
    response = await connect_json(
        deployment.api_endpoint,
        LIST,
        {},
        ca_pem=deployment.ca_pem,
        headers={"authorization": header},
    )
    assert response.status == 401
    assert response.body["code"] == "unauthenticated"


async def test_token_from_a_key_never_published_is_unauthenticated(
    deployment: Deployment,
) -> None:
    stranger = jwt.new_signing_key()
    response = await connect_json(
        deployment.api_endpoint,
        LIST,
        {},
        ca_pem=deployment.ca_pem,
        headers={"authorization": _bearer(deployment, key=stranger)},
    )
    assert response.status == 401
    assert "kid" in response.body["message"]


async def test_rotated_key_is_accepted_at_once(deployment: Deployment, pool: asyncpg.Pool) -> None:
    assert (
        await connect_json(
            deployment.api_endpoint,
            LIST,
            {},
            ca_pem=deployment.ca_pem,
            headers={"authorization": _bearer(deployment)},
        )
    ).status == 200
    rotated = jwt.new_signing_key()
    await jwt.publish_key(pool, rotated)
    await asyncio.sleep(1.1)  # unknown kids reload the key set at most once a second
    response = await connect_json(
        deployment.api_endpoint,
        LIST,
        {},
        ca_pem=deployment.ca_pem,
        headers={"authorization": _bearer(deployment, key=rotated)},
    )
    assert response.status == 200, response.body


async def _device_cert(dep: Deployment, pool: asyncpg.Pool, tmp_path: Path) -> tuple[Path, Path]:
    ca = CertificateAuthority.load(dep.settings.paths, "default")
    creds = await enrol_device(pool, ca, "rpi-001")
    await enrol_device(pool, ca, "rpi-002")
    cert, key = tmp_path / "device.crt", tmp_path / "device.key"
    cert.write_bytes(creds.cert_pem)
    key.write_bytes(creds.key_pem)
    return cert, key


async def test_device_certificate_acts_as_that_device(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    cert = await _device_cert(deployment, pool, tmp_path)
    own = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        client_cert=cert,
    )
    assert own.status == 200, own.body
    other = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-002"},
        ca_pem=deployment.ca_pem,
        client_cert=cert,
    )
    assert other.status == 403
    listing = await connect_json(
        deployment.api_endpoint, LIST, {}, ca_pem=deployment.ca_pem, client_cert=cert
    )
    assert listing.status == 403  # the device role has no device:list


async def test_revoked_device_certificate_is_unauthenticated(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    cert = await _device_cert(deployment, pool, tmp_path)
    await pool.execute("UPDATE device_certificates SET revoked_at = now()")
    response = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        client_cert=cert,
    )
    assert response.status == 401


async def test_a_forged_forwarded_certificate_header_is_ignored(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    cert_path, _ = await _device_cert(deployment, pool, tmp_path)
    forged = f'Hash=00;Cert="{quote(cert_path.read_text())}";URI=spiffe://default/device/rpi-001'
    response = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        headers={"x-forwarded-client-cert": forged},
    )
    assert response.status == 401  # Envoy stripped it: the caller is anonymous


async def test_revoked_api_key_is_refused_within_five_seconds(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    key = await create_api_key(pool, "operator", "soon revoked")

    async def status() -> int:
        response = await connect_json(
            deployment.api_endpoint, LIST, {}, ca_pem=deployment.ca_pem, api_key=key.token
        )
        return response.status

    assert await status() == 200
    assert await revoke_api_key(pool, key.id)
    revoked_at = asyncio.get_running_loop().time()
    while await status() == 200:
        assert asyncio.get_running_loop().time() - revoked_at < 5.0, "still accepted after 5 s"
        await asyncio.sleep(0.25)
    assert await status() == 401
