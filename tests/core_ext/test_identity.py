"""extract_identity: the compiled and the reference implementation, the same cases.

Every test taking ``core`` runs twice (see conftest.py). Expected values are computed here
from the ``cryptography`` objects the factory built, independently of both implementations.
"""

from __future__ import annotations

import base64
import datetime
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core_ext.compiled
import core_ext.reference
from tests.support import certs

TOO_LARGE = "certificate too large"
EMPTY = "empty certificate"
MALFORMED_PEM = "malformed PEM"
MALFORMED_CERTIFICATE = "malformed certificate"
CA_CERTIFICATE = "CA certificate used as a device certificate"
NOT_CLIENT_AUTH = "certificate is not valid for client authentication"
BAD_IDENTITY = "missing or malformed device identity"
CN_MISMATCH = "certificate common name does not match device identity"
UNSUPPORTED_KEY = "unsupported key algorithm"
PREFIXES = (
    TOO_LARGE,
    EMPTY,
    MALFORMED_PEM,
    MALFORMED_CERTIFICATE,
    CA_CERTIFICATE,
    NOT_CLIENT_AUTH,
    BAD_IDENTITY,
    CN_MISMATCH,
    UNSUPPORTED_KEY,
)
FIELDS = (
    "device_id",
    "fleet",
    "serial",
    "fingerprint",
    "not_before",
    "not_after",
    "key_algorithm",
)
FLEET = certs.DEFAULT_FLEET
DEVICE = "dev-0042"

# Hypothesis with the function-scoped `core` fixture: the fixture is a stateless module.
fuzz_settings = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def ca() -> certs.FleetCA:
    return certs.make_fleet_ca()


def fields_of(identity: object) -> tuple[object, ...]:
    return tuple(getattr(identity, name) for name in FIELDS)


def expected(
    cert: x509.Certificate, device_id: str, fleet: str, key_algorithm: str
) -> tuple[object, ...]:
    """The identity's fields, computed from the cryptography object."""
    return (
        device_id,
        fleet,
        format(cert.serial_number, "x"),
        cert.fingerprint(hashes.SHA256()).hex(),
        int(cert.not_valid_before_utc.timestamp()),
        int(cert.not_valid_after_utc.timestamp()),
        key_algorithm,
    )


def refusal(core: ModuleType, data: bytes) -> str:
    """The message ``extract_identity`` refuses ``data`` with (fails if it accepts it)."""
    with pytest.raises(core.IdentityError) as info:
        core.extract_identity(data)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def assert_refused(core: ModuleType, data: bytes, prefix: str) -> None:
    message = refusal(core, data)
    assert message.startswith(prefix), message


def outcome(core: ModuleType, data: bytes) -> tuple[object, ...]:
    """The fields of the identity, or the refusal's prefix; any other exception propagates."""
    try:
        return fields_of(core.extract_identity(data))
    except core.IdentityError as error:
        message = str(error)
        prefixes = [p for p in PREFIXES if message.startswith(p)]
        assert prefixes, f"unknown refusal {message!r}"
        return (prefixes[0],)


# --- valid device certificates -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "key_algorithm"),
    [
        ("ec-p256", "EC-P256"),
        ("ec-p384", "EC-P384"),
        ("ec-p521", "EC-P521"),
        ("ed25519", "Ed25519"),
        ("ed448", "Ed448"),
        ("rsa-2048", "RSA-2048"),
        ("rsa-3072", "RSA-3072"),
    ],
)
def test_valid_device_certificate_gives_expected_identity(
    core: ModuleType, ca: certs.FleetCA, key_type: certs.KeyType, key_algorithm: str
) -> None:
    device = certs.make_device_cert(ca, DEVICE, FLEET, key_type=key_type)
    identity = core.extract_identity(device.pem)
    assert isinstance(identity, core.DeviceIdentity)
    assert fields_of(identity) == expected(device.cert, DEVICE, FLEET, key_algorithm)


