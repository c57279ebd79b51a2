"""RenewCertificate: a device gets a certificate for a new key, bound to the identity it
presented; the new certificate is accepted on its own; bad requests, offboarded devices
and gateways without the CA key are refused."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from cryptography import x509

from agent.credentials import generate_key_and_csr
from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.storage.devices import offboard_device
from tests.support.deployment import Deployment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device


async def _renew(
    deployment: Deployment, creds: DeviceCredentials, csr: bytes
) -> agent_pb2.RenewCertificateResponse:
    channel = device_channel(deployment.gateway_target, deployment.ca_pem, creds)
    try:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        response: agent_pb2.RenewCertificateResponse = await stub.RenewCertificate(
            agent_pb2.RenewCertificateRequest(csr=csr.decode()), timeout=10
        )
        return response
    finally:
        await channel.close(None)


async def _refused(
    deployment: Deployment, creds: DeviceCredentials, csr: bytes
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _renew(deployment, creds, csr)
    return err.value


async def test_a_renewed_certificate_binds_the_callers_identity_to_the_new_key(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    old = await enrol_device(pool, ca, "rpi-001")
    # The CSR claims another device: identity comes from the presented certificate.
    key_pem, csr = generate_key_and_csr("rpi-999")
    response = await _renew(deployment, old, csr)
    cert = x509.load_pem_x509_certificate(response.certificate.encode())
    assert cert.subject.rfc4514_string().startswith("CN=rpi-001")
    assert response.ca_certificate.encode() == deployment.ca_pem
    assert response.not_after.seconds == int(cert.not_valid_after_utc.timestamp())
    serials = await pool.fetchval(
        "SELECT count(*) FROM device_certificates WHERE device_id = 'rpi-001'"
    )
    assert serials == 2
    # The new key and certificate work on their own.
    new = DeviceCredentials("rpi-001", key_pem, response.certificate.encode())
    channel = device_channel(deployment.gateway_target, deployment.ca_pem, new)
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    registered = await stub.Register(agent_pb2.RegisterRequest(), timeout=10)
    assert registered.device_id == "rpi-001"
    await channel.close(None)


async def test_a_malformed_csr_is_invalid_argument(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    for csr in (b"not a csr", b"x" * 9000):
        err = await _refused(deployment, creds, csr)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "csr" in (err.details() or "")
    assert (
        await pool.fetchval("SELECT count(*) FROM device_certificates WHERE device_id = 'rpi-001'")
        == 1
    )


async def test_an_offboarded_device_cannot_renew(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    async with pool.acquire() as conn:
        await offboard_device(conn, "rpi-001", "retired")
    _, csr = generate_key_and_csr("rpi-001")
    err = await _refused(deployment, creds, csr)
    assert err.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


async def test_a_gateway_without_the_ca_key_says_it_cannot_renew(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    key = deployment.settings.paths.ca_key
    moved = key.with_name("ca.key.elsewhere")
    key.rename(moved)
    try:
        _, csr = generate_key_and_csr("rpi-001")
        err = await _refused(deployment, creds, csr)
    finally:
        moved.rename(key)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CA key" in (err.details() or "")
