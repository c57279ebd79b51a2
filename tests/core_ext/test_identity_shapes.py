"""extract_identity on certificate shapes around the compiled fast path's edges.

The compiled implementation reads certificates in the shape fleetd's CA issues (v3, single
-valued string names, the six extensions the CA writes) straight from the DER, and hands
everything else to its full parser. Both must give the same answer; these tests sit on
either side of that line and expect, on both implementations, exactly the identity computed
from the ``cryptography`` object or the same refusal.
"""

from __future__ import annotations

import datetime as dt
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

import core_ext.compiled
import core_ext.reference
from fleetd.services.pki import CertificateAuthority
from tests.support import certs

FLEET = certs.DEFAULT_FLEET
DEVICE = "dev-0042"
MALFORMED_CERTIFICATE = "malformed certificate"


@pytest.fixture(scope="module")
def ca() -> certs.FleetCA:
    return certs.make_fleet_ca()


def fields(identity: object) -> tuple[object, ...]:
    names = ("device_id", "fleet", "serial", "fingerprint", "not_before", "not_after")
    return tuple(getattr(identity, name) for name in names)


def expected(der: bytes) -> tuple[object, ...]:
    cert = x509.load_der_x509_certificate(der)
    return (
        DEVICE,
        FLEET,
        format(cert.serial_number, "x"),
        cert.fingerprint(hashes.SHA256()).hex(),
        int(cert.not_valid_before_utc.timestamp()),
        int(cert.not_valid_after_utc.timestamp()),
    )


def tlv(tag: int, content: bytes) -> bytes:
    return certs.encode_tlv(tag, content)


def attribute(oid: str, tag: int, value: bytes) -> bytes:
    return tlv(0x30, certs.encode_oid(oid) + tlv(tag, value))


def name(*rdns: list[bytes]) -> bytes:
    """A Name from RDNs given as lists of encoded attributes (DER SET OF: sorted)."""
    return tlv(0x30, b"".join(tlv(0x31, b"".join(sorted(rdn))) for rdn in rdns))


ORGANIZATION = "2.5.4.10"
COMMON_NAME = "2.5.4.3"
UTF8, PRINTABLE, IA5, BMP = 0x0C, 0x13, 0x16, 0x1E


def extension(oid: str, value: bytes, *, critical: bool = False) -> bytes:
    flag = tlv(0x01, b"\xff") if critical else b""
    return tlv(0x30, certs.encode_oid(oid) + flag + tlv(0x04, value))


def with_extensions(der: bytes, *encoded: bytes) -> bytes:
    """``der`` with its extensions replaced by ``encoded`` ones, in that order."""
    field = tlv(0xA3, tlv(0x30, b"".join(encoded)))
    return certs.replace_tbs_field(der, certs.TbsField.EXTENSIONS, field)


def standard_extensions(device: certs.DeviceCert) -> dict[str, bytes]:
    """The device certificate's own extensions, encoded, by dotted OID."""
    return {
        e.oid.dotted_string: extension(
            e.oid.dotted_string, e.value.public_bytes(), critical=e.critical
        )
        for e in device.cert.extensions
    }


# --- shapes --------------------------------------------------------------------------------


def _fleet_ca_issued() -> bytes:
    """A certificate as fleetd's own CA issues it at enrolment (KeyUsage, SKI-less, AKI)."""
    authority = CertificateAuthority.create(FLEET)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")]))
        .sign(key, hashes.SHA256())
    )
    cert = authority.sign_device_csr(csr.public_bytes(serialization.Encoding.PEM), DEVICE)
    return cert.public_bytes(serialization.Encoding.DER)


def _subject(der: bytes, subject: bytes) -> bytes:
    return certs.replace_tbs_field(der, certs.TbsField.SUBJECT, subject)