def test_pem_and_der_give_equal_identities(core: ModuleType, ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, DEVICE)
    from_pem = core.extract_identity(device.pem)
    from_der = core.extract_identity(device.der)
    assert from_pem == from_der
    assert hash(from_pem) == hash(from_der)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda pem: b"\n  \t" + pem, id="leading-whitespace"),
        pytest.param(lambda pem: pem.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda pem: pem.rstrip(b"\n"), id="no-final-newline"),
        pytest.param(lambda pem: pem + b"trailing text\n", id="trailing-text"),
        pytest.param(lambda pem: pem.replace(b"\n", b""), id="one-line"),
    ],
)
def test_pem_layout_variants_are_accepted(
    core: ModuleType, ca: certs.FleetCA, wrap: object
) -> None:
    device = certs.make_device_cert(ca, DEVICE)
    assert callable(wrap)
    text = wrap(device.pem)
    assert isinstance(text, bytes)
    assert fields_of(core.extract_identity(text)) == fields_of(core.extract_identity(device.der))


def test_only_the_first_pem_certificate_is_considered(core: ModuleType, ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, DEVICE)
    chain = device.pem + ca.pem
    assert core.extract_identity(chain).device_id == DEVICE
    assert_refused(core, ca.pem + device.pem, CA_CERTIFICATE)


