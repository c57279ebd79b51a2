"""A typed certificate factory for tests: a fleet CA, device certificates, malformed variants.

Everything is built with ``cryptography``. Device certificates are signed by the fleet CA, but
identity extraction never checks signatures, so the DER helpers below may rewrite a signed
certificate (serial number, trailing bytes, truncation) without re-signing it.
"""

from __future__ import annotations

import base64
import datetime
import enum
import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal[
    "ec-p256",
    "ec-p384",
    "ec-p521",
    "ed25519",
    "ed448",
    "rsa-1024",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    # Not accepted as device keys:
    "ec-secp256k1",
    "ec-brainpoolp256r1",
    "dsa-2048",
    "x25519",
    "x448",
]
KEY_TYPES: tuple[KeyType, ...] = get_args(KeyType)
SUPPORTED_KEY_TYPES: dict[KeyType, str] = {
    "ec-p256": "EC-P256",
    "ec-p384": "EC-P384",
    "ec-p521": "EC-P521",
    "ed25519": "Ed25519",
    "ed448": "Ed448",
    "rsa-1024": "RSA-1024",
    "rsa-2048": "RSA-2048",
    "rsa-3072": "RSA-3072",
    "rsa-4096": "RSA-4096",
}
UNSUPPORTED_KEY_TYPES: tuple[KeyType, ...] = tuple(
    k for k in KEY_TYPES if k not in SUPPORTED_KEY_TYPES
)

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | rsa.RSAPrivateKey
    | dsa.DSAPrivateKey
    | x25519.X25519PrivateKey
    | x448.X448PrivateKey
)
SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH

DEFAULT_FLEET = "acme.example"
DEFAULT_NOT_BEFORE = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
DEFAULT_NOT_AFTER = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class _Default(enum.Enum):
    """Sentinel type: "use the default" where ``None`` already means "leave it out"."""

    TOKEN = enum.auto()


DEFAULT_CN: Final = _Default.TOKEN
"""``make_device_cert(cn=DEFAULT_CN)``: the CN is the device id."""


@dataclass(frozen=True, slots=True)
class FleetCA:
    """A self-signed fleet certificate authority."""

    key: SigningKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        """The CA certificate as DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class DeviceCert:
    """A device certificate and its private key."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        """The certificate as DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """The certificate as PEM (what grpc's ``x509_pem_cert`` carries)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


@functools.cache
def _rsa_key(bits: int, index: int) -> rsa.RSAPrivateKey:
    """RSA generation is slow: tests share a small pool of keys per size."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def _dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=2048)


def make_key(key_type: KeyType, *, pool_index: int = 0) -> PrivateKey:
    """A new private key of ``key_type`` (RSA and DSA keys come from a cached pool)."""
    if key_type.startswith("rsa-"):
        return _rsa_key(int(key_type.removeprefix("rsa-")), pool_index % 4)
    match key_type:
        case "ec-p256":
            return ec.generate_private_key(ec.SECP256R1())
        case "ec-p384":
            return ec.generate_private_key(ec.SECP384R1())
        case "ec-p521":
            return ec.generate_private_key(ec.SECP521R1())
        case "ec-secp256k1":
            return ec.generate_private_key(ec.SECP256K1())
        case "ec-brainpoolp256r1":
            return ec.generate_private_key(ec.BrainpoolP256R1())
        case "ed25519":
            return ed25519.Ed25519PrivateKey.generate()
        case "ed448":
            return ed448.Ed448PrivateKey.generate()
        case "dsa-2048":
            return _dsa_key()
        case "x25519":
            return x25519.X25519PrivateKey.generate()
        case "x448":
            return x448.X448PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}")


def common_name(value: str) -> x509.NameAttribute[str]:
    """A CN attribute; device ids may be longer than the 64 characters X.520 suggests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x509.NameAttribute(NameOID.COMMON_NAME, value, _validate=False)


def spiffe_uri(fleet: str, device_id: str) -> str:
    """The identity URI SAN of a device: ``spiffe://<fleet>/device/<device_id>``."""
    return f"spiffe://{fleet}/device/{device_id}"


