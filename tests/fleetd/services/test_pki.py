from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.credentials import generate_key_and_csr
from fleetd.services.pki import CertificateAuthority, EnrollmentError, init_pki
from fleetd.settings import Paths


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("acme")


def test_device_certificate_binds_identity_in_cn_and_uri_san(ca: CertificateAuthority) -> None:
    _, csr = generate_key_and_csr("whatever-the-device-asked")
    cert = ca.sign_device_csr(csr, "rpi-001")
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "rpi-001"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://acme/device/rpi-001"
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca.cert)


def test_csr_with_bad_signature_is_refused(ca: CertificateAuthority) -> None:
    _, csr = generate_key_and_csr("d")
    der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(Encoding.DER))
    der[-5] ^= 0xFF
    pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der))
    pem += b"-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(EnrollmentError):
        ca.sign_device_csr(pem, "d")


def test_garbage_csr_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(EnrollmentError, match="PKCS#10"):
        ca.sign_device_csr(b"not a csr", "d")


def test_oversized_csr_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(EnrollmentError, match="too large"):
        ca.sign_device_csr(b"x" * 10_000, "d")


def test_weak_rsa_key_is_refused(ca: CertificateAuthority) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.PEM)
    )
    with pytest.raises(EnrollmentError, match="2048"):
        ca.sign_device_csr(csr, "d")


def test_init_pki_is_idempotent_and_keeps_keys_private(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    first = init_pki(paths, "acme", ("localhost", "127.0.0.1"))
    server_pem = paths.server_cert.read_bytes()
    second = init_pki(paths, "acme", ("localhost", "127.0.0.1"))
    assert first.cert == second.cert
    assert paths.server_cert.read_bytes() == server_pem
    assert paths.ca_key.stat().st_mode & 0o077 == 0
    assert paths.server_key.stat().st_mode & 0o077 == 0
    server = x509.load_pem_x509_certificate(server_pem)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
