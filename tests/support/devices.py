"""Enrol devices directly (CA + storage, as RegisterDevice does) and open their mTLS channels."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import grpc
from cryptography.hazmat.primitives.serialization import Encoding

from agent.credentials import generate_key_and_csr
from fleetd.services.certificates import issue_device_certificate
from fleetd.services.pki import CertificateAuthority
from fleetd.storage.devices import NewDevice, insert_device


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    device_id: str
    key_pem: bytes
    cert_pem: bytes


async def enrol_device(
    pool: asyncpg.Pool, ca: CertificateAuthority, device_id: str, *, register: bool = True
) -> DeviceCredentials:
    """A key and a certificate for device_id; with register=False the CA signs it but
    fleetd never records it (a certificate the gateway must not accept)."""
    key_pem, csr_pem = generate_key_and_csr(device_id)
    if not register:
        cert = ca.sign_device_csr(csr_pem, device_id)
        return DeviceCredentials(device_id, key_pem, cert.public_bytes(Encoding.PEM))
    async with pool.acquire() as conn:
        await insert_device(
            conn, NewDevice(device_id, ca.fleet, device_id, "raspberry-pi", "1.0", {}, {})
        )
        issued = await issue_device_certificate(conn, ca, device_id, csr_pem)
    return DeviceCredentials(device_id, key_pem, issued.pem.encode())


def device_channel(target: str, ca_pem: bytes, creds: DeviceCredentials | None) -> grpc.aio.Channel:
    """An mTLS channel presenting creds (or no client certificate at all)."""
    if creds is None:
        tls = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    else:
        tls = grpc.ssl_channel_credentials(
            root_certificates=ca_pem, private_key=creds.key_pem, certificate_chain=creds.cert_pem
        )
    return grpc.aio.secure_channel(target, tls)
