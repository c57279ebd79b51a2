"""Device certificate identity extraction: the pure-Python reference.

A device proves who it is with its mTLS client certificate. By the time the gateway calls
:func:`extract_identity`, TLS has verified the certificate chain; this module only binds the
certificate to a fleet device identity and reports what the caller needs (serial number for
revocation checks, fingerprint, validity window, key algorithm). Validity dates and signatures
are deliberately not checked here.

The compiled ``fleetd_native`` extension implements the same function; both must agree on
every input, refusals included (the message *prefix* of :class:`IdentityError` is part of the
contract).
"""

from __future__ import annotations

import base64
import hashlib
import re
import warnings
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, PublicKeyAlgorithmOID

__all__ = ["MAX_CERTIFICATE_SIZE", "DeviceIdentity", "IdentityError", "extract_identity"]

MAX_CERTIFICATE_SIZE = 16384
"""Inputs longer than this many bytes are refused before any parsing."""

# Error message prefixes: part of the contract shared with the compiled implementation.
TOO_LARGE = "certificate too large"
EMPTY = "empty certificate"
MALFORMED_PEM = "malformed PEM"
MALFORMED_CERTIFICATE = "malformed certificate"
CA_CERTIFICATE = "CA certificate used as a device certificate"
NOT_CLIENT_AUTH = "certificate is not valid for client authentication"
BAD_IDENTITY = "missing or malformed device identity"
CN_MISMATCH = "certificate common name does not match device identity"
UNSUPPORTED_KEY = "unsupported key algorithm"

# The whitespace PEM may carry: the same set as bytes.split() (RFC 7468 "WSP" and line ends).
_WHITESPACE = b" \t\n\r\x0b\x0c"
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

_SPIFFE_SCHEME = "spiffe://"
_DEVICE_URI = re.compile(
    r"spiffe://(?P<fleet>[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?)"
    r"/device/(?P<device_id>[A-Za-z0-9][A-Za-z0-9._-]{0,127})",
    re.ASCII,
)

_E = TypeVar("_E", bound=x509.ExtensionType)

_EC_CURVES = {"secp256r1": "EC-P256", "secp384r1": "EC-P384", "secp521r1": "EC-P521"}


class IdentityError(ValueError):
    """The certificate does not establish a device identity; the message says why.

    Messages start with one of a fixed set of prefixes (``"malformed PEM"``,
    ``"unsupported key algorithm"``, ...); what follows the prefix is detail for logs.
    """


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The identity a device certificate establishes, with what the caller needs to check it.

    Attributes:
        device_id: the device, from the ``spiffe://<fleet>/device/<device_id>`` URI SAN
            (equal to the subject common name).
        fleet: the fleet the device belongs to, from the same URI.
        serial: the certificate serial number, lowercase hex without leading zeros.
        fingerprint: lowercase hex SHA-256 of the certificate's DER encoding.
        not_before: start of the validity period, Unix seconds (not checked here).
        not_after: end of the validity period, Unix seconds (not checked here).
        key_algorithm: ``"EC-P256"``, ``"EC-P384"``, ``"EC-P521"``, ``"Ed25519"``,
            ``"Ed448"`` or ``"RSA-<modulus bits>"``.
    """

    device_id: str
    fleet: str
    serial: str
    fingerprint: str
    not_before: int
    not_after: int
    key_algorithm: str


def extract_identity(data: bytes) -> DeviceIdentity:
    """Extract the device identity from a client certificate.

    Args:
        data: the certificate as PEM (only the first ``CERTIFICATE`` block is read; leading
            whitespace is allowed) or as DER, at most 16384 bytes.

    Returns:
        The :class:`DeviceIdentity` the certificate establishes.

    Raises:
        IdentityError: when the certificate is refused; checks run in this order: size,
            empty input, PEM armour, DER structure, CA flag, client-auth EKU, the identity
            URI SAN, the subject common name, the key algorithm.
        TypeError: when ``data`` is not ``bytes``.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"extract_identity() expects bytes, not {type(data).__name__}")
    if len(data) > MAX_CERTIFICATE_SIZE:
        raise IdentityError(f"{TOO_LARGE}: {len(data)} bytes, limit {MAX_CERTIFICATE_SIZE}")
    if not data:
        raise IdentityError(EMPTY)
    der = _decode_input(data)
    with warnings.catch_warnings():  # not thread-safe before Python 3.14; a reference only
        # cryptography warns (rather than fails) on zero or negative serial numbers, here and
        # in extensions; this module decides for itself (zero is reported, negative refused).
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        # It also warns on CNs longer than 64 characters, which device ids may be.
        warnings.filterwarnings("ignore", "Attribute's length must be", UserWarning)
        return _identity(der)


