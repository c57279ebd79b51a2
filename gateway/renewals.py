"""RenewCertificate: a device's new certificate, for the key in its CSR.

The gateway signs with the fleet CA when its node holds the CA key (``pki/ca.key``, as
every node of the embedded default does); a gateway node without it answers
FAILED_PRECONDITION, and the agent keeps its certificate and tries again later. The new
certificate is recorded in ``device_certificates`` (so revocation and offboarding cover
it) before it is returned; the identity is the caller's, from the certificate it
presented, whatever the CSR says.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.serialization import Encoding

import core_ext
from fleetd.services.pki import CertificateAuthority, EnrollmentError
from fleetd.settings import Settings
from fleetd.storage import devices as device_store


class CannotIssue(Exception):
    """This gateway holds no CA key."""


class BadRequest(ValueError):
    """The CSR is not acceptable (INVALID_ARGUMENT)."""


@dataclass(frozen=True, slots=True)
class Issued:
    certificate: str
    ca_certificate: str
    not_after_unix: float


class CertificateIssuer:
    """Signs renewal CSRs with the fleet CA, loaded on first use."""

    def __init__(self, settings: Settings) -> None:
        self._paths = settings.paths
        self._fleet = settings.fleet
        self._ca: CertificateAuthority | None = None

    def _authority(self) -> CertificateAuthority:
        if self._ca is None:
            key: Path = self._paths.ca_key
            if not key.is_file():
                raise CannotIssue("this gateway holds no CA key and cannot renew certificates")
            self._ca = CertificateAuthority.load(self._paths, self._fleet)
        return self._ca

    async def renew(self, pool: asyncpg.Pool, device_id: str, csr_pem: bytes) -> Issued:
        """Sign ``csr_pem`` for ``device_id`` and record the certificate.

        Raises:
            CannotIssue, BadRequest; asyncpg/OS errors when PostgreSQL is unreachable.
        """
        ca = self._authority()
        try:
            cert = await asyncio.to_thread(ca.sign_device_csr, csr_pem, device_id)
        except EnrollmentError as exc:
            raise BadRequest(f"csr: {exc}") from None
        der = cert.public_bytes(Encoding.DER)
        identity = core_ext.extract_identity(der)
        async with pool.acquire() as conn:
            await device_store.add_certificate(
                conn,
                device_id,
                identity.serial,
                identity.fingerprint,
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
            )
        return Issued(
            certificate=cert.public_bytes(Encoding.PEM).decode(),
            ca_certificate=ca.cert_pem.decode(),
            not_after_unix=cert.not_valid_after_utc.timestamp(),
        )
