//! X.509 device certificate identity extraction.
//!
//! By the time the gateway calls `extract_identity`, TLS has verified the client certificate
//! chain; this module binds the certificate to a fleet device identity
//! (`spiffe://<fleet>/device/<device_id>` URI SAN, equal to the subject CN) and reports what
//! the caller needs: serial number, SHA-256 fingerprint, validity window, key algorithm.
//! Validity dates and signatures are not checked here.
//!
//! The pure-Python reference `core_ext/reference/identity.py` defines the behaviour; refusals
//! must carry the same message prefixes. Nothing here panics on any input.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, Class, Oid, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519, OID_SIG_ED448,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

mod algorithms;
mod fast;

/// Inputs longer than this many bytes are refused before any parsing.
pub const MAX_CERTIFICATE_SIZE: usize = 16384;

create_exception!(
    fleetd_native,
    IdentityError,
    PyValueError,
    "The certificate does not establish a device identity; the message says why."
);

/// Why a certificate was refused; each kind has a fixed message prefix shared with the
/// reference implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLarge,
    Empty,
    MalformedPem,
    MalformedCertificate,
    CaCertificate,
    NotClientAuth,
    BadIdentity,
    CommonNameMismatch,
    UnsupportedKey,
}

impl Refusal {
    /// The message prefix of this refusal.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::TooLarge => "certificate too large",
            Self::Empty => "empty certificate",
            Self::MalformedPem => "malformed PEM",
            Self::MalformedCertificate => "malformed certificate",
            Self::CaCertificate => "CA certificate used as a device certificate",
            Self::NotClientAuth => "certificate is not valid for client authentication",
            Self::BadIdentity => "missing or malformed device identity",
            Self::CommonNameMismatch => "certificate common name does not match device identity",
            Self::UnsupportedKey => "unsupported key algorithm",
        }
    }
}

/// A refusal with detail for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub refusal: Refusal,
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.refusal.prefix())
        } else {
            write!(f, "{}: {}", self.refusal.prefix(), self.detail)
        }
    }
}

impl std::error::Error for Rejection {}

fn reject<T>(refusal: Refusal, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        refusal,
        detail: detail.into(),
    })
}

/// The identity a device certificate establishes, with what the caller needs to check it.
#[pyclass(frozen, eq, hash, get_all, module = "fleetd_native")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceIdentity {
    /// The device, from the `spiffe://<fleet>/device/<device_id>` URI SAN (equal to the CN).
    pub device_id: String,
    /// The fleet the device belongs to, from the same URI.
    pub fleet: String,
    /// The serial number: lowercase hex, no leading zeros, "0" for zero.
    pub serial: String,
    /// Lowercase hex SHA-256 of the certificate's DER encoding.
    pub fingerprint: String,
    /// Start of the validity period, Unix seconds.
    pub not_before: i64,
    /// End of the validity period, Unix seconds.
    pub not_after: i64,
    /// "EC-P256", "EC-P384", "EC-P521", "Ed25519", "Ed448" or "RSA-<modulus bits>".
    pub key_algorithm: String,
}

#[pymethods]
impl DeviceIdentity {
    #[new]
    #[pyo3(signature = (device_id, fleet, serial, fingerprint, not_before, not_after, key_algorithm))]
    fn new(
        device_id: String,
        fleet: String,
        serial: String,
        fingerprint: String,
        not_before: i64,
        not_after: i64,
        key_algorithm: String,
    ) -> Self {
        Self {
            device_id,
            fleet,
            serial,
            fingerprint,
            not_before,
            not_after,
            key_algorithm,
        }
    }

    /// The same shape as the reference dataclass's repr.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let text =
            |s: &str| -> PyResult<String> { Ok(PyString::new(py, s).repr()?.to_str()?.to_owned()) };
        Ok(format!(
            "DeviceIdentity(device_id={}, fleet={}, serial={}, fingerprint={}, \
             not_before={}, not_after={}, key_algorithm={})",
            text(&self.device_id)?,
            text(&self.fleet)?,
            text(&self.serial)?,
            text(&self.fingerprint)?,
            self.not_before,
            self.not_after,
            text(&self.key_algorithm)?,
        ))
    }
}

/// Extract the device identity from a client certificate (PEM or DER).
///
/// Raises `IdentityError` when the certificate is refused.
#[pyfunction]
pub fn extract_identity(py: Python<'_>, data: &[u8]) -> PyResult<DeviceIdentity> {
    py.detach(|| extract(data))
        .map_err(|rejection| IdentityError::new_err(rejection.to_string()))
}

/// The Rust API of `extract_identity`.
///
/// Checks run in this order: size, empty input, PEM armour, DER structure, CA flag,
/// client-auth EKU, identity URI SAN, subject common name, key algorithm.
pub fn extract(data: &[u8]) -> Result<DeviceIdentity, Rejection> {
    if data.len() > MAX_CERTIFICATE_SIZE {
        return reject(
            Refusal::TooLarge,
            format!("{} bytes, limit {MAX_CERTIFICATE_SIZE}", data.len()),
        );
    }
    if data.is_empty() {
        return reject(Refusal::Empty, "");
    }
    let der = decode_input(data)?;
    if let Some(identity) = fast::extract(&der) {
        return Ok(identity);
    }
    let cert = parse_certificate(&der)?;

    if is_ca(&cert) {
        return reject(Refusal::CaCertificate, "basicConstraints has cA=TRUE");
    }

    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth => {}
        Ok(Some(_)) => {
            return reject(Refusal::NotClientAuth, "extendedKeyUsage lacks clientAuth");
        }
        _ => return reject(Refusal::NotClientAuth, "no extendedKeyUsage extension"),
    }

    let (fleet, device_id) = device_uri(&cert)?;

    let common_names: Vec<Option<String>> = cert
        .subject()
        .iter_common_name()
        .map(|cn| attribute_text(cn.attr_value()))
        .collect();
    if !matches!(common_names.as_slice(), [Some(cn)] if cn == device_id) {
        return reject(
            Refusal::CommonNameMismatch,
            format!("expected exactly one CN equal to {device_id:?}, found {common_names:?}"),
        );
    }

    let key_algorithm = key_algorithm(cert.public_key())?;

    Ok(DeviceIdentity {
        device_id: device_id.to_owned(),
        fleet: fleet.to_owned(),
        serial: serial_hex(cert.raw_serial()),
        fingerprint: hex(&Sha256::digest(&der)),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key_algorithm,
    })
}