def _build_shapes(ca: certs.FleetCA) -> dict[str, bytes]:
    device = certs.make_device_cert(ca, DEVICE)
    der = device.der
    own = standard_extensions(device)
    san, eku = own[ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string], own["2.5.29.37"]
    aki, basic = own["2.5.29.35"], own["2.5.29.19"]
    ski = extension(
        "2.5.29.14",
        x509.SubjectKeyIdentifier.from_public_key(device.cert.public_key()).public_bytes(),
    )
    key_usage = extension("2.5.29.15", tlv(0x03, b"\x07\x80"), critical=True)
    spiffe = certs.spiffe_uri(FLEET, DEVICE).encode()
    org = attribute(ORGANIZATION, UTF8, FLEET.encode())
    cn = attribute(COMMON_NAME, UTF8, DEVICE.encode())
    aki_full = x509.AuthorityKeyIdentifier(
        key_identifier=b"\x01" * 20,
        authority_cert_issuer=[x509.DirectoryName(ca.cert.subject)],
        authority_cert_serial_number=ca.cert.serial_number,
    )
    return {
        # The fast path's own shape.
        "fleet-ca-issued": _fleet_ca_issued(),
        "with-ski-and-key-usage": with_extensions(der, ski, key_usage, aki, basic, eku, san),
        "no-basic-constraints": with_extensions(der, aki, eku, san),
        "printable-and-ia5-names": _subject(
            der,
            name(
                [attribute(ORGANIZATION, PRINTABLE, b"Acme Devices")],
                [attribute(COMMON_NAME, IA5, DEVICE.encode())],
            ),
        ),
        "utf8-non-ascii-organization": _subject(
            der, name([attribute(ORGANIZATION, UTF8, "Acmé Gerätebau".encode())], [cn])
        ),
        "san-with-dns-email-and-ip": with_extensions(
            der,
            aki,
            basic,
            eku,
            extension(
                "2.5.29.17",
                tlv(
                    0x30,
                    tlv(0x82, b"dev.acme.example")
                    + tlv(0x81, b"ops@acme.example")
                    + tlv(0x87, b"\x0a\x00\x00\x01")
                    + tlv(0x86, spiffe),
                ),
            ),
        ),
        "san-with-non-ascii-names": with_extensions(
            der,
            aki,
            basic,
            eku,
            extension(
                "2.5.29.17",
                tlv(
                    0x30,
                    tlv(0x82, "gerät.example".encode())
                    + tlv(0x81, "ops@bücher.example".encode())
                    + tlv(0x86, "https://bücher.example/ü".encode())
                    + tlv(0x86, spiffe),
                ),
            ),
        ),
        "eku-with-several-purposes": with_extensions(
            der,
            aki,
            basic,
            extension(
                "2.5.29.37",
                tlv(
                    0x30,
                    certs.encode_oid("1.3.6.1.5.5.7.3.1")
                    + certs.encode_oid("1.3.6.1.5.5.7.3.2")
                    + certs.encode_oid("1.3.6.1.5.5.7.3.2"),
                ),
            ),
            san,
        ),
        # Beyond it: the full parser answers.
        "bmp-string-common-name": _subject(
            der, name([org], [attribute(COMMON_NAME, BMP, DEVICE.encode("utf-16-be"))])
        ),
        "multi-valued-rdn": _subject(der, name([org, cn])),
        "unknown-private-extension": with_extensions(
            der, aki, basic, eku, san, extension("1.3.6.1.4.1.99999.1", tlv(0x05, b""))
        ),
        "certificate-policies": with_extensions(
            der,
            aki,
            basic,
            eku,
            san,
            extension(
                "2.5.29.32",
                x509.CertificatePolicies(
                    [x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]
                ).public_bytes(),
            ),
        ),
        "aki-with-issuer-and-serial": with_extensions(
            der, extension("2.5.29.35", aki_full.public_bytes()), basic, eku, san
        ),
        "san-with-directory-name": with_extensions(
            der,
            aki,
            basic,
            eku,
            extension(
                "2.5.29.17",
                x509.SubjectAlternativeName(
                    [
                        x509.DirectoryName(ca.cert.subject),
                        x509.UniformResourceIdentifier(spiffe.decode()),
                    ]
                ).public_bytes(),
            ),
        ),
    }


