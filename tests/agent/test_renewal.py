"""Certificate renewal: when it is due, how a swap survives a crash, and a real agent
renewing a nearly expired certificate through the gateway and going on with the new one."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

import core_ext
from agent.credentials import (
    CERT_FILE,
    KEY_FILE,
    NEXT_CERT_FILE,
    NEXT_KEY_FILE,
    CredentialStore,
    Enrollment,
    generate_key_and_csr,
)
from agent.renewal import Renewal, renewal_due
from fleetd.services.pki import CertificateAuthority
from fleetd.storage.devices import NewDevice, add_certificate, insert_device
from tests.support.deployment import Deployment, running_deployment
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
FLEET = "default"


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, with_api=False) as dep:
        yield dep


def _cert(ca: CertificateAuthority, validity: dt.timedelta, device_id: str = "rpi-001") -> bytes:
    _, csr = generate_key_and_csr(device_id)
    return ca.sign_device_csr(csr, device_id, validity).public_bytes(Encoding.PEM)


def test_renewal_is_due_in_the_last_third_of_the_validity() -> None:
    ca = CertificateAuthority.create(FLEET)
    fresh = _cert(ca, dt.timedelta(days=90))
    assert not renewal_due(fresh)
    now = dt.datetime.now(dt.UTC)
    assert not renewal_due(fresh, now + dt.timedelta(days=59))
    assert renewal_due(fresh, now + dt.timedelta(days=61))
    assert renewal_due(_cert(ca, dt.timedelta(minutes=1)))


def test_a_swap_interrupted_after_the_commit_point_is_finished_at_start(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(FLEET)
    renewal = Renewal(tmp_path, "rpi-001")
    csr = renewal.csr()
    pending = (tmp_path / NEXT_KEY_FILE).read_bytes()
    renewal.csr()
    assert (tmp_path / NEXT_KEY_FILE).read_bytes() == pending  # a retry signs the same key
    cert = ca.sign_device_csr(csr, "rpi-001").public_bytes(Encoding.PEM)
    (tmp_path / KEY_FILE).write_bytes(b"old key")
    (tmp_path / CERT_FILE).write_bytes(b"old cert")
    # A crash right after the commit point: the new certificate is written, nothing renamed.
    (tmp_path / NEXT_CERT_FILE).write_bytes(cert)
    Renewal(tmp_path, "rpi-001").recover()
    assert (tmp_path / CERT_FILE).read_bytes() == cert
    key = serialization.load_pem_private_key((tmp_path / KEY_FILE).read_bytes(), password=None)
    assert x509.load_pem_x509_certificate(cert).public_key() == key.public_key()
    assert not (tmp_path / NEXT_KEY_FILE).exists() and not (tmp_path / NEXT_CERT_FILE).exists()


def test_a_certificate_for_another_key_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(FLEET)
    renewal = Renewal(tmp_path, "rpi-001")
    renewal.csr()
    (tmp_path / CERT_FILE).write_bytes(b"old cert")
    other = _cert(ca, dt.timedelta(days=90))
    with pytest.raises(ValueError, match="not for the pending key"):
        renewal.install(other, ca.cert_pem)
    assert (tmp_path / CERT_FILE).read_bytes() == b"old cert"
    assert (tmp_path / NEXT_KEY_FILE).exists()  # still pending for the next attempt


async def test_an_agent_renews_a_nearly_expired_certificate_and_goes_on_with_it(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    ca = CertificateAuthority.load(deployment.settings.paths, deployment.settings.fleet)
    key_pem, csr = generate_key_and_csr("rpi-renew")
    cert = ca.sign_device_csr(csr, "rpi-renew", dt.timedelta(minutes=2))
    identity = core_ext.extract_identity(cert.public_bytes(Encoding.DER))
    async with pool.acquire() as conn:
        await insert_device(
            conn, NewDevice("rpi-renew", FLEET, "rpi-renew", "raspberry-pi", "1.0", {}, {})
        )
        await add_certificate(
            conn,
            "rpi-renew",
            identity.serial,
            identity.fingerprint,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )
    data = tmp_path / "data"
    store = CredentialStore(data)
    store.ensure_dir()
    (data / KEY_FILE).write_bytes(key_pem)
    os.chmod(data / KEY_FILE, 0o600)
    store.save_enrollment(
        Enrollment("rpi-renew", FLEET, deployment.gateway_target),
        cert.public_bytes(Encoding.PEM),
        deployment.ca_pem,
    )
    out = os.open(tmp_path / "agent.out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "--data-dir",
            str(data),
            "--device-id",
            "rpi-renew",
            "--device-type",
            "raspberry-pi",
            "--container-runtime",
            "none",
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    finally:
        os.close(out)
    try:

        async def renewed() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT count(*) = 2 FROM device_certificates WHERE device_id = 'rpi-renew'"
                )
            )

        await until(renewed, within=30)

        async def installed() -> bool:
            return not renewal_due((data / CERT_FILE).read_bytes())

        await until(installed, within=10)
        new_key = serialization.load_pem_private_key((data / KEY_FILE).read_bytes(), None)
        new_cert = x509.load_pem_x509_certificate((data / CERT_FILE).read_bytes())
        assert new_cert.public_key() == new_key.public_key()
        assert new_key.public_key() != cert.public_key()  # a new key, made on the device
        # Heartbeats go on, now over the new certificate.
        seen = await pool.fetchval("SELECT last_seen FROM devices WHERE device_id = 'rpi-renew'")

        async def beating() -> bool:
            now = await pool.fetchval("SELECT last_seen FROM devices WHERE device_id = 'rpi-renew'")
            return now is not None and (seen is None or now > seen)

        await until(beating, within=15)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