def _identity(der: bytes) -> DeviceIdentity:
    """The checks after PEM decoding, in the contract's order."""
    cert = _load_certificate(der)
    extensions = cert.extensions

    basic = _find_extension(extensions, x509.BasicConstraints)
    if basic is not None and basic.ca:
        raise IdentityError(f"{CA_CERTIFICATE}: basicConstraints has cA=TRUE")

    eku = _find_extension(extensions, x509.ExtendedKeyUsage)
    if eku is None:
        raise IdentityError(f"{NOT_CLIENT_AUTH}: no extendedKeyUsage extension")
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise IdentityError(f"{NOT_CLIENT_AUTH}: extendedKeyUsage lacks clientAuth")

    fleet, device_id = _device_uri(_find_extension(extensions, x509.SubjectAlternativeName))

    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common_names) != 1 or common_names[0].value != device_id:
        raise IdentityError(
            f"{CN_MISMATCH}: expected exactly one CN equal to {device_id!r}, "
            f"found {[a.value for a in common_names]!r}"
        )

    key_algorithm = _key_algorithm(cert)

    return DeviceIdentity(
        device_id=device_id,
        fleet=fleet,
        serial=format(cert.serial_number, "x"),
        fingerprint=hashlib.sha256(der).hexdigest(),
        not_before=int(cert.not_valid_before_utc.timestamp()),
        not_after=int(cert.not_valid_after_utc.timestamp()),
        key_algorithm=key_algorithm,
    )


def _decode_input(data: bytes) -> bytes:
    """Return the DER of the certificate: ``data`` itself, or the first PEM block's content.

    PEM is recognised by ``-----`` after optional leading whitespace. The first block must be
    a ``CERTIFICATE``; its body (whitespace removed) must be canonical, padded base64.
    Anything after the first ``END CERTIFICATE`` line is ignored.
    """
    text = data.lstrip(_WHITESPACE)
    if not text.startswith(b"-----"):
        return data
    if not text.startswith(_PEM_BEGIN):
        raise IdentityError(f"{MALFORMED_PEM}: the first block is not a CERTIFICATE")
    end = text.find(_PEM_END, len(_PEM_BEGIN))
    if end < 0:
        raise IdentityError(f"{MALFORMED_PEM}: no END CERTIFICATE line")
    body = text[len(_PEM_BEGIN) : end].translate(None, _WHITESPACE)
    if not body:
        raise IdentityError(f"{MALFORMED_PEM}: empty CERTIFICATE block")
    if _BASE64.fullmatch(body) is None:
        raise IdentityError(f"{MALFORMED_PEM}: invalid base64")
    der = base64.b64decode(body, validate=True)
    if base64.b64encode(der) != body:  # non-zero padding bits
        raise IdentityError(f"{MALFORMED_PEM}: invalid base64")
    return der


def _load_certificate(der: bytes) -> x509.Certificate:
    """Parse ``der`` as one X.509 certificate, with no bytes after it, or refuse it.

    The parts ``cryptography`` decodes lazily (extensions, names, dates) are decoded here, so
    that a certificate that cannot be read is refused as malformed before any other check.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        serial = cert.serial_number
        _ = cert.extensions, cert.subject, cert.not_valid_before_utc, cert.not_valid_after_utc
    except (
        ValueError,
        TypeError,  # e.g. a BIT STRING name attribute that is not an x500UniqueIdentifier
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        raise IdentityError(f"{MALFORMED_CERTIFICATE}: {exc}") from exc
    if serial < 0:
        raise IdentityError(f"{MALFORMED_CERTIFICATE}: negative serial number")
    return cert


def _find_extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _device_uri(san: x509.SubjectAlternativeName | None) -> tuple[str, str]:
    """Return (fleet, device_id) from the one spiffe URI SAN, or refuse.

    A URI whose scheme is ``spiffe`` (in any case) counts as an identity claim and must be
    exactly ``spiffe://<fleet>/device/<device_id>``; other URIs are ignored.
    """
    uris = [] if san is None else san.get_values_for_type(x509.UniformResourceIdentifier)
    claims = [u for u in uris if u[: len(_SPIFFE_SCHEME)].lower() == _SPIFFE_SCHEME]
    if not claims:
        raise IdentityError(f"{BAD_IDENTITY}: no spiffe:// URI SAN")
    if len(claims) > 1:
        raise IdentityError(f"{BAD_IDENTITY}: {len(claims)} spiffe:// URI SANs")
    match = _DEVICE_URI.fullmatch(claims[0])
    if match is None:
        raise IdentityError(f"{BAD_IDENTITY}: {claims[0]!r} is not a device identity URI")
    return match["fleet"], match["device_id"]


def _key_algorithm(cert: x509.Certificate) -> str:
    """Name the subject key's algorithm, or refuse keys a device may not use."""
    oid = cert.public_key_algorithm_oid
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise IdentityError(f"{UNSUPPORTED_KEY}: {oid.dotted_string}: {exc}") from exc
    if oid == PublicKeyAlgorithmOID.EC_PUBLIC_KEY and isinstance(key, ec.EllipticCurvePublicKey):
        name = _EC_CURVES.get(key.curve.name)
        if name is not None:
            return name
        raise IdentityError(f"{UNSUPPORTED_KEY}: EC curve {key.curve.name}")
    if oid == PublicKeyAlgorithmOID.ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if oid == PublicKeyAlgorithmOID.ED448 and isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if oid == PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5 and isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    raise IdentityError(f"{UNSUPPORTED_KEY}: {oid.dotted_string}")