SHAPES = (
    "fleet-ca-issued",
    "with-ski-and-key-usage",
    "no-basic-constraints",
    "printable-and-ia5-names",
    "utf8-non-ascii-organization",
    "san-with-dns-email-and-ip",
    "san-with-non-ascii-names",
    "eku-with-several-purposes",
    "bmp-string-common-name",
    "multi-valued-rdn",
    "unknown-private-extension",
    "certificate-policies",
    "aki-with-issuer-and-serial",
    "san-with-directory-name",
)


@pytest.fixture(scope="module")
def shapes(ca: certs.FleetCA) -> dict[str, bytes]:
    built = _build_shapes(ca)
    assert set(built) == set(SHAPES)
    return built


@pytest.mark.parametrize("shape", SHAPES)
def test_valid_certificate_shapes_give_the_expected_identity(
    core: ModuleType, shapes: dict[str, bytes], shape: str
) -> None:
    der = shapes[shape]
    assert fields(core.extract_identity(der)) == expected(der)
    assert fields(core.extract_identity(certs.to_pem(der))) == expected(der)


@pytest.mark.parametrize("shape", SHAPES)
def test_implementations_agree_on_every_shape(shapes: dict[str, bytes], shape: str) -> None:
    der = shapes[shape]
    compiled = core_ext.compiled.extract_identity(der)
    reference = core_ext.reference.extract_identity(der)
    assert repr(compiled) == repr(reference)


CA_CERTIFICATE = "CA certificate used as a device certificate"


@pytest.mark.parametrize(
    ("ca_flag", "path_length", "prefix"),
    [
        pytest.param(False, b"\x00", MALFORMED_CERTIFICATE, id="leaf-zero"),
        pytest.param(False, b"\x03", MALFORMED_CERTIFICATE, id="leaf-three"),
        pytest.param(True, b"\x00", CA_CERTIFICATE, id="ca-zero"),
        pytest.param(True, b"\x00\xff\xff\xff\xff", CA_CERTIFICATE, id="ca-u32-max"),
        pytest.param(True, b"\x01\x00\x00\x00\x00", CA_CERTIFICATE, id="ca-above-u32"),
        pytest.param(True, b"\x00" + b"\xff" * 8, CA_CERTIFICATE, id="ca-u64-max"),
        pytest.param(True, b"\x01" + b"\x00" * 8, MALFORMED_CERTIFICATE, id="ca-above-u64"),
        pytest.param(True, b"\xff", MALFORMED_CERTIFICATE, id="ca-minus-one"),
    ],
)
def test_path_length_constraint(
    core: ModuleType, ca: certs.FleetCA, ca_flag: bool, path_length: bytes, prefix: str
) -> None:
    """A pathLenConstraint without cA is malformed; with cA it is read as a u64."""
    device = certs.make_device_cert(ca, DEVICE, basic_constraints=False)
    flag = tlv(0x01, b"\xff") if ca_flag else b""
    constraints = extension("2.5.29.19", tlv(0x30, flag + tlv(0x02, path_length)))
    der = with_extensions(device.der, constraints, *standard_extensions(device).values())
    with pytest.raises(core.IdentityError, match=f"^{prefix}"):
        core.extract_identity(der)


@pytest.mark.parametrize("tag", [0x81, 0x82, 0x86])
def test_san_string_that_is_not_utf8_is_malformed(
    core: ModuleType, ca: certs.FleetCA, tag: int
) -> None:
    device = certs.make_device_cert(ca, DEVICE)
    own = standard_extensions(device)
    spiffe = certs.spiffe_uri(FLEET, DEVICE).encode()
    san = extension("2.5.29.17", tlv(0x30, tlv(0x86, spiffe) + tlv(tag, b"d\xff.example")))
    der = with_extensions(device.der, own["2.5.29.35"], own["2.5.29.19"], own["2.5.29.37"], san)
    with pytest.raises(core.IdentityError, match=f"^{MALFORMED_CERTIFICATE}"):
        core.extract_identity(der)


