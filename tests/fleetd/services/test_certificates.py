"""Issuing a device certificate: signed in a worker thread, recorded before it is returned,
nothing recorded for a refused CSR or a rolled-back enrolment."""

from __future__ import annotations

import datetime as dt
import threading

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

import core_ext
from agent.credentials import generate_key_and_csr
from fleetd.services.certificates import EnrollmentError, issue_device_certificate
from fleetd.services.pki import DEVICE_VALIDITY, CertificateAuthority
from fleetd.storage.devices import NewDevice, certificate_standing, insert_device


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("acme")


async def _enrolled(pool: asyncpg.Pool, device_id: str) -> None:
    async with pool.acquire() as conn:
        await insert_device(conn, NewDevice(device_id, "acme", device_id, "pi", "1", {}, {}))


async def _recorded(pool: asyncpg.Pool, device_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM device_certificates WHERE device_id = $1", device_id
    )
    return count


async def test_an_issued_certificate_binds_the_device_and_is_recorded(
    pool: asyncpg.Pool, ca: CertificateAuthority
) -> None:
    await _enrolled(pool, "rpi-001")
    _, csr = generate_key_and_csr("the-csr-says-otherwise")
    issued = await issue_device_certificate(pool, ca, "rpi-001", csr)
    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "rpi-001"
    assert issued.not_after == cert.not_valid_after_utc
    assert issued.not_before == cert.not_valid_before_utc
    identity = core_ext.extract_identity(cert.public_bytes(Encoding.DER))
    assert (issued.serial, issued.fingerprint) == (identity.serial, identity.fingerprint)
    standing = await certificate_standing(pool, issued.serial, issued.fingerprint)
    assert standing is not None
    assert (standing.device_id, standing.revoked) == ("rpi-001", False)


async def test_a_refused_csr_records_nothing(pool: asyncpg.Pool, ca: CertificateAuthority) -> None:
    await _enrolled(pool, "rpi-001")
    with pytest.raises(EnrollmentError, match="PKCS#10"):
        await issue_device_certificate(pool, ca, "rpi-001", b"not a csr")
    assert await _recorded(pool, "rpi-001") == 0


async def test_a_certificate_issued_in_a_rolled_back_transaction_is_not_recorded(
    pool: asyncpg.Pool, ca: CertificateAuthority
) -> None:
    await _enrolled(pool, "rpi-001")
    _, csr = generate_key_and_csr("rpi-001")
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await issue_device_certificate(conn, ca, "rpi-001", csr)
        await transaction.rollback()  # the enrolment failed after the certificate
    assert await _recorded(pool, "rpi-001") == 0


async def test_signing_runs_off_the_event_loop(
    pool: asyncpg.Pool, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _enrolled(pool, "rpi-001")
    signed_on: list[int] = []
    sign = CertificateAuthority.sign_device_csr

    def recording_sign(
        self: CertificateAuthority,
        csr_pem: bytes,
        device_id: str,
        validity: dt.timedelta = DEVICE_VALIDITY,
    ) -> x509.Certificate:
        signed_on.append(threading.get_ident())
        return sign(self, csr_pem, device_id, validity)

    monkeypatch.setattr(CertificateAuthority, "sign_device_csr", recording_sign)
    _, csr = generate_key_and_csr("rpi-001")
    await issue_device_certificate(pool, ca, "rpi-001", csr)
    assert signed_on and signed_on[0] != threading.get_ident()