def test_non_spiffe_sans_are_ignored(core: ModuleType, ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(
        ca,
        DEVICE,
        extra_sans=[
            x509.UniformResourceIdentifier("https://acme.example/devices/dev-0042"),
            x509.UniformResourceIdentifier("urn:uuid:7c9f2f7a-0b5c-4f0e-9a40-0d7c5d4c1e11"),
            x509.DNSName("dev-0042.devices.acme.example"),
        ],
    )
    assert core.extract_identity(device.der).device_id == DEVICE


def test_client_auth_alongside_other_purposes_is_accepted(
    core: ModuleType, ca: certs.FleetCA
) -> None:
    device = certs.make_device_cert(ca, DEVICE, eku=[certs.SERVER_AUTH, certs.CLIENT_AUTH])
    assert core.extract_identity(device.der).device_id == DEVICE


def test_certificate_without_basic_constraints_is_accepted(
    core: ModuleType, ca: certs.FleetCA
) -> None:
    device = certs.make_device_cert(ca, DEVICE, basic_constraints=False)
    assert core.extract_identity(device.der).device_id == DEVICE


@pytest.mark.parametrize(
    ("device_id", "fleet"),
    [
        ("a", "b"),
        ("0", "9"),
        ("A" * 128, "f" * 63),
        ("Dev_01.x-y", "fleet-1.example.org"),
        ("x" + "._-" * 42, "a.b"),
    ],
)
def test_identity_syntax_limits_are_accepted(
    core: ModuleType, ca: certs.FleetCA, device_id: str, fleet: str
) -> None:
    device = certs.make_device_cert(ca, device_id, fleet)
    identity = core.extract_identity(device.der)
    assert (identity.device_id, identity.fleet) == (device_id, fleet)


@pytest.mark.parametrize(
    ("serial", "expected_hex"),
    [(1, "1"), (0x10, "10"), (0x80, "80"), (0xFF00, "ff00"), (2**159 - 1, "7" + "f" * 39)],
)
def test_serial_is_lowercase_hex_without_leading_zeros(
    core: ModuleType, ca: certs.FleetCA, serial: int, expected_hex: str
) -> None:
    device = certs.make_device_cert(ca, DEVICE, serial=serial)
    assert core.extract_identity(device.der).serial == expected_hex


def test_zero_serial_is_reported_as_zero(core: ModuleType, ca: certs.FleetCA) -> None:
    der = certs.replace_serial(certs.make_device_cert(ca, DEVICE).der, b"\x00")
    assert core.extract_identity(der).serial == "0"


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        pytest.param(datetime.datetime(1999, 1, 1), datetime.datetime(2001, 1, 1), id="expired"),
        pytest.param(
            datetime.datetime(2090, 1, 1), datetime.datetime(2091, 1, 1), id="not-yet-valid"
        ),
        pytest.param(datetime.datetime(1960, 6, 1), datetime.datetime(2060, 6, 1), id="wide"),
    ],
)
def test_validity_dates_are_reported_not_checked(
    core: ModuleType,
    ca: certs.FleetCA,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> None:
    device = certs.make_device_cert(
        ca,
        DEVICE,
        not_before=not_before.replace(tzinfo=datetime.UTC),
        not_after=not_after.replace(tzinfo=datetime.UTC),
    )
    identity = core.extract_identity(device.der)
    assert identity.not_before == int(not_before.replace(tzinfo=datetime.UTC).timestamp())
    assert identity.not_after == int(not_after.replace(tzinfo=datetime.UTC).timestamp())


def test_signature_chain_is_not_checked(core: ModuleType, ca: certs.FleetCA) -> None:
    other_ca = certs.make_fleet_ca("other.example")
    device = certs.make_device_cert(other_ca, DEVICE)
    corrupted = device.der[:-1] + bytes([device.der[-1] ^ 0x01])  # last signature byte
    assert core.extract_identity(device.der).device_id == DEVICE
    assert core.extract_identity(corrupted).device_id == DEVICE


def test_ec_point_encodings_openssl_accepts_are_accepted(
    core: ModuleType, ca: certs.FleetCA
) -> None:
    der = certs.make_device_cert(ca, DEVICE).der
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    compressed = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    uncompressed = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    hybrid = bytes([6 | (uncompressed[-1] & 1)]) + uncompressed[1:]
    for point in (compressed, hybrid):
        crafted = certs.replace_spki(der, certs.ec_spki("P-256", point))
        assert core.extract_identity(crafted).key_algorithm == "EC-P256"


def test_rsa_key_size_is_the_modulus_bit_length(core: ModuleType, ca: certs.FleetCA) -> None:
    der = certs.make_device_cert(ca, DEVICE).der
    modulus = (1 << 2046) | 0xF00D  # 2047 bits
    crafted = certs.replace_spki(der, certs.rsa_spki(modulus, 65537))
    assert core.extract_identity(crafted).key_algorithm == "RSA-2047"


# --- DeviceIdentity ------------------------------------------------------------------------


def test_identity_is_immutable(core: ModuleType, ca: certs.FleetCA) -> None:
    identity = core.extract_identity(certs.make_device_cert(ca, DEVICE).der)
    for name in FIELDS:
        with pytest.raises(AttributeError):
            setattr(identity, name, getattr(identity, name))


def test_identity_equality_and_hash_cover_every_field(core: ModuleType) -> None:
    values: dict[str, object] = {
        "device_id": "dev-1",
        "fleet": "acme.example",
        "serial": "1",
        "fingerprint": "ab" * 32,
        "not_before": 0,
        "not_after": 1,
        "key_algorithm": "Ed25519",
    }
    identity = core.DeviceIdentity(**values)
    assert identity == core.DeviceIdentity(**values)
    assert hash(identity) == hash(core.DeviceIdentity(**values))
    assert identity != "dev-1"
    for name in FIELDS:
        value = values[name]
        changed = dict(values, **{name: value + 1 if isinstance(value, int) else f"{value}x"})
        assert core.DeviceIdentity(**changed) != identity, name
    assert len({identity, core.DeviceIdentity(**values)}) == 1


def test_identity_repr_is_readable(core: ModuleType, ca: certs.FleetCA) -> None:
    identity = core.extract_identity(certs.make_device_cert(ca, DEVICE).der)
    text = repr(identity)
    assert text.startswith("DeviceIdentity(device_id='dev-0042', fleet='acme.example', ")
    assert f"fingerprint='{identity.fingerprint}'" in text
    assert "key_algorithm='EC-P256')" in text


def test_both_implementations_have_the_same_repr(ca: certs.FleetCA) -> None:
    der = certs.make_device_cert(ca, DEVICE).der
    compiled = core_ext.compiled.extract_identity(der)
    reference = core_ext.reference.extract_identity(der)
    assert repr(compiled) == repr(reference)


def test_identity_error_is_a_value_error(core: ModuleType) -> None:
    assert issubclass(core.IdentityError, ValueError)


@pytest.mark.parametrize("data", ["-----BEGIN CERTIFICATE-----", bytearray(b"0"), None, 42])
def test_non_bytes_input_is_a_type_error(core: ModuleType, data: object) -> None:
    with pytest.raises(TypeError):
        core.extract_identity(data)


# --- refusals, in check order --------------------------------------------------------------


def test_certificate_too_large_is_refused(core: ModuleType, ca: certs.FleetCA) -> None:
    assert_refused(core, b"\x30" * 16385, TOO_LARGE)
    # Size is checked first: a valid certificate padded past the limit is refused too.
    padded = certs.make_device_cert(ca, DEVICE).pem + b" " * 16384
    assert_refused(core, padded, TOO_LARGE)


def test_certificate_at_the_size_limit_is_parsed(core: ModuleType, ca: certs.FleetCA) -> None:
    assert_refused(core, b"\x30" * 16384, MALFORMED_CERTIFICATE)
    pem = certs.make_device_cert(ca, DEVICE).pem
    padded = pem + b"#" * (16384 - len(pem))
    assert core.extract_identity(padded).device_id == DEVICE


def test_empty_certificate_is_refused(core: ModuleType) -> None:
    assert_refused(core, b"", EMPTY)


def _pem_body(pem: bytes) -> bytes:
    return b"".join(pem.splitlines()[1:-1])


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda pem: pem.replace(b"-----END CERTIFICATE-----", b""), id="no-end"),
        pytest.param(lambda pem: pem.replace(b"CERTIFICATE", b"PRIVATE KEY"), id="other-label"),
        pytest.param(lambda pem: pem.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CRL"), id="crl"),
        pytest.param(lambda pem: b"-----BEGIN CERTIFICATE-----\n", id="header-only"),
        pytest.param(
            lambda pem: b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", id="empty"
        ),
        pytest.param(lambda pem: pem[:40] + b"*" + pem[41:], id="bad-character"),
        pytest.param(lambda pem: pem[:40] + b"=" + pem[41:], id="padding-inside"),
        pytest.param(lambda pem: pem.replace(b"-----END", b"A-----END"), id="wrong-length"),
        pytest.param(
            lambda pem: pem.replace(
                b"-----BEGIN CERTIFICATE-----\n",
                b"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n",
            ),
            id="headers",
        ),
        pytest.param(
            lambda pem: b"-----BEGIN CERTIFICATE-----\nQR==\n-----END CERTIFICATE-----\n",
            id="non-canonical-padding-bits",
        ),
        pytest.param(lambda pem: pem.replace(b"-----BEGIN", b"-----begin"), id="lowercase"),
        pytest.param(lambda pem: b"-----" + b"x" * 100, id="dashes-only"),
    ],
)
def test_malformed_pem_is_refused(core: ModuleType, ca: certs.FleetCA, mangle: object) -> None:
    pem = certs.make_device_cert(ca, DEVICE).pem
    assert callable(mangle)
    data = mangle(pem)
    assert isinstance(data, bytes)
    assert_refused(core, data, MALFORMED_PEM)