ALGORITHMS = {
    "ecdsa-with-SHA256": "1.2.840.10045.4.3.2",
    "sha256WithRSAEncryption": "1.2.840.113549.1.1.11",
    "RSASSA-PSS": "1.2.840.113549.1.1.10",
    "Ed25519": "1.3.101.112",
    "rsaEncryption": "1.2.840.113549.1.1.1",
    "id-ecPublicKey": "1.2.840.10045.2.1",
    "id-dsa": "1.2.840.10040.4.1",
    "dhpublicnumber": "1.2.840.10046.2.1",
    "AES-128-CBC": "2.16.840.1.101.3.4.1.2",
    "unknown": "1.2.3.4",
}
PARAMETERS = {
    "absent": b"",
    "null": tlv(0x05, b""),
    "integer": tlv(0x02, b"\x00"),
    "empty-sequence": tlv(0x30, b""),
    "three-integers": tlv(0x30, tlv(0x02, b"\x01") * 3),
    "pss-salt-32": tlv(0x30, tlv(0xA2, tlv(0x02, b"\x20"))),
    "pss-salt-default": tlv(0x30, tlv(0xA2, tlv(0x02, b"\x14"))),
    "named-curve": certs.encode_oid("1.2.840.10045.3.1.7"),
    "octet-string-16": tlv(0x04, bytes(16)),
    "tag-zero": b"\x00\x02ab",
    "high-tag-number": b"\x1f\x81\x00\x00",
}


def _outer_signature_algorithm(der: bytes, algorithm: bytes) -> bytes:
    tbs_and_rest = der[4:] if der[1] == 0x82 else der[2:]
    tbs_length = 4 + int.from_bytes(tbs_and_rest[2:4], "big")
    tbs, rest = tbs_and_rest[:tbs_length], tbs_and_rest[tbs_length:]
    old_length = 2 + rest[1]
    return tlv(0x30, tbs + algorithm + rest[old_length:])


def outcome(core: ModuleType, der: bytes) -> str:
    try:
        core.extract_identity(der)
    except core.IdentityError as error:
        return str(error).split(":")[0]
    return "accepted"


@pytest.mark.parametrize("position", ["tbs-signature", "outer-signature", "subject-key"])
def test_algorithm_parameters_are_read_per_algorithm_as_the_reference_does(
    ca: certs.FleetCA, position: str
) -> None:
    """Every (algorithm, parameters) pair: both implementations give the same answer."""
    device = certs.make_device_cert(ca, DEVICE)
    public_key = device.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_bits = public_key[4 + public_key[3] :]
    seen = set()
    for oid in ALGORITHMS.values():
        for parameters in PARAMETERS.values():
            algorithm = tlv(0x30, certs.encode_oid(oid) + parameters)
            if position == "tbs-signature":
                der = certs.replace_tbs_field(device.der, certs.TbsField.SIGNATURE, algorithm)
            elif position == "outer-signature":
                der = _outer_signature_algorithm(device.der, algorithm)
            else:
                der = certs.replace_spki(device.der, tlv(0x30, algorithm + key_bits))
            compiled = outcome(core_ext.compiled, der)
            assert compiled == outcome(core_ext.reference, der), (oid, parameters.hex())
            seen.add(compiled)
    assert "accepted" in seen or position == "subject-key"
    assert MALFORMED_CERTIFICATE in seen


SPIFFE = certs.spiffe_uri(FLEET, DEVICE).encode()
URI = tlv(0x86, b"http://crl.acme.example/ca.crl")