// --- input framing -----------------------------------------------------------------------

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";

/// The whitespace PEM may carry: the same set as Python's `bytes.split()`
/// (space, `\t`, `\n`, `\x0b`, `\x0c`, `\r`).
fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t'..=b'\r')
}

/// The first occurrence of `needle` (which starts with `-`) in `haystack`: a scan for `-`,
/// then a comparison at each dash, so a PEM body is read once.
fn find_dashed(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let dash = from + haystack.get(from..)?.iter().position(|&b| b == b'-')?;
        if haystack.get(dash..)?.starts_with(needle) {
            return Some(dash);
        }
        from = dash + 1;
    }
}

/// Return the DER of the certificate: `data` itself, or the first PEM block's content.
///
/// PEM is recognised by `-----` after optional leading whitespace. The first block must be
/// a `CERTIFICATE`; its body (whitespace removed) must be canonical, padded base64.
/// Anything after the first `END CERTIFICATE` line is ignored.
fn decode_input(data: &[u8]) -> Result<Cow<'_, [u8]>, Rejection> {
    let start = data
        .iter()
        .position(|&b| !is_whitespace(b))
        .unwrap_or(data.len());
    let text = data.get(start..).unwrap_or_default();
    if !text.starts_with(b"-----") {
        return Ok(Cow::Borrowed(data));
    }
    let Some(rest) = text.strip_prefix(PEM_BEGIN) else {
        return reject(
            Refusal::MalformedPem,
            "the first block is not a CERTIFICATE",
        );
    };
    let body = match pem_body(rest) {
        Some(body) => body,
        None => {
            let Some(end) = find_dashed(rest, PEM_END) else {
                return reject(Refusal::MalformedPem, "no END CERTIFICATE line");
            };
            let armoured = rest.get(..end).unwrap_or_default();
            armoured
                .iter()
                .copied()
                .filter(|&b| !is_whitespace(b))
                .collect()
        }
    };
    if body.is_empty() {
        return reject(Refusal::MalformedPem, "empty CERTIFICATE block");
    }
    // The standard engine requires canonical padding and zero padding bits.
    match BASE64.decode(&body) {
        Ok(der) => Ok(Cow::Owned(der)),
        Err(_) => reject(Refusal::MalformedPem, "invalid base64"),
    }
}

/// The common case of a PEM body, in one pass: the bytes before the first `-`, whitespace
/// removed, when that `-` starts the END line. `None` sends the caller to the exact path.
fn pem_body(rest: &[u8]) -> Option<Vec<u8>> {
    const BLOCK: usize = 16;
    let mut body = Vec::with_capacity(rest.len());
    let mut blocks = rest.chunks(BLOCK);
    let mut offset = 0;
    for block in &mut blocks {
        // Most 16-byte blocks of a PEM line hold neither whitespace nor a dash: copy whole.
        // (`fold`, not `all`: no early exit, so the check compiles to vector compares.)
        let plain = block.len() == BLOCK
            && block
                .iter()
                .fold(true, |plain, &b| plain & (b > b' ') & (b != b'-'));
        if plain {
            body.extend_from_slice(block);
            offset += BLOCK;
            continue;
        }
        for (i, &b) in block.iter().enumerate() {
            if b == b'-' {
                return rest.get(offset + i..)?.starts_with(PEM_END).then_some(body);
            }
            if !is_whitespace(b) {
                body.push(b);
            }
        }
        offset += block.len();
    }
    None
}

// --- certificate structure -----------------------------------------------------------------

fn malformed<T>(detail: impl Into<String>) -> Result<T, Rejection> {
    reject(Refusal::MalformedCertificate, detail)
}

/// Parse `der` as one X.509 certificate with nothing after it, and refuse the structural
/// faults the reference's parser (`cryptography`, strict DER) refuses, so that both call the
/// same inputs malformed.
fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, Rejection> {
    let cert = match X509Certificate::from_der(der) {
        Ok((rest, _)) if !rest.is_empty() => {
            return malformed(format!("{} bytes after the certificate", rest.len()))
        }
        Ok((_, cert)) => cert,
        Err(err) => return malformed(err.to_string()),
    };
    if !strict::certificate_is_der(der) {
        return malformed("not valid DER");
    }
    check_serial(cert.raw_serial())?;
    check_key_algorithm_identifier(&cert.public_key().algorithm)?;
    check_subject(&cert)?;
    let extensions = cert.extensions();
    let duplicate = extensions.iter().enumerate().any(|(i, extension)| {
        extensions
            .get(..i)
            .unwrap_or_default()
            .iter()
            .any(|earlier| earlier.oid == extension.oid)
    });
    if duplicate {
        return malformed("duplicate extension");
    }
    for extension in extensions {
        let Some(oid) = parsed_extension_name(extension.oid.as_bytes()) else {
            continue;
        };
        if !strict::single_element_is_der(extension.value)
            || !strict::extension_value_ok(oid, extension.value)
        {
            return malformed(format!("extension {oid} is not valid DER"));
        }
        match extension.parsed_extension() {
            // x509-parser caps pathLenConstraint at u32; the shape check above is exact.
            ParsedExtension::ParseError { .. } if oid == "2.5.29.19" => {}
            ParsedExtension::ParseError { error } => {
                return malformed(format!("extension {oid}: {error}"));
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                check_general_names(&san.general_names)?
            }
            ParsedExtension::IssuerAlternativeName(ian) => check_general_names(&ian.general_names)?,
            _ => {}
        }
    }
    Ok(cert)
}

/// Whether basicConstraints says cA=TRUE (its shape was checked by `parse_certificate`).
fn is_ca(cert: &X509Certificate<'_>) -> bool {
    const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    cert.extensions()
        .iter()
        .find(|extension| extension.oid.as_bytes() == BASIC_CONSTRAINTS)
        .and_then(|extension| strict::read(extension.value))
        .and_then(|(sequence, _)| strict::read(sequence.content))
        .is_some_and(|(ca, _)| ca.tag == 0x01 && ca.content == [0xff])
}