def test_pem_with_missing_base64_padding_is_refused(core: ModuleType, ca: certs.FleetCA) -> None:
    der = certs.make_device_cert(ca, DEVICE).der
    der += b"\x00" * ((3 - len(der) % 3) % 3 + 1)  # make padding necessary
    body = base64.b64encode(der).rstrip(b"=")
    pem = b"-----BEGIN CERTIFICATE-----\n" + body + b"\n-----END CERTIFICATE-----\n"
    assert_refused(core, pem, MALFORMED_PEM)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda der: der + b"\x00", id="trailing-byte"),
        pytest.param(lambda der: der + der, id="two-certificates"),
        pytest.param(lambda der: der[:-1], id="truncated"),
        pytest.param(lambda der: der[:100], id="cut-in-tbs"),
        pytest.param(lambda der: b"\x00" * 64, id="zeros"),
        pytest.param(lambda der: b"not a certificate at all", id="text"),
        pytest.param(lambda der: b"\x30\x80" + der[2:], id="indefinite-length"),
        pytest.param(lambda der: b"\x30\x00", id="empty-sequence"),
        pytest.param(lambda der: b"\x31" + der[1:], id="set-instead-of-sequence"),
    ],
)
def test_malformed_der_is_refused(core: ModuleType, ca: certs.FleetCA, mangle: object) -> None:
    der = certs.make_device_cert(ca, DEVICE).der
    assert callable(mangle)
    data = mangle(der)
    assert isinstance(data, bytes)
    assert_refused(core, data, MALFORMED_CERTIFICATE)
    assert_refused(core, certs.to_pem(data), MALFORMED_CERTIFICATE)