# (extension OID, value) -> expected outcome on both implementations: certificates whose
# extensions the reference's parser decodes strictly (found by the differential fuzzer).
EXTENSION_CASES = {
    "empty-eku": ("2.5.29.37", tlv(0x30, b""), MALFORMED_CERTIFICATE),
    "empty-san": ("2.5.29.17", tlv(0x30, b""), "missing or malformed device identity"),
    "empty-ian": ("2.5.29.18", tlv(0x30, b""), "accepted"),
    "san-registered-id-not-an-oid": (
        "2.5.29.17",
        tlv(0x30, tlv(0x86, SPIFFE) + tlv(0x88, b"\x80\x01")),
        MALFORMED_CERTIFICATE,
    ),
    "san-other-name": (
        "2.5.29.17",
        tlv(
            0x30,
            tlv(0x86, SPIFFE)
            + tlv(0xA0, certs.encode_oid("1.3.6.1.4.1.311.20.2.3") + tlv(0xA0, tlv(0x0C, b"u@a"))),
        ),
        "accepted",
    ),
    "ian-not-utf8": ("2.5.29.18", tlv(0x30, tlv(0x86, b"http://\xff\xfe")), MALFORMED_CERTIFICATE),
    "ian-uri": ("2.5.29.18", tlv(0x30, URI), "accepted"),
    "name-constraints-with-aki-content": (
        "2.5.29.30",
        tlv(0x30, tlv(0x80, bytes(20))),
        MALFORMED_CERTIFICATE,
    ),
    "name-constraints-empty": ("2.5.29.30", tlv(0x30, b""), MALFORMED_CERTIFICATE),
    "name-constraints-permitted-dns": (
        "2.5.29.30",
        tlv(0x30, tlv(0xA0, tlv(0x30, tlv(0x82, b"acme.example")))),
        "accepted",
    ),
    "policy-constraints-empty": ("2.5.29.36", tlv(0x30, b""), MALFORMED_CERTIFICATE),
    "policy-constraints": ("2.5.29.36", tlv(0x30, tlv(0x80, b"\x00")), "accepted"),
    "inhibit-any-policy-negative": ("2.5.29.54", tlv(0x02, b"\xff"), MALFORMED_CERTIFICATE),
    "inhibit-any-policy": ("2.5.29.54", tlv(0x02, b"\x00"), "accepted"),
    "private-key-usage-period-empty": ("2.5.29.16", tlv(0x30, b""), MALFORMED_CERTIFICATE),
    "private-key-usage-period": (
        "2.5.29.16",
        tlv(0x30, tlv(0x80, b"20250101000000Z")),
        "accepted",
    ),
    "crl-distribution-point": (
        "2.5.29.31",
        tlv(0x30, tlv(0x30, tlv(0xA0, tlv(0xA0, URI)))),
        "accepted",
    ),
    "crl-distribution-point-reasons-only": (
        "2.5.29.31",
        tlv(0x30, tlv(0x30, tlv(0x81, b"\x07\x80"))),
        MALFORMED_CERTIFICATE,
    ),
    "freshest-crl-empty": ("2.5.29.46", tlv(0x30, b""), "accepted"),
}


@pytest.mark.parametrize("case", list(EXTENSION_CASES))
def test_extensions_the_reference_decodes_strictly(
    core: ModuleType, ca: certs.FleetCA, case: str
) -> None:
    oid, value, expected_outcome = EXTENSION_CASES[case]
    device = certs.make_device_cert(ca, DEVICE)
    own = standard_extensions(device)
    if oid in own:  # replace the certificate's own extension of that type
        own[oid] = extension(oid, value)
        der = with_extensions(device.der, *own.values())
    else:
        der = with_extensions(device.der, *own.values(), extension(oid, value))
    assert outcome(core, der) == expected_outcome


def test_generalized_time_dates_are_converted_exactly(core: ModuleType, ca: certs.FleetCA) -> None:
    """UTCTime up to 2049, GeneralizedTime from 2050, leap days included."""
    for not_before, not_after in [
        (dt.datetime(1950, 1, 1), dt.datetime(2049, 12, 31, 23, 59, 59)),
        (dt.datetime(2049, 12, 31, 23, 59, 59), dt.datetime(2050, 1, 1)),
        (dt.datetime(1996, 2, 29, 12), dt.datetime(2400, 2, 29, 12)),
        (dt.datetime(2000, 2, 29), dt.datetime(9999, 12, 31, 23, 59, 59)),
    ]:
        device = certs.make_device_cert(
            ca,
            DEVICE,
            not_before=not_before.replace(tzinfo=dt.UTC),
            not_after=not_after.replace(tzinfo=dt.UTC),
        )
        identity = core.extract_identity(device.der)
        assert identity.not_before == int(not_before.replace(tzinfo=dt.UTC).timestamp())
        assert identity.not_after == int(not_after.replace(tzinfo=dt.UTC).timestamp())