/// The extensions the reference's parser decodes (and so refuses when malformed); others are
/// kept as opaque bytes by both implementations. Each OID as its DER content octets, then in
/// dotted form.
const PARSED_EXTENSIONS: &[(&[u8], &str)] = &[
    (&[0x55, 0x1d, 0x0e], "2.5.29.14"), // subjectKeyIdentifier
    (&[0x55, 0x1d, 0x0f], "2.5.29.15"), // keyUsage
    (&[0x55, 0x1d, 0x10], "2.5.29.16"), // privateKeyUsagePeriod
    (&[0x55, 0x1d, 0x11], "2.5.29.17"), // subjectAltName
    (&[0x55, 0x1d, 0x12], "2.5.29.18"), // issuerAltName
    (&[0x55, 0x1d, 0x13], "2.5.29.19"), // basicConstraints
    (&[0x55, 0x1d, 0x1e], "2.5.29.30"), // nameConstraints
    (&[0x55, 0x1d, 0x1f], "2.5.29.31"), // cRLDistributionPoints
    (&[0x55, 0x1d, 0x20], "2.5.29.32"), // certificatePolicies
    (&[0x55, 0x1d, 0x23], "2.5.29.35"), // authorityKeyIdentifier
    (&[0x55, 0x1d, 0x24], "2.5.29.36"), // policyConstraints
    (&[0x55, 0x1d, 0x25], "2.5.29.37"), // extKeyUsage
    (&[0x55, 0x1d, 0x2e], "2.5.29.46"), // freshestCRL
    (&[0x55, 0x1d, 0x36], "2.5.29.54"), // inhibitAnyPolicy
    (&[0x2b, 6, 1, 5, 5, 7, 1, 1], "1.3.6.1.5.5.7.1.1"), // authorityInfoAccess
    (&[0x2b, 6, 1, 5, 5, 7, 1, 11], "1.3.6.1.5.5.7.1.11"), // subjectInfoAccess
    (&[0x2b, 6, 1, 5, 5, 7, 1, 24], "1.3.6.1.5.5.7.1.24"), // TLS feature
    (&[0x2b, 6, 1, 5, 5, 7, 48, 1, 5], "1.3.6.1.5.5.7.48.1.5"), // OCSP no check
    (
        &[0x2b, 6, 1, 4, 1, 0x82, 0x37, 21, 7],
        "1.3.6.1.4.1.311.21.7",
    ), // MS template
    (&[0x2b, 36, 8, 3, 3], "1.3.36.8.3.3"), // admissions
    (
        &[0x2b, 6, 1, 4, 1, 0xd6, 0x79, 2, 4, 2],
        "1.3.6.1.4.1.11129.2.4.2",
    ), // SCTs
];

/// The dotted name of an extension the reference's parser decodes, from its OID's content.
fn parsed_extension_name(oid: &[u8]) -> Option<&'static str> {
    PARSED_EXTENSIONS
        .iter()
        .find(|(encoded, _)| *encoded == oid)
        .map(|&(_, name)| name)
}

/// Names the reference's parser cannot represent make the certificate malformed. (Like the
/// reference, rfc822Name, dNSName and URI entries may hold any UTF-8, not only IA5.)
fn check_general_names(names: &[GeneralName<'_>]) -> Result<(), Rejection> {
    for name in names {
        match name {
            GeneralName::Invalid(..) => return malformed("invalid subjectAltName entry"),
            GeneralName::X400Address(..) | GeneralName::EDIPartyName(..) => {
                return malformed("unsupported subjectAltName entry type");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every subject attribute must be a string type the reference decodes, and decode.
fn check_subject(cert: &X509Certificate<'_>) -> Result<(), Rejection> {
    const X500_UNIQUE_IDENTIFIER: &[u8] = &[0x55, 0x04, 0x2d]; // 2.5.4.45
    for attribute in cert.subject().iter_attributes() {
        let value = attribute.attr_value();
        if value.class() != Class::Universal {
            return malformed("subject attribute is not a string");
        }
        let ok = match value.tag() {
            Tag::BitString => attribute.attr_type().as_bytes() == X500_UNIQUE_IDENTIFIER,
            Tag::BmpString | Tag::UniversalString => attribute_text(value).is_some(),
            Tag::OctetString
            | Tag::Utf8String
            | Tag::NumericString
            | Tag::PrintableString
            | Tag::T61String
            | Tag::Ia5String
            | Tag::UtcTime
            | Tag::GeneralizedTime
            | Tag::VisibleString => std::str::from_utf8(value.data).is_ok(),
            _ => false,
        };
        if !ok {
            return malformed("subject attribute cannot be decoded");
        }
    }
    Ok(())
}

/// The serial must be a minimally encoded, non-negative INTEGER.
fn check_serial(raw: &[u8]) -> Result<(), Rejection> {
    match raw {
        [] => malformed("empty serial number"),
        [first, ..] if first & 0x80 != 0 => malformed("negative serial number"),
        [0, second, ..] if second & 0x80 == 0 => malformed("serial number not minimally encoded"),
        _ => Ok(()),
    }
}

/// The AlgorithmIdentifier parameters of a known key type must have the form its
/// specification defines (the reference's parser refuses the certificate otherwise).
fn check_key_algorithm_identifier(algorithm: &AlgorithmIdentifier<'_>) -> Result<(), Rejection> {
    let oid = &algorithm.algorithm;
    let params = algorithm.parameters.as_ref();
    let ok = if *oid == OID_PKCS1_RSAENCRYPTION {
        params.is_none_or(is_null)
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        // ECParameters ::= CHOICE { namedCurve, implicitCurve NULL, specifiedCurve }
        params.is_some_and(|p| {
            p.class() == Class::Universal && matches!(p.tag(), Tag::Oid | Tag::Null | Tag::Sequence)
        })
    } else if *oid == OID_SIG_ED25519 || *oid == OID_SIG_ED448 {
        params.is_none()
    } else {
        true
    };
    if ok {
        Ok(())
    } else {
        malformed(format!("invalid parameters for key algorithm {oid}"))
    }
}

fn is_null(any: &Any<'_>) -> bool {
    any.tag() == Tag::Null && any.data.is_empty()
}

// --- identity binding ----------------------------------------------------------------------

const SPIFFE_SCHEME: &str = "spiffe://";

/// Return (fleet, device_id) from the one spiffe URI SAN, or refuse.
///
/// A URI whose scheme is `spiffe` (in any case) counts as an identity claim and must be
/// exactly `spiffe://<fleet>/device/<device_id>`; other URIs are ignored.
fn device_uri<'a>(cert: &X509Certificate<'a>) -> Result<(&'a str, &'a str), Rejection> {
    let mut uris: Vec<&'a str> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                uris.push(uri);
            }
        }
    }
    device_uri_among(uris)
}

/// Return (fleet, device_id) from the one spiffe URI among `uris`, or refuse.
fn device_uri_among<'a>(
    uris: impl IntoIterator<Item = &'a str>,
) -> Result<(&'a str, &'a str), Rejection> {
    let claims: Vec<&'a str> = uris
        .into_iter()
        .filter(|uri| {
            uri.as_bytes()
                .get(..SPIFFE_SCHEME.len())
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case(SPIFFE_SCHEME.as_bytes()))
        })
        .collect();
    let uri = match claims.as_slice() {
        [] => return reject(Refusal::BadIdentity, "no spiffe:// URI SAN"),
        [uri] => *uri,
        _ => {
            return reject(
                Refusal::BadIdentity,
                format!("{} spiffe:// URI SANs", claims.len()),
            )
        }
    };
    parse_device_uri(uri).ok_or_else(|| Rejection {
        refusal: Refusal::BadIdentity,
        detail: format!("{uri:?} is not a device identity URI"),
    })
}