@pytest.mark.parametrize(
    "serial_content",
    [
        pytest.param(b"\xff", id="minus-one"),
        pytest.param(b"\x80\x00", id="negative"),
        pytest.param(b"\x00\x01", id="non-minimal"),
        pytest.param(b"", id="empty"),
    ],
)
def test_invalid_serial_is_malformed(
    core: ModuleType, ca: certs.FleetCA, serial_content: bytes
) -> None:
    der = certs.replace_serial(certs.make_device_cert(ca, DEVICE).der, serial_content)
    assert_refused(core, der, MALFORMED_CERTIFICATE)


@pytest.mark.parametrize(
    "version",
    [
        pytest.param(b"\xa0\x03\x02\x01\x00", id="v1-encoded"),
        pytest.param(b"\xa0\x03\x02\x01\x01", id="v2"),
        pytest.param(b"\xa0\x03\x02\x01\x03", id="v4"),
    ],
)
def test_unknown_or_non_der_version_is_malformed(
    core: ModuleType, ca: certs.FleetCA, version: bytes
) -> None:
    der = certs.make_device_cert(ca, DEVICE).der
    crafted = certs.replace_tbs_field(der, certs.TbsField.VERSION, version)
    assert_refused(core, crafted, MALFORMED_CERTIFICATE)


def test_duplicate_extension_is_malformed(core: ModuleType, ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, DEVICE)
    der, extensions = device.der, device.cert.extensions
    eku = next(e for e in extensions if e.oid == ExtensionOID.EXTENDED_KEY_USAGE)
    eku_der = certs.encode_tlv(
        0x30,
        certs.encode_oid(eku.oid.dotted_string) + certs.encode_tlv(0x04, eku.value.public_bytes()),
    )
    tbs_extensions = certs.encode_tlv(
        0xA3,
        certs.encode_tlv(
            0x30,
            b"".join(
                certs.encode_tlv(
                    0x30,
                    certs.encode_oid(e.oid.dotted_string)
                    + (certs.encode_tlv(0x01, b"\xff") if e.critical else b"")
                    + certs.encode_tlv(0x04, e.value.public_bytes()),
                )
                for e in extensions
            )
            + eku_der,
        ),
    )
    crafted = certs.replace_tbs_field(der, certs.TbsField.EXTENSIONS, tbs_extensions)
    assert_refused(core, crafted, MALFORMED_CERTIFICATE)


def test_ca_certificate_used_as_leaf_is_refused(core: ModuleType, ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, DEVICE, ca_flag=True)
    assert_refused(core, device.pem, CA_CERTIFICATE)
    assert_refused(core, ca.pem, CA_CERTIFICATE)


@pytest.mark.parametrize(
    "eku",
    [
        pytest.param(None, id="no-extension"),
        pytest.param([certs.SERVER_AUTH], id="server-auth-only"),
        pytest.param([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], id="any-only"),
        pytest.param([ExtendedKeyUsageOID.CODE_SIGNING], id="code-signing"),
    ],
)
def test_certificate_not_for_client_auth_is_refused(
    core: ModuleType, ca: certs.FleetCA, eku: list[x509.ObjectIdentifier] | None
) -> None:
    device = certs.make_device_cert(ca, DEVICE, eku=eku)
    assert_refused(core, device.der, NOT_CLIENT_AUTH)


