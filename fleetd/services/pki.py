"""The fleet's certificate authority: creation, server certificates, and device enrolment.

Device identity is bound into each device certificate twice, in the forms that
``core_ext.extract_identity`` requires: the subject CN is the device id and the only
``spiffe://<fleet>/device/<device_id>`` URI SAN names fleet and device. Device keys are
generated on the device; the CA only ever sees a CSR, whose own subject is ignored.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetd.settings import Paths

CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=397)
DEVICE_VALIDITY = dt.timedelta(days=90)
MAX_CSR_BYTES = 8192

SigningKey = ec.EllipticCurvePrivateKey


class EnrollmentError(ValueError):
    """A CSR the CA will not sign; the message says why."""


def device_uri(fleet: str, device_id: str) -> str:
    return f"spiffe://{fleet}/device/{device_id}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _serial() -> int:
    # 159 random bits: positive, unpredictable, within RFC 5280's 20 octets.
    return secrets.randbits(159) | (1 << 64)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """The fleet CA: signs server certificates and device CSRs."""

    fleet: str
    cert: x509.Certificate
    key: SigningKey

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @classmethod
    def create(cls, fleet: str) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetd"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"fleetd {fleet} fleet CA"),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_serial())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(fleet=fleet, cert=cert, key=key)

    @classmethod
    def load(cls, paths: Paths, fleet: str) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{paths.ca_key}: expected an EC private key")
        return cls(fleet=fleet, cert=cert, key=key)

    def save(self, paths: Paths) -> None:
        _write_private(paths.ca_key, key_pem(self.key))
        paths.ca_cert.write_bytes(self.cert_pem)

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        validity: dt.timedelta,
    ) -> x509.Certificate:
        now = _now()
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(_serial())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + validity, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue_server_cert(
        self, names: tuple[str, ...]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A TLS server certificate for the gateway and the control API."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = self._leaf(
            subject, key.public_key(), sans, ExtendedKeyUsageOID.SERVER_AUTH, SERVER_VALIDITY
        )
        return cert, key

    def sign_device_csr(
        self, csr_pem: bytes, device_id: str, validity: dt.timedelta = DEVICE_VALIDITY
    ) -> x509.Certificate:
        """Sign a device's CSR, binding it to ``device_id`` in this fleet.

        The CSR proves possession of the private key (its signature is checked); its
        subject and extensions are ignored — identity comes from enrolment, not the CSR.
        """
        if len(csr_pem) > MAX_CSR_BYTES:
            raise EnrollmentError(f"CSR too large (limit {MAX_CSR_BYTES} bytes)")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise EnrollmentError(f"CSR is not a PEM-encoded PKCS#10 request: {exc}") from None
        if not csr.is_signature_valid:
            raise EnrollmentError("CSR signature does not verify")
        public_key = csr.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            if public_key.curve.name not in ("secp256r1", "secp384r1"):
                raise EnrollmentError(f"unsupported EC curve {public_key.curve.name}")
        elif isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise EnrollmentError("RSA keys must be at least 2048 bits")
        elif not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise EnrollmentError("unsupported key type: use EC P-256/P-384, Ed25519 or RSA")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"fleetd fleet {self.fleet}"),
                x509.NameAttribute(NameOID.COMMON_NAME, device_id),
            ]
        )
        sans: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(device_uri(self.fleet, device_id))
        ]
        return self._leaf(subject, public_key, sans, ExtendedKeyUsageOID.CLIENT_AUTH, validity)


def init_pki(paths: Paths, fleet: str, server_names: tuple[str, ...]) -> CertificateAuthority:
    """Create the fleet CA and server certificate unless they exist; return the CA."""
    if paths.ca_cert.exists() and paths.ca_key.exists():
        ca = CertificateAuthority.load(paths, fleet)
    else:
        ca = CertificateAuthority.create(fleet)
        ca.save(paths)
    if not (paths.server_cert.exists() and paths.server_key.exists()):
        cert, key = ca.issue_server_cert(server_names)
        _write_private(paths.server_key, key_pem(key))
        paths.server_cert.write_bytes(cert_pem(cert))
    return ca