def make_fleet_ca(fleet: str = DEFAULT_FLEET) -> FleetCA:
    """A self-signed P-256 fleet CA, as a real fleet would use to issue device certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, fleet),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{fleet} device CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2034, 1, 1, tzinfo=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return FleetCA(key=key, cert=cert)


def make_device_cert(
    ca: FleetCA,
    device_id: str,
    fleet: str = DEFAULT_FLEET,
    *,
    key_type: KeyType = "ec-p256",
    key: PrivateKey | None = None,
    ca_flag: bool = False,
    basic_constraints: bool = True,
    eku: Sequence[x509.ObjectIdentifier] | None = (CLIENT_AUTH,),
    cn: str | Literal[_Default.TOKEN] | None = DEFAULT_CN,
    extra_subject: Sequence[x509.NameAttribute[str]] = (),
    identity_sans: Sequence[str] | None = None,
    extra_sans: Sequence[x509.GeneralName] = (),
    san: bool = True,
    serial: int | None = None,
    not_before: datetime.datetime = DEFAULT_NOT_BEFORE,
    not_after: datetime.datetime = DEFAULT_NOT_AFTER,
) -> DeviceCert:
    """A device certificate issued by ``ca``; every keyword makes one kind of variant.

    - ``key_type``/``key``: the device key (``key`` wins when given).
    - ``ca_flag``: basicConstraints cA=TRUE; ``basic_constraints=False`` leaves it out.
    - ``eku``: the extendedKeyUsage purposes; ``None`` leaves the extension out.
    - ``cn``: the subject CN (default: ``device_id``); ``None`` leaves it out.
    - ``identity_sans``: the URI SANs standing for the identity (default: the one spiffe URI);
      ``extra_sans`` are added after them; ``san=False`` leaves the SAN extension out.
    - ``serial``: a positive serial number (default: random).
    """
    if key is None:
        key = make_key(key_type)
    subject: list[x509.NameAttribute[str]] = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, fleet)]
    subject.extend(extra_subject)
    if cn is DEFAULT_CN:
        subject.append(common_name(device_id))
    elif isinstance(cn, str):
        subject.append(common_name(cn))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san:
        uris = [spiffe_uri(fleet, device_id)] if identity_sans is None else list(identity_sans)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        names.extend(extra_sans)
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return DeviceCert(key=key, cert=cert)


# --- PEM and DER surgery -------------------------------------------------------------------


def to_pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    """Armour ``der`` as PEM with 64-column base64 lines."""
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    body = "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])
    return body.encode("ascii")


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read the DER header at ``pos``: return (tag, content start, content end)."""
    tag = data[pos]
    first = data[pos + 1]
    if first < 0x80:
        return tag, pos + 2, pos + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
    start = pos + 2 + count
    return tag, start, start + length


def encode_tlv(tag: int, content: bytes) -> bytes:
    """DER-encode one TLV."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


class TbsField(enum.IntEnum):
    """The fields of a v3 TBSCertificate, in order (the explicit version is field 0)."""

    VERSION = 0
    SERIAL = 1
    SIGNATURE = 2
    ISSUER = 3
    VALIDITY = 4
    SUBJECT = 5
    SUBJECT_PUBLIC_KEY_INFO = 6
    EXTENSIONS = 7


def replace_tbs_field(der: bytes, field: TbsField, tlv: bytes) -> bytes:
    """Re-encode the v3 certificate ``der`` with one TBS field replaced by ``tlv``.

    The signature is kept as it was: identity extraction never checks it.
    """
    _, cert_start, cert_end = _read_tlv(der, 0)
    tbs_tag, tbs_start, tbs_end = _read_tlv(der, cert_start)
    fields: list[bytes] = []
    pos = tbs_start
    while pos < tbs_end:
        end = _read_tlv(der, pos)[2]
        fields.append(der[pos:end])
        pos = end
    fields[field] = tlv
    tbs = encode_tlv(tbs_tag, b"".join(fields))
    return encode_tlv(0x30, tbs + der[tbs_end:cert_end])


def replace_serial(der: bytes, content: bytes) -> bytes:
    """Replace the serial INTEGER's content octets: makes zero, negative or non-minimal serials,
    which ``CertificateBuilder`` refuses to build."""
    return replace_tbs_field(der, TbsField.SERIAL, encode_tlv(0x02, content))


def serial_content(value: int) -> bytes:
    """The minimal two's-complement content octets of an INTEGER."""
    length = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return value.to_bytes(length, "big", signed=True)


def encode_oid(dotted: str) -> bytes:
    """DER-encode an OBJECT IDENTIFIER (the whole TLV)."""
    arcs = [int(a) for a in dotted.split(".")]
    content = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        content.extend(reversed(chunk))
    return encode_tlv(0x06, bytes(content))


EC_PUBLIC_KEY = "1.2.840.10045.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
ED25519 = "1.3.101.112"
CURVE_OIDS = {"P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34", "P-521": "1.3.132.0.35"}


def spki(algorithm: str, key: bytes, parameters: bytes | None = None) -> bytes:
    """A SubjectPublicKeyInfo TLV: ``algorithm`` (dotted OID), optional ``parameters`` TLV."""
    algorithm_identifier = encode_oid(algorithm) + (parameters or b"")
    return encode_tlv(
        0x30, encode_tlv(0x30, algorithm_identifier) + encode_tlv(0x03, b"\x00" + key)
    )


def rsa_spki(modulus: int, exponent: int) -> bytes:
    """An rsaEncryption SubjectPublicKeyInfo with any modulus and exponent."""
    key = encode_tlv(
        0x30,
        encode_tlv(0x02, serial_content(modulus)) + encode_tlv(0x02, serial_content(exponent)),
    )
    return spki(RSA_ENCRYPTION, key, encode_tlv(0x05, b""))


def ec_spki(curve: str, point: bytes) -> bytes:
    """An id-ecPublicKey SubjectPublicKeyInfo on a named curve, with any point encoding."""
    return spki(EC_PUBLIC_KEY, point, encode_oid(CURVE_OIDS[curve]))


def replace_spki(der: bytes, new_spki: bytes) -> bytes:
    """``der`` with its SubjectPublicKeyInfo replaced (signature kept)."""
    return replace_tbs_field(der, TbsField.SUBJECT_PUBLIC_KEY_INFO, new_spki)