def _uri(text: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(text)


@pytest.mark.parametrize(
    ("identity_sans", "extra_sans"),
    [
        pytest.param([], [], id="no-uri"),
        pytest.param([], [x509.DNSName("dev-0042.acme.example")], id="dns-only"),
        pytest.param(["https://acme.example/device/dev-0042"], [], id="https-only"),
        pytest.param([certs.spiffe_uri(FLEET, DEVICE)] * 2, [], id="same-uri-twice"),
        pytest.param(
            [certs.spiffe_uri(FLEET, DEVICE), certs.spiffe_uri(FLEET, "dev-0043")],
            [],
            id="two-devices",
        ),
        pytest.param(
            [certs.spiffe_uri(FLEET, DEVICE), "spiffe://acme.example/service/api"],
            [],
            id="device-and-workload",
        ),
        pytest.param(["spiffe://acme.example/service/dev-0042"], [], id="not-device-path"),
        pytest.param(["spiffe://acme.example/device/"], [], id="empty-device-id"),
        pytest.param(["spiffe:///device/dev-0042"], [], id="empty-fleet"),
        pytest.param(["spiffe://Acme.example/device/dev-0042"], [], id="uppercase-fleet"),
        pytest.param(["spiffe://-acme.example/device/dev-0042"], [], id="fleet-leading-dash"),
        pytest.param(["spiffe://acme.example./device/dev-0042"], [], id="fleet-trailing-dot"),
        pytest.param([f"spiffe://{'f' * 64}/device/dev-0042"], [], id="fleet-too-long"),
        pytest.param(["spiffe://acme_example/device/dev-0042"], [], id="fleet-underscore"),
        pytest.param(["spiffe://acme.example:443/device/dev-0042"], [], id="port"),
        pytest.param(["spiffe://acme.example/device/.dev"], [], id="id-leading-dot"),
        pytest.param(["spiffe://acme.example/device/dev/0042"], [], id="id-with-slash"),
        pytest.param(["spiffe://acme.example/device/dev-0042/"], [], id="trailing-slash"),
        pytest.param(["spiffe://acme.example/device/dev-0042?x=1"], [], id="query"),
        pytest.param([f"spiffe://acme.example/device/{'d' * 129}"], [], id="id-too-long"),
        pytest.param(["SPIFFE://acme.example/device/dev-0042"], [], id="uppercase-scheme"),
        pytest.param(
            [certs.spiffe_uri(FLEET, DEVICE), "Spiffe://acme.example/device/dev-0042"],
            [],
            id="second-claim-mixed-case-scheme",
        ),
        pytest.param(["spiffe://acme.example/devices/dev-0042"], [], id="devices"),
    ],
)
def test_missing_or_malformed_device_identity_is_refused(
    core: ModuleType,
    ca: certs.FleetCA,
    identity_sans: list[str],
    extra_sans: list[x509.GeneralName],
) -> None:
    device = certs.make_device_cert(
        ca,
        DEVICE,
        identity_sans=identity_sans,
        extra_sans=extra_sans,
        san=bool(identity_sans or extra_sans),  # an empty SAN extension cannot be built
    )
    assert_refused(core, device.der, BAD_IDENTITY)


@pytest.mark.parametrize(
    "cn",
    [
        pytest.param(None, id="missing"),
        pytest.param("dev-0043", id="other-device"),
        pytest.param("DEV-0042", id="case"),
        pytest.param("dev-0042 ", id="trailing-space"),
        pytest.param("spiffe://acme.example/device/dev-0042", id="uri"),
    ],
)
def test_common_name_mismatch_is_refused(
    core: ModuleType, ca: certs.FleetCA, cn: str | None
) -> None:
    device = certs.make_device_cert(ca, DEVICE, cn=cn)
    assert_refused(core, device.der, CN_MISMATCH)


def test_two_common_names_are_refused(core: ModuleType, ca: certs.FleetCA) -> None:
    device = certs.make_device_cert(ca, DEVICE, extra_subject=[certs.common_name(DEVICE)])
    assert_refused(core, device.der, CN_MISMATCH)


@pytest.mark.parametrize("key_type", certs.UNSUPPORTED_KEY_TYPES)
def test_unsupported_key_algorithm_is_refused(
    core: ModuleType, ca: certs.FleetCA, key_type: certs.KeyType
) -> None:
    device = certs.make_device_cert(ca, DEVICE, key_type=key_type)
    assert_refused(core, device.der, UNSUPPORTED_KEY)


@pytest.mark.parametrize(
    "public_key_info",
    [
        pytest.param(certs.rsa_spki((1 << 2047) | 1, 65538), id="rsa-even-exponent"),
        pytest.param(certs.rsa_spki((1 << 2047) | 1, 1), id="rsa-exponent-one"),
        pytest.param(certs.rsa_spki(65537, 65537), id="rsa-exponent-not-below-modulus"),
        pytest.param(certs.ec_spki("P-256", b"\x04" + b"\x01" * 64), id="ec-off-curve"),
        pytest.param(certs.ec_spki("P-256", b"\x00"), id="ec-infinity"),
        pytest.param(certs.ec_spki("P-384", b"\x04" + b"\x01" * 64), id="ec-wrong-length"),
        pytest.param(certs.spki(certs.ED25519, b"\x01" * 31), id="ed25519-short"),
        pytest.param(
            certs.spki(certs.EC_PUBLIC_KEY, b"\x04" + b"\x01" * 64, certs.encode_tlv(0x05, b"")),
            id="ec-no-named-curve",
        ),
        pytest.param(
            certs.spki(
                certs.EC_PUBLIC_KEY, b"\x04" + b"\x01" * 64, certs.encode_oid("1.3.132.0.10")
            ),
            id="secp256k1",
        ),
        pytest.param(certs.spki("1.2.840.113549.1.1.10", b"\x30\x00"), id="rsa-pss"),
    ],
)
def test_invalid_or_unsupported_public_key_is_refused(
    core: ModuleType, ca: certs.FleetCA, public_key_info: bytes
) -> None:
    der = certs.make_device_cert(ca, DEVICE).der
    assert_refused(core, certs.replace_spki(der, public_key_info), UNSUPPORTED_KEY)


def test_check_order(core: ModuleType, ca: certs.FleetCA) -> None:
    everything_wrong = {
        "key_type": "x25519",
        "cn": "someone-else",
        "identity_sans": ["spiffe://Bad/device/x"],
        "eku": None,
        "ca_flag": True,
    }
    order = [
        ("ca_flag", CA_CERTIFICATE),
        ("eku", NOT_CLIENT_AUTH),
        ("identity_sans", BAD_IDENTITY),
        ("cn", CN_MISMATCH),
        ("key_type", UNSUPPORTED_KEY),
    ]
    for index, (_, prefix) in enumerate(order):
        faults = {name: everything_wrong[name] for name, _ in order[index:]}
        device = certs.make_device_cert(ca, DEVICE, **faults)  # type: ignore[arg-type]
        assert_refused(core, device.der, prefix)
    device = certs.make_device_cert(ca, DEVICE, ca_flag=True)
    assert_refused(core, device.pem + b"\x00" * 16384, TOO_LARGE)
    assert_refused(core, device.der + b"\x00", MALFORMED_CERTIFICATE)


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048", "ed25519"])
def test_truncated_der_is_refused_at_every_cut(
    core: ModuleType, ca: certs.FleetCA, key_type: certs.KeyType
) -> None:
    der = certs.make_device_cert(ca, DEVICE, key_type=key_type).der
    assert_refused(core, der[:0], EMPTY)
    for cut in range(1, len(der)):
        assert_refused(core, der[:cut], MALFORMED_CERTIFICATE)


def test_truncated_pem_never_crashes(core: ModuleType, ca: certs.FleetCA) -> None:
    pem = certs.make_device_cert(ca, DEVICE).pem
    for cut in range(len(pem.rstrip(b"\n"))):  # every cut before the END line is complete
        assert len(outcome(core, pem[:cut])) == 1, cut


@fuzz_settings
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_refused(core: ModuleType, data: bytes) -> None:
    assert len(outcome(core, data)) == 1


@fuzz_settings
@given(body=st.binary(max_size=1024), tail=st.sampled_from([b"", b"\n-----END CERTIFICATE-----"]))
def test_random_pem_bodies_are_refused(core: ModuleType, body: bytes, tail: bytes) -> None:
    data = b"-----BEGIN CERTIFICATE-----\n" + base64.b64encode(body) + tail
    assert len(outcome(core, data)) == 1


@pytest.fixture(scope="module")
def mutation_bases(ca: certs.FleetCA) -> dict[str, bytes]:
    """One valid device certificate (DER) per key type, to corrupt."""
    key_types: list[certs.KeyType] = ["ec-p256", "rsa-2048", "ed25519"]
    return {k: certs.make_device_cert(ca, DEVICE, key_type=k).der for k in key_types}


@fuzz_settings
@given(
    key_type=st.sampled_from(["ec-p256", "rsa-2048", "ed25519"]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4
    ),
)
def test_corrupted_certificates_never_crash(
    core: ModuleType,
    mutation_bases: dict[str, bytes],
    key_type: str,
    edits: list[tuple[int, int]],
) -> None:
    data = bytearray(mutation_bases[key_type])
    for position, value in edits:
        data[position % len(data)] = value
    outcome(core, bytes(data))  # an identity or a known refusal, nothing else


# --- both implementations agree --------------------------------------------------------------

device_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", fullmatch=True)
fleets = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?", fullmatch=True)
instants = st.datetimes(
    min_value=datetime.datetime(1950, 1, 1),
    max_value=datetime.datetime(9999, 12, 31),
    timezones=st.just(datetime.UTC),
).map(lambda t: t.replace(microsecond=0))


@settings(max_examples=60, deadline=None)
@given(
    device_id=device_ids,
    fleet=fleets,
    key_type=st.sampled_from(["ec-p256", "ec-p384", "ec-p521", "ed25519", "ed448", "rsa-2048"]),
    serial=st.integers(min_value=1, max_value=2**159 - 1),
    dates=st.tuples(instants, instants).filter(lambda d: d[0] != d[1]),
    extra_uri=st.booleans(),
    as_pem=st.booleans(),
)
def test_implementations_agree_on_random_valid_certificates(
    ca: certs.FleetCA,
    device_id: str,
    fleet: str,
    key_type: certs.KeyType,
    serial: int,
    dates: tuple[datetime.datetime, datetime.datetime],
    extra_uri: bool,
    as_pem: bool,
) -> None:
    extra: list[x509.GeneralName] = [_uri("https://example.com/x")] if extra_uri else []
    device = certs.make_device_cert(
        ca,
        device_id,
        fleet,
        key_type=key_type,
        serial=serial,
        not_before=min(dates),
        not_after=max(dates),
        extra_sans=extra,
    )
    data = device.pem if as_pem else device.der
    compiled = fields_of(core_ext.compiled.extract_identity(data))
    reference = fields_of(core_ext.reference.extract_identity(data))
    assert compiled == reference
    assert compiled == expected(device.cert, device_id, fleet, certs.SUPPORTED_KEY_TYPES[key_type])


@settings(max_examples=300, deadline=None)
@given(
    key_type=st.sampled_from(["ec-p256", "rsa-2048", "ed25519"]),
    in_uri=st.booleans(),
    offset=st.integers(min_value=0),
    value=st.integers(0, 255),
)
def test_implementations_agree_when_identity_bytes_are_corrupted(
    mutation_bases: dict[str, bytes], key_type: str, in_uri: bool, offset: int, value: int
) -> None:
    """One byte of the subject CN or of the spiffe URI changed: both give the same answer."""
    base = mutation_bases[key_type]
    target = certs.spiffe_uri(FLEET, DEVICE).encode() if in_uri else DEVICE.encode()
    start = base.index(target)  # the subject CN comes before the SAN extension
    data = bytearray(base)
    data[start + offset % len(target)] = value
    compiled = outcome(core_ext.compiled, bytes(data))
    reference = outcome(core_ext.reference, bytes(data))
    assert compiled == reference


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30" * 16385, id="too-large"),
        pytest.param(b"-----BEGIN CERTIFICATE-----\n", id="pem"),
        pytest.param(b"\x30\x03\x02\x01\x01", id="der"),
    ],
)
def test_implementations_agree_on_refusal_messages(data: bytes) -> None:
    compiled = refusal(core_ext.compiled, data)
    reference = refusal(core_ext.reference, data)
    assert compiled.split(":")[0] == reference.split(":")[0]