/// Split `spiffe://<fleet>/device/<device_id>`, checking both parts' syntax.
fn parse_device_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(SPIFFE_SCHEME)?;
    let (fleet, device_id) = rest.split_once("/device/")?;
    (is_fleet_name(fleet) && is_device_id(device_id)).then_some((fleet, device_id))
}

/// `^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`
fn is_fleet_name(s: &str) -> bool {
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let inner = |b: &u8| edge(b) || *b == b'.' || *b == b'-';
    match s.as_bytes() {
        [only] => edge(only),
        [first, middle @ .., last] => {
            middle.len() <= 61 && edge(first) && edge(last) && middle.iter().all(inner)
        }
        [] => false,
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`
fn is_device_id(s: &str) -> bool {
    match s.as_bytes() {
        [first, rest @ ..] => {
            first.is_ascii_alphanumeric()
                && rest.len() <= 127
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        [] => false,
    }
}

/// The text of a directory string attribute, decoded as the reference's parser decodes it.
fn attribute_text(value: &Any<'_>) -> Option<String> {
    let data: &[u8] = value.data;
    match value.tag() {
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => std::str::from_utf8(data).ok().map(str::to_owned),
    }
}

// --- key algorithm -------------------------------------------------------------------------

fn unsupported<T>(detail: impl Into<String>) -> Result<T, Rejection> {
    reject(Refusal::UnsupportedKey, detail)
}

/// Name the subject key's algorithm, or refuse keys a device may not use. Keys are checked
/// as the reference's key loader checks them (EC points on the curve, RSA exponent sane).
fn key_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> Result<String, Rejection> {
    let oid = &spki.algorithm.algorithm;
    let bits = &spki.subject_public_key;
    if bits.unused_bits != 0 {
        return unsupported(format!("{oid}: public key is not a whole number of bytes"));
    }
    let key: &[u8] = bits.data.as_ref();
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| Oid::try_from(p.clone()).ok());
        let Some(curve) = curve else {
            return unsupported("EC key without a named curve");
        };
        let (name, valid) = if curve == OID_EC_P256 {
            (
                "EC-P256",
                ec_point(key, 32).is_some_and(|p| p256::PublicKey::from_sec1_bytes(&p).is_ok()),
            )
        } else if curve == OID_NIST_EC_P384 {
            (
                "EC-P384",
                ec_point(key, 48).is_some_and(|p| p384::PublicKey::from_sec1_bytes(&p).is_ok()),
            )
        } else if curve == OID_NIST_EC_P521 {
            (
                "EC-P521",
                ec_point(key, 66).is_some_and(|p| p521::PublicKey::from_sec1_bytes(&p).is_ok()),
            )
        } else {
            return unsupported(format!("EC curve {curve}"));
        };
        return if valid {
            Ok(name.to_owned())
        } else {
            unsupported(format!("{name}: invalid public key"))
        };
    }
    if *oid == OID_SIG_ED25519 {
        return if key.len() == 32 {
            Ok("Ed25519".to_owned())
        } else {
            unsupported("Ed25519: invalid public key")
        };
    }
    if *oid == OID_SIG_ED448 {
        return if key.len() == 57 {
            Ok("Ed448".to_owned())
        } else {
            unsupported("Ed448: invalid public key")
        };
    }
    if *oid == OID_PKCS1_RSAENCRYPTION {
        return match rsa_modulus_bits(key) {
            Some(bits) => Ok(format!("RSA-{bits}")),
            None => unsupported("RSA: invalid public key"),
        };
    }
    unsupported(oid.to_id_string())
}

/// An SEC 1 point in a form the RustCrypto curves read: compressed and uncompressed points
/// pass through; hybrid points (accepted by OpenSSL) become uncompressed once their y parity
/// is checked; anything else (identity, compact form, wrong length) is refused.
fn ec_point(key: &[u8], field_len: usize) -> Option<Cow<'_, [u8]>> {
    let (&tag, coordinates) = key.split_first()?;
    match tag {
        0x02 | 0x03 if coordinates.len() == field_len => Some(Cow::Borrowed(key)),
        0x04 if coordinates.len() == 2 * field_len => Some(Cow::Borrowed(key)),
        0x06 | 0x07 if coordinates.len() == 2 * field_len => {
            let y_odd = coordinates.last()? & 1;
            if y_odd != tag & 1 {
                return None;
            }
            let mut point = key.to_vec();
            *point.first_mut()? = 0x04;
            Some(Cow::Owned(point))
        }
        _ => None,
    }
}

/// The modulus size in bits of a DER RSAPublicKey, if the key is one the reference loads:
/// `SEQUENCE { n INTEGER, e INTEGER }` in DER, with n >= 3, 3 <= e < n and e odd.
fn rsa_modulus_bits(key: &[u8]) -> Option<usize> {
    let (sequence, []) = strict::read(key)? else {
        return None;
    };
    let [n, e] = strict::children_n(sequence.content)?;
    let n = unsigned_integer(&n)?;
    let e = unsigned_integer(&e)?;
    let three: &[u8] = &[3];
    let e_odd = e.last().is_some_and(|b| b & 1 == 1);
    if sequence.tag != 0x30
        || compare_magnitudes(n, three).is_lt()
        || compare_magnitudes(e, three).is_lt()
        || compare_magnitudes(e, n).is_ge()
        || !e_odd
    {
        return None;
    }
    let first = n.first()?;
    Some(n.len() * 8 - first.leading_zeros() as usize)
}

/// The magnitude (no leading zeros) of a minimally encoded, non-negative DER INTEGER.
fn unsigned_integer<'a>(tlv: &strict::Tlv<'a>) -> Option<&'a [u8]> {
    if tlv.tag != 0x02 {
        return None;
    }
    match tlv.content {
        [] => None,
        [first, ..] if first & 0x80 != 0 => None,
        [0, second, ..] if second & 0x80 == 0 => None,
        [0, magnitude @ ..] => Some(magnitude),
        content => Some(content),
    }
}

/// Compare two big-endian magnitudes without leading zeros.
fn compare_magnitudes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

// --- strict DER --------------------------------------------------------------------------

/// DER rules `x509-parser` lets pass but the reference's parser (rust-asn1, strict DER)
/// enforces: definite minimal lengths, primitive encodings of the universal types, sorted
/// SET OF, no encoded DEFAULT values, the version field, extension criticality.
mod strict {
    /// Nesting deeper than this is refused (certificates nest about 8 levels deep).
    const MAX_DEPTH: usize = 32;

    #[derive(Clone, Copy)]
    pub struct Tlv<'a> {
        pub tag: u8,
        pub content: &'a [u8],
        pub raw: &'a [u8],
    }

    const NO_TLV: Tlv<'static> = Tlv {
        tag: 0,
        content: &[],
        raw: &[],
    };

    /// Read one TLV: low tag number form, definite minimal length.
    pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (content, after) = read_length(rest)?;
        let raw = input.get(..input.len() - after.len())?;
        Some((Tlv { tag, content, raw }, after))
    }

    /// Skip one element of any tag (high tag numbers included) with a definite minimal
    /// length, without looking inside it; return what follows.
    pub fn skip_element(input: &[u8]) -> Option<&[u8]> {
        let (&first, mut rest) = input.split_first()?;
        if first & 0x1f == 0x1f {
            // High tag number: base-128, minimal, at least 31, at most four octets.
            let mut number: u32 = 0;
            for i in 0..4 {
                let (&octet, after) = rest.split_first()?;
                rest = after;
                if i == 0 && octet == 0x80 {
                    return None;
                }
                number = (number << 7) | u32::from(octet & 0x7f);
                if octet & 0x80 == 0 {
                    if number < 31 {
                        return None;
                    }
                    let (_, after) = read_length(rest)?;
                    return Some(after);
                }
            }
            return None;
        }
        let (_, after) = read(input)?;
        Some(after)
    }

    /// A definite, minimal length and the content it delimits; return what follows.
    fn read_length(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&first, rest) = input.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let (octets, rest) = rest.split_at_checked(count)?;
            if octets.first() == Some(&0) {
                return None;
            }
            let length = octets
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if length < 0x80 {
                return None;
            }
            (length, rest)
        };
        rest.split_at_checked(length)
    }

    /// The TLVs that exactly fill `content`.
    pub fn children(mut content: &[u8]) -> Option<Vec<Tlv<'_>>> {
        let mut out = Vec::new();
        while !content.is_empty() {
            let (tlv, rest) = read(content)?;
            out.push(tlv);
            content = rest;
        }
        Some(out)
    }

    /// `input` is exactly one well-formed DER element.
    pub fn single_element_is_der(input: &[u8]) -> bool {
        matches!(read(input), Some((tlv, rest)) if rest.is_empty() && is_der(&tlv, 0))
    }

    /// The whole certificate is well-formed DER in the shape of RFC 5280's `Certificate`,
    /// with a version the reference knows (v1, not encoded, or v3) and no extension encoding
    /// its default criticality.
    pub fn certificate_is_der(der: &[u8]) -> bool {
        let Some((cert, [])) = read(der) else {
            return false;
        };
        if cert.tag != 0x30 {
            return false;
        }
        let Some([tbs, signature_algorithm, signature]) = children_array(&cert) else {
            return false;
        };
        if tbs.tag != 0x30
            || !algorithm_identifier_ok(&signature_algorithm)
            || !(signature.tag == 0x03 && is_der(&signature, 0))
        {
            return false;
        }
        let Some(fields) = children(tbs.content) else {
            return false;
        };
        let mut fields = fields.iter().peekable();
        if let Some(version) = fields.next_if(|f| f.tag == 0xa0) {
            if version.content != [0x02, 0x01, 0x02] {
                return false;
            }
        }
        let required: [fn(&Tlv<'_>) -> bool; 6] = [
            |t| t.tag == 0x02 && is_der(t, 0),
            algorithm_identifier_ok,
            |t| name_ok(t, false),
            validity_ok,
            |t| name_ok(t, true),
            spki_ok,
        ];
        for check in required {
            if !fields.next().is_some_and(check) {
                return false;
            }
        }
        fields.next_if(|f| f.tag == 0x81 && bit_string_ok(f.content));
        fields.next_if(|f| f.tag == 0x82 && bit_string_ok(f.content));
        if let Some(extensions) = fields.next_if(|f| f.tag == 0xa3) {
            if !extensions_are_der(extensions) {
                return false;
            }
        }
        fields.next().is_none()
    }

    fn children_array<'a, const N: usize>(tlv: &Tlv<'a>) -> Option<[Tlv<'a>; N]> {
        children_n(tlv.content)
    }

    /// Exactly `N` TLVs that fill `content`.
    pub fn children_n<const N: usize>(mut content: &[u8]) -> Option<[Tlv<'_>; N]> {
        let mut out = [NO_TLV; N];
        for slot in &mut out {
            let (tlv, rest) = read(content)?;
            *slot = tlv;
            content = rest;
        }
        content.is_empty().then_some(out)
    }

    fn algorithm_identifier_ok(tlv: &Tlv<'_>) -> bool {
        super::algorithms::algorithm_identifier_ok(tlv)
    }

    /// `SEQUENCE OF SET OF SEQUENCE { type OBJECT IDENTIFIER, value ANY }`
    fn name_ok(tlv: &Tlv<'_>, is_subject: bool) -> bool {
        let attribute_ok = |atv: &Tlv<'_>| {
            atv.tag == 0x30
                && matches!(
                    children(atv.content).as_deref(),
                    Some([oid, value]) if oid.tag == 0x06
                        && oid_is_der(oid.content)
                        && attribute_value_ok(value, is_subject)
                )
        };
        let rdn_ok = |rdn: &Tlv<'_>| {
            rdn.tag == 0x31
                && children(rdn.content).is_some_and(|atvs| {
                    atvs.windows(2).all(|w| w[0].raw <= w[1].raw) && atvs.iter().all(attribute_ok)
                })
        };
        tlv.tag == 0x30 && children(tlv.content).is_some_and(|rdns| rdns.iter().all(rdn_ok))
    }

    /// An attribute value is ANY, but the string types the reference types strictly
    /// (PrintableString, UniversalString, BMPString) must be valid, and the subject's values,
    /// which the reference decodes, are never constructed strings.
    fn attribute_value_ok(value: &Tlv<'_>, is_subject: bool) -> bool {
        if is_subject && value.tag & 0xe0 == 0x20 && !matches!(value.tag, 0x30 | 0x31) {
            return false;
        }
        !matches!(value.tag, 0x13 | 0x1c | 0x1e) || is_der(value, 0)
    }

    /// `SEQUENCE { notBefore Time, notAfter Time }`
    fn validity_ok(tlv: &Tlv<'_>) -> bool {
        tlv.tag == 0x30 && children_array::<2>(tlv).is_some_and(|times| times.iter().all(time_ok))
    }

    /// `UTCTime` as YYMMDDHHMMSSZ or `GeneralizedTime` as YYYYMMDDHHMMSSZ, a real date.
    fn time_ok(tlv: &Tlv<'_>) -> bool {
        let digits = match (tlv.tag, tlv.content) {
            (0x17, [d @ .., b'Z']) if d.len() == 12 => d,
            (0x18, [d @ .., b'Z']) if d.len() == 14 => d,
            _ => return false,
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let number = |range: std::ops::Range<usize>| {
            digits
                .get(range)
                .unwrap_or_default()
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let (year, rest) = if tlv.tag == 0x17 {
            let yy = number(0..2);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        } else {
            (number(0..4), 4)
        };
        let month = number(rest..rest + 2);
        let day = number(rest + 2..rest + 4);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        (1..=days_in_month).contains(&day)
            && number(rest + 4..rest + 6) < 24
            && number(rest + 6..rest + 8) < 60
            && number(rest + 8..rest + 10) < 60
    }

    /// `SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }`
    fn spki_ok(tlv: &Tlv<'_>) -> bool {
        tlv.tag == 0x30
            && children_array::<2>(tlv).is_some_and(|[alg, key]| {
                algorithm_identifier_ok(&alg) && key.tag == 0x03 && is_der(&key, 0)
            })
    }

    fn extensions_are_der(field: &Tlv<'_>) -> bool {
        let Some([list]) = children_array(field) else {
            return false;
        };
        if list.tag != 0x30 {
            return false;
        }
        let Some(extensions) = children(list.content) else {
            return false;
        };
        extensions.iter().all(|extension| {
            if extension.tag != 0x30 {
                return false;
            }
            let Some(parts) = children(extension.content) else {
                return false;
            };
            match parts.as_slice() {
                [oid, value] => oid.tag == 0x06 && oid_is_der(oid.content) && value.tag == 0x04,
                // DEFAULT FALSE must not be encoded.
                [oid, critical, value] => {
                    oid.tag == 0x06
                        && oid_is_der(oid.content)
                        && critical.tag == 0x01
                        && critical.content == [0xff]
                        && value.tag == 0x04
                }
                _ => false,
            }
        })
    }

    /// The shape of the extensions identity extraction reads or the factory of every device
    /// certificate writes (the reference's parser types them; `x509-parser` is lenient).
    pub fn extension_value_ok(oid: &str, value: &[u8]) -> bool {
        let Some((tlv, [])) = read(value) else {
            return false;
        };
        let elements = || children(tlv.content).unwrap_or_default();
        match oid {
            // SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
            // SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }
            // The reference reads pathLenConstraint as a u64 and refuses it without cA.
            "2.5.29.19" => {
                let is_true = |t: &Tlv<'_>| t.tag == 0x01 && t.content == [0xff];
                let is_u64 = |t: &Tlv<'_>| {
                    t.tag == 0x02
                        && match t.content {
                            [first, ..] if first & 0x80 != 0 => false,
                            [0, magnitude @ ..] => magnitude.len() <= 8,
                            content => content.len() <= 8,
                        }
                };
                tlv.tag == 0x30
                    && match elements().as_slice() {
                        [] => true,
                        [ca] => is_true(ca),
                        [ca, path_len] => is_true(ca) && is_u64(path_len),
                        _ => false,
                    }
            }
            // SEQUENCE SIZE (1..MAX) OF KeyPurposeId
            "2.5.29.37" => {
                let purposes = elements();
                tlv.tag == 0x30 && !purposes.is_empty() && purposes.iter().all(|e| e.tag == 0x06)
            }
            // SEQUENCE OF GeneralName (x400Address and ediPartyName are refused elsewhere;
            // the reference reads an empty list)
            "2.5.29.17" | "2.5.29.18" => {
                tlv.tag == 0x30
                    && elements()
                        .iter()
                        .all(|name| general_name_ok(name, &[4, 16]))
            }
            // OCTET STRING
            "2.5.29.14" => tlv.tag == 0x04,
            // BIT STRING
            "2.5.29.15" => tlv.tag == 0x03,
            // SEQUENCE { [0] keyIdentifier, [1] authorityCertIssuer, [2] serial } all optional
            "2.5.29.35" => {
                let tags: Vec<u8> = elements().iter().map(|e| e.tag).collect();
                tlv.tag == 0x30
                    && matches!(
                        tags.as_slice(),
                        [] | [0x80] | [0xa1, 0x82] | [0x80, 0xa1, 0x82]
                    )
            }
            // SEQUENCE { permittedSubtrees [0], excludedSubtrees [1] }, at least one, each a
            // non-empty list of GeneralSubtree
            "2.5.29.30" => {
                let tags: Vec<u8> = elements().iter().map(|e| e.tag).collect();
                tlv.tag == 0x30
                    && matches!(tags.as_slice(), [0xa0] | [0xa1] | [0xa0, 0xa1])
                    && elements().iter().all(|subtrees| {
                        children(subtrees.content).is_some_and(|list| {
                            !list.is_empty() && list.iter().all(general_subtree_ok)
                        })
                    })
            }
            // SEQUENCE { requireExplicitPolicy [0], inhibitPolicyMapping [1] }, at least one
            "2.5.29.36" => {
                let fields = elements();
                tlv.tag == 0x30
                    && matches!(
                        fields.iter().map(|e| e.tag).collect::<Vec<_>>().as_slice(),
                        [0x80] | [0x81] | [0x80, 0x81]
                    )
                    && fields.iter().all(|f| unsigned_fits(f.content, 8))
            }
            // PrivateKeyUsagePeriod ::= SEQUENCE { notBefore [0] GeneralizedTime OPTIONAL,
            // notAfter [1] GeneralizedTime OPTIONAL }, at least one
            "2.5.29.16" => {
                let fields = elements();
                let generalized = |t: &Tlv<'_>| {
                    time_ok(&Tlv {
                        tag: 0x18,
                        content: t.content,
                        raw: t.raw,
                    })
                };
                tlv.tag == 0x30
                    && matches!(
                        fields.iter().map(|e| e.tag).collect::<Vec<_>>().as_slice(),
                        [0x80] | [0x81] | [0x80, 0x81]
                    )
                    && fields.iter().all(generalized)
            }
            // CRLDistributionPoints ::= SEQUENCE OF DistributionPoint (the reference reads an
            // empty list)
            "2.5.29.31" | "2.5.29.46" => {
                tlv.tag == 0x30 && elements().iter().all(distribution_point_ok)
            }
            // SkipCerts ::= INTEGER (0..MAX)
            "2.5.29.54" => tlv.tag == 0x02 && unsigned_fits(tlv.content, 8),
            _ => true,
        }
    }

    /// `GeneralSubtree ::= SEQUENCE { base GeneralName, minimum [0] DEFAULT 0,
    /// maximum [1] OPTIONAL }`; an iPAddress base is an address and a mask (8 or 32 bytes).
    fn general_subtree_ok(subtree: &Tlv<'_>) -> bool {
        let Some(parts) = (subtree.tag == 0x30)
            .then(|| children(subtree.content))
            .flatten()
        else {
            return false;
        };
        let Some((base, bounds)) = parts.split_first() else {
            return false;
        };
        let base_ok = general_name_ok(base, &[8, 32]);
        let bounds_ok = match bounds {
            [] => true,
            [b] if b.tag == 0x80 => unsigned_fits(b.content, 8) && b.content != [0],
            [b] => b.tag == 0x81 && unsigned_fits(b.content, 8),
            [min, max] => {
                min.tag == 0x80
                    && unsigned_fits(min.content, 8)
                    && min.content != [0]
                    && max.tag == 0x81
                    && unsigned_fits(max.content, 8)
            }
            _ => false,
        };
        base_ok && bounds_ok
    }

    /// `DistributionPoint ::= SEQUENCE { distributionPoint [0] EXPLICIT CHOICE { fullName [0]
    /// GeneralNames, nameRelativeToCRLIssuer [1] RDN }, reasons [1] BIT STRING, cRLIssuer [2]
    /// GeneralNames }`, all optional but not reasons alone.
    fn distribution_point_ok(point: &Tlv<'_>) -> bool {
        let Some(fields) = (point.tag == 0x30)
            .then(|| children(point.content))
            .flatten()
        else {
            return false;
        };
        let names_ok = |names: &[u8]| {
            children(names).is_some_and(|list| {
                !list.is_empty() && list.iter().all(|name| general_name_ok(name, &[4, 16]))
            })
        };
        let mut last = 0;
        let mut named = false;
        let shape_ok = fields.iter().all(|field| {
            let in_order = field.tag > last;
            last = field.tag;
            in_order
                && match field.tag {
                    0xa0 => {
                        named = true;
                        match children_array::<1>(field).as_ref().map(|[choice]| choice) {
                            Some(choice) if choice.tag == 0xa0 => names_ok(choice.content),
                            Some(choice) if choice.tag == 0xa1 => {
                                children(choice.content).is_some_and(|atvs| !atvs.is_empty())
                            }
                            _ => false,
                        }
                    }
                    0x81 => bit_string_ok(field.content),
                    0xa2 => {
                        named = true;
                        names_ok(field.content)
                    }
                    _ => false,
                }
        });
        shape_ok && named
    }

    /// A GeneralName of a type the reference reads (x400Address and ediPartyName are
    /// refused elsewhere): otherName `{ type-id OID, value [0] EXPLICIT ANY }`, a string
    /// form, directoryName, an iPAddress of one of `ip_lengths`, registeredID (an OID).
    fn general_name_ok(name: &Tlv<'_>, ip_lengths: &[usize]) -> bool {
        match name.tag {
            0xa0 => matches!(
                children(name.content).as_deref(),
                Some([oid, value]) if oid.tag == 0x06
                    && oid_is_der(oid.content)
                    && value.tag == 0xa0
                    && children(value.content).is_some_and(|inner| inner.len() == 1)
            ),
            0xa4 | 0x81 | 0x82 | 0x86 => true,
            0x87 => ip_lengths.contains(&name.content.len()),
            0x88 => oid_is_der(name.content),
            _ => false,
        }
    }

    /// INTEGER content octets: minimal, non-negative, at most `bytes` of magnitude.
    fn unsigned_fits(content: &[u8], bytes: usize) -> bool {
        match content {
            [] => false,
            [first, ..] if first & 0x80 != 0 => false,
            [0] => true,
            [0, next, ..] if next & 0x80 == 0 => false,
            [0, magnitude @ ..] => magnitude.len() <= bytes,
            magnitude => magnitude.len() <= bytes,
        }
    }

    /// `tlv` and everything inside it is well-formed DER.
    fn is_der(tlv: &Tlv<'_>, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let universal = tlv.tag & 0xc0 == 0;
        if tlv.tag & 0x20 != 0 {
            // Only SEQUENCE and SET are constructed among the universal types in DER.
            if universal && tlv.tag != 0x30 && tlv.tag != 0x31 {
                return false;
            }
            let Some(elements) = children(tlv.content) else {
                return false;
            };
            if tlv.tag == 0x31 && !elements.windows(2).all(|w| w[0].raw <= w[1].raw) {
                return false;
            }
            return elements.iter().all(|e| is_der(e, depth + 1));
        }
        if !universal {
            return true;
        }
        let content = tlv.content;
        match tlv.tag {
            0x00 => false,
            0x01 => matches!(content, [0x00] | [0xff]),
            0x02 => match content {
                [] => false,
                [0x00, next, ..] => next & 0x80 != 0,
                [0xff, next, ..] => next & 0x80 == 0,
                _ => true,
            },
            0x03 => bit_string_ok(content),
            0x05 => content.is_empty(),
            // SEQUENCE and SET are always constructed.
            0x10 | 0x11 => false,
            0x06 => oid_is_der(content),
            0x13 => content.iter().all(|&b| is_printable(b)),
            0x1c => {
                content.len() % 4 == 0
                    && content.chunks_exact(4).all(|c| {
                        char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).is_some()
                    })
            }
            0x1e => {
                content.len() % 2 == 0
                    && char::decode_utf16(
                        content
                            .chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]])),
                    )
                    .all(|c| c.is_ok())
            }
            _ => true,
        }
    }

    fn bit_string_ok(content: &[u8]) -> bool {
        match content {
            [unused, ..] if *unused > 7 => false,
            [unused] => *unused == 0,
            [unused, .., last] => last & ((1u8 << unused) - 1) == 0,
            [] => false,
        }
    }

    pub fn oid_is_der(content: &[u8]) -> bool {
        // Non-empty, each sub-identifier minimal (no leading 0x80) and terminated.
        !content.is_empty()
            && content.last().is_some_and(|b| b & 0x80 == 0)
            && content
                .iter()
                .enumerate()
                .all(|(i, &b)| b != 0x80 || (i > 0 && content[i - 1] & 0x80 != 0))
    }

    fn is_printable(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
    }
}

