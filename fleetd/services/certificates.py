"""Device certificates: issue one from a CSR with the fleet CA, and record it.

The one path for every certificate fleetd hands a device: enrolment (the control API's
RegisterDevice) and renewal (the gateway's RenewCertificate). Invariants:

- the identity bound is the ``device_id`` given, never what the CSR says (see
  ``fleetd.services.pki``);
- signing runs in a worker thread: an RSA or EC signature takes milliseconds, and a
  server's event loop must not stall on it while it serves thousands of devices;
- the certificate is recorded in ``device_certificates`` before it is returned, so
  revocation and offboarding cover every certificate a device was given;
- a CSR the CA refuses raises ``EnrollmentError`` and records nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import core_ext
from fleetd.services.pki import CertificateAuthority, EnrollmentError
from fleetd.storage import devices as device_store
from fleetd.storage.types import Queryable

__all__ = ["EnrollmentError", "IssuedCertificate", "issue_device_certificate"]


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A device certificate as issued and recorded."""

    device_id: str
    pem: str
    serial: str
    """As ``core_ext.extract_identity`` reports it: the key of ``device_certificates``."""
    fingerprint: str
    not_before: dt.datetime
    not_after: dt.datetime


def _sign(ca: CertificateAuthority, csr_pem: bytes, device_id: str) -> IssuedCertificate:
    cert: x509.Certificate = ca.sign_device_csr(csr_pem, device_id)
    # The gateway's own identity check, applied at issue: a certificate it would refuse
    # is never handed out, and the serial and fingerprint recorded are the ones it will
    # look up.
    identity = core_ext.extract_identity(cert.public_bytes(Encoding.DER))
    return IssuedCertificate(
        device_id=device_id,
        pem=cert.public_bytes(Encoding.PEM).decode(),
        serial=identity.serial,
        fingerprint=identity.fingerprint,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


async def issue_device_certificate(
    store: Queryable, ca: CertificateAuthority, device_id: str, csr_pem: bytes
) -> IssuedCertificate:
    """Sign ``csr_pem`` for ``device_id`` with ``ca`` and record the certificate.

    ``store`` is a pool (the certificate is recorded on its own) or a connection in the
    caller's transaction (it is recorded only if that transaction commits, as enrolment
    needs). Signing comes first and needs no connection: given a pool, a connection is
    taken only to record the certificate.

    Raises:
        EnrollmentError: the CSR is not acceptable (the message says why).
        Any of ``fleetd.storage.errors.STORE_DOWN``: PostgreSQL is unreachable.
    """
    issued = await asyncio.to_thread(_sign, ca, csr_pem, device_id)
    await device_store.add_certificate(
        store,
        device_id,
        issued.serial,
        issued.fingerprint,
        issued.not_before,
        issued.not_after,
    )
    return issued
