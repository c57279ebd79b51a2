"""Certificate renewal: a new key on the device and a new certificate for it, before the
old one expires, with no moment where the key and certificate on disk do not match.

When less than a third of the certificate's validity is left (30 days of fleetd's 90),
the agent generates a new key (``device.key.next``, kept across restarts so a retry
signs the same key), sends a CSR for it with RenewCertificate over its current mTLS
channel, writes the answer to ``device.pem.next`` and then renames both into place. The
existence of ``device.pem.next`` is the commit point: :meth:`Renewal.recover` (at start)
finishes a swap a crash interrupted, and a key without a certificate stays pending for the
next attempt. A refused or failed renewal changes nothing; the agent tries again later.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.credentials import CA_FILE, CERT_FILE, KEY_FILE, NEXT_CERT_FILE, NEXT_KEY_FILE
from agent.durable import fsync_dir, write_atomic

RENEW_WHEN_LEFT = 1 / 3
"""Renew once less than this share of the certificate's validity is left."""
CHECK_EVERY = 3600.0
"""Seconds between checks (and between attempts after a failed renewal)."""


def renewal_due(cert_pem: bytes, now: dt.datetime | None = None) -> bool:
    """Whether the certificate has less than :data:`RENEW_WHEN_LEFT` of its validity left."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    now = now or dt.datetime.now(dt.UTC)
    return (end - now) < (end - start) * RENEW_WHEN_LEFT


class Renewal:
    """The renewal files in the agent's data directory."""

    def __init__(self, data_dir: Path, device_id: str) -> None:
        self.dir = data_dir
        self.device_id = device_id

    def recover(self) -> None:
        """Finish a swap a crash interrupted (``device.pem.next`` present)."""
        next_cert = self.dir / NEXT_CERT_FILE
        if not next_cert.exists():
            return
        next_key = self.dir / NEXT_KEY_FILE
        if next_key.exists():
            os.replace(next_key, self.dir / KEY_FILE)
        os.replace(next_cert, self.dir / CERT_FILE)
        fsync_dir(self.dir)

    def csr(self) -> bytes:
        """A CSR for the pending new key (generated and stored first if there is none)."""
        path = self.dir / NEXT_KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path}: not an EC key")
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_atomic(path, pem, 0o600)
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.device_id)]))
            .sign(key, hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM)

    def install(self, cert_pem: bytes, ca_pem: bytes) -> None:
        """Make the new certificate (for the pending key) the agent's."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(
            (self.dir / NEXT_KEY_FILE).read_bytes(), password=None
        )
        if cert.public_key() != key.public_key():
            raise ValueError("the renewed certificate is not for the pending key")
        if ca_pem:
            write_atomic(self.dir / CA_FILE, ca_pem, 0o644)
        write_atomic(self.dir / NEXT_CERT_FILE, cert_pem, 0o644)  # the commit point
        self.recover()