// --- formatting ----------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Lowercase hex of a non-negative serial's content octets, without leading zeros.
fn serial_hex(raw: &[u8]) -> String {
    let digits = hex(raw);
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_names() {
        for good in ["a", "0", "acme.example", "a-b", &"a".repeat(63)] {
            assert!(is_fleet_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", ".a", &"a".repeat(64)] {
            assert!(!is_fleet_name(bad), "{bad}");
        }
    }

    #[test]
    fn device_ids() {
        for good in ["a", "Dev_1.x-2", &"a".repeat(128)] {
            assert!(is_device_id(good), "{good}");
        }
        for bad in ["", "_a", ".a", "a/b", "a b", &"a".repeat(129)] {
            assert!(!is_device_id(bad), "{bad}");
        }
    }

    #[test]
    fn parsed_extension_oids_match_their_names() {
        for &(encoded, name) in PARSED_EXTENSIONS {
            let oid = Oid::new(Cow::Borrowed(encoded));
            assert_eq!(oid.to_id_string(), name);
        }
        assert_eq!(
            Oid::new(Cow::Borrowed(&[0x55, 0x04, 0x2d])).to_id_string(),
            "2.5.4.45"
        );
    }

    #[test]
    fn serials() {
        assert_eq!(serial_hex(&[0]), "0");
        assert_eq!(serial_hex(&[0, 0x80]), "80");
        assert_eq!(serial_hex(&[0x01, 0x0a]), "10a");
    }

    #[test]
    fn rsa_modulus_sizes() {
        // SEQUENCE { INTEGER 0x00ff..., INTEGER 65537 }: a 2040-bit modulus.
        let modulus = [0xffu8; 255];
        let mut body = vec![0x02, 0x82, 0x01, 0x00, 0x00];
        body.extend_from_slice(&modulus);
        body.extend_from_slice(&[0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut key_ok = vec![0x30, 0x82];
        key_ok.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        key_ok.extend_from_slice(&body);
        assert_eq!(rsa_modulus_bits(&key_ok), Some(2040));
        assert_eq!(rsa_modulus_bits(&key_ok[..key_ok.len() - 1]), None);
        // Even exponent, exponent >= modulus.
        assert_eq!(
            rsa_modulus_bits(&[0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 0x04]),
            None
        );
        assert_eq!(
            rsa_modulus_bits(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x05]),
            None
        );
        assert_eq!(
            rsa_modulus_bits(&[0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 0x03]),
            Some(7)
        );
    }

    #[test]
    fn ec_point_forms() {
        let mut hybrid = vec![0x06];
        hybrid.extend_from_slice(&[0u8; 64]);
        assert!(ec_point(&hybrid, 32).is_some_and(|p| p[0] == 0x04));
        hybrid[0] = 0x07; // odd parity claimed, y is even
        assert!(ec_point(&hybrid, 32).is_none());
        assert!(ec_point(&[0x00], 32).is_none());
        assert!(ec_point(&[0x05; 33], 32).is_none());
    }

    #[test]
    fn refusals_never_panic() {
        let inputs: [&[u8]; 6] = [
            b"",
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"  -----BEGIN CERTIFICATE-----",
            b"-----BEGIN CERTIFICATE-----\n=\n-----END CERTIFICATE-----",
            &[0u8; MAX_CERTIFICATE_SIZE + 1],
        ];
        for input in inputs {
            assert!(extract(input).is_err());
        }
    }
}
