"""RenewCertificate: a device's new certificate, for the key in its CSR.

The gateway signs with the fleet CA when its node holds the CA key (``pki/ca.key``, as
every node of the embedded default does); a gateway node without it answers
FAILED_PRECONDITION, and the agent keeps its certificate and tries again later. Issuing
and recording is ``fleetd.services.certificates`` (the same path as enrolment); the
identity is the caller's, from the certificate it presented, whatever the CSR says.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.services import certificates
from fleetd.services.pki import CertificateAuthority
from fleetd.settings import Settings
from fleetd.storage.types import Pool


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
            if not self._paths.ca_key.is_file():
                raise CannotIssue("this gateway holds no CA key and cannot renew certificates")
            self._ca = CertificateAuthority.load(self._paths, self._fleet)
        return self._ca

    async def renew(self, pool: Pool, device_id: str, csr_pem: bytes) -> Issued:
        """Sign ``csr_pem`` for ``device_id`` and record the certificate.

        Raises:
            CannotIssue, BadRequest; STORE_DOWN errors when PostgreSQL is unreachable.
        """
        ca = self._authority()
        try:
            issued = await certificates.issue_device_certificate(pool, ca, device_id, csr_pem)
        except certificates.EnrollmentError as exc:
            raise BadRequest(f"csr: {exc}") from None
        return Issued(
            certificate=issued.pem,
            ca_certificate=ca.cert_pem.decode(),
            not_after_unix=issued.not_after.timestamp(),
        )
