//! AlgorithmIdentifier parameters as the reference's parser reads them.
//!
//! `cryptography` (its Rust `cryptography-x509` crate) decodes the parameters of every
//! AlgorithmIdentifier in a certificate (the TBS and outer signature algorithms, the subject
//! key's algorithm) according to the algorithm: absent for EdDSA and ECDSA, absent or NULL
//! for the hashes and RSA, a structure for EC keys, DSA, DH, RSA-PSS and a few others, and
//! any single element for algorithms it does not know. A certificate whose parameters do
//! not decode is malformed. The table below was checked against `cryptography` 50 (the
//! differential tests and the fuzzer's `--differential` mode keep checking it).

use super::strict::{self, Tlv};

#[derive(Clone, Copy)]
enum Params {
    /// Parameters absent.
    None,
    /// Absent, or NULL.
    OptionalNull,
    /// `ECParameters ::= CHOICE { namedCurve OID, implicitCurve NULL, specifiedCurve SEQUENCE }`
    Ec,
    /// Absent, or `RSASSA-PSS-params`.
    RsaPss,
    /// `Dss-Parms ::= SEQUENCE { p, q, g INTEGER }`
    Dsa,
    /// `DomainParameters ::= SEQUENCE { p, g, q INTEGER, j INTEGER OPTIONAL, validation SEQUENCE OPTIONAL }`
    Dhx,
    /// `DHParameter ::= SEQUENCE { p, g INTEGER, privateValueLength INTEGER OPTIONAL }`
    DhKeyAgreement,
    /// `PBES2-params ::= SEQUENCE { keyDerivationFunc, encryptionScheme AlgorithmIdentifier }`
    Pbes2,
    /// `PBKDF2-params ::= SEQUENCE { salt OCTET STRING, iterationCount, keyLength INTEGER OPTIONAL, prf DEFAULT hmacWithSHA1 }`
    Pbkdf2,
    /// `AES-IV ::= OCTET STRING (SIZE(16))`
    AesCbc,
    /// `PBEParameter ::= SEQUENCE { salt OCTET STRING (SIZE(8)), iterationCount INTEGER }`
    Pbes1,
}

/// Each known algorithm: its OID's content octets, dotted form, parameters.
const KNOWN: &[(&[u8], &str, Params)] = &[
    (&[0x2b, 0x65, 0x70], "1.3.101.112", Params::None), // Ed25519
    (&[0x2b, 0x65, 0x71], "1.3.101.113", Params::None), // Ed448
    (&[0x2b, 0x65, 0x6e], "1.3.101.110", Params::None), // X25519
    (&[0x2b, 0x65, 0x6f], "1.3.101.111", Params::None), // X448
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01],
        "1.2.840.10045.4.3.1",
        Params::None,
    ), // ecdsa-with-SHA224
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
        "1.2.840.10045.4.3.2",
        Params::None,
    ), // ecdsa-with-SHA256
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
        "1.2.840.10045.4.3.3",
        Params::None,
    ), // ecdsa-with-SHA384
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
        "1.2.840.10045.4.3.4",
        Params::None,
    ), // ecdsa-with-SHA512
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x09],
        "2.16.840.1.101.3.4.3.9",
        Params::None,
    ), // ecdsa-with-SHA3-224
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0a],
        "2.16.840.1.101.3.4.3.10",
        Params::None,
    ), // ecdsa-with-SHA3-256
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0b],
        "2.16.840.1.101.3.4.3.11",
        Params::None,
    ), // ecdsa-with-SHA3-384
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0c],
        "2.16.840.1.101.3.4.3.12",
        Params::None,
    ), // ecdsa-with-SHA3-512
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x01],
        "2.16.840.1.101.3.4.3.1",
        Params::None,
    ), // dsa-with-SHA224
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02],
        "2.16.840.1.101.3.4.3.2",
        Params::None,
    ), // dsa-with-SHA256
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x03],
        "2.16.840.1.101.3.4.3.3",
        Params::None,
    ), // dsa-with-SHA384
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x04],
        "2.16.840.1.101.3.4.3.4",
        Params::None,
    ), // dsa-with-SHA512
    (
        &[0x2b, 0x0e, 0x03, 0x02, 0x1a],
        "1.3.14.3.2.26",
        Params::OptionalNull,
    ), // SHA-1
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04],
        "2.16.840.1.101.3.4.2.4",
        Params::OptionalNull,
    ), // SHA-224
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        "2.16.840.1.101.3.4.2.1",
        Params::OptionalNull,
    ), // SHA-256
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
        "2.16.840.1.101.3.4.2.2",
        Params::OptionalNull,
    ), // SHA-384
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        "2.16.840.1.101.3.4.2.3",
        Params::OptionalNull,
    ), // SHA-512
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x07],
        "2.16.840.1.101.3.4.2.7",
        Params::OptionalNull,
    ), // SHA3-224
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x08],
        "2.16.840.1.101.3.4.2.8",
        Params::OptionalNull,
    ), // SHA3-256
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x09],
        "2.16.840.1.101.3.4.2.9",
        Params::OptionalNull,
    ), // SHA3-384
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x0a],
        "2.16.840.1.101.3.4.2.10",
        Params::OptionalNull,
    ), // SHA3-512
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
        "1.2.840.113549.1.1.1",
        Params::OptionalNull,
    ), // rsaEncryption
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
        "1.2.840.113549.1.1.5",
        Params::OptionalNull,
    ), // sha1WithRSAEncryption
    (
        &[0x2b, 0x0e, 0x03, 0x02, 0x1d],
        "1.3.14.3.2.29",
        Params::OptionalNull,
    ), // sha1WithRSASignature (OIW)
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e],
        "1.2.840.113549.1.1.14",
        Params::OptionalNull,
    ), // sha224WithRSAEncryption
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        "1.2.840.113549.1.1.11",
        Params::OptionalNull,
    ), // sha256WithRSAEncryption
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        "1.2.840.113549.1.1.12",
        Params::OptionalNull,
    ), // sha384WithRSAEncryption
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        "1.2.840.113549.1.1.13",
        Params::OptionalNull,
    ), // sha512WithRSAEncryption
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0d],
        "2.16.840.1.101.3.4.3.13",
        Params::OptionalNull,
    ), // RSA with SHA3-224
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0e],
        "2.16.840.1.101.3.4.3.14",
        Params::OptionalNull,
    ), // RSA with SHA3-256
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x0f],
        "2.16.840.1.101.3.4.3.15",
        Params::OptionalNull,
    ), // RSA with SHA3-384
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x10],
        "2.16.840.1.101.3.4.3.16",
        Params::OptionalNull,
    ), // RSA with SHA3-512
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07],
        "1.2.840.113549.2.7",
        Params::OptionalNull,
    ), // hmacWithSHA1
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09],
        "1.2.840.113549.2.9",
        Params::OptionalNull,
    ), // hmacWithSHA256
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
        "1.2.840.10045.2.1",
        Params::Ec,
    ), // id-ecPublicKey
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a],
        "1.2.840.113549.1.1.10",
        Params::RsaPss,
    ), // RSASSA-PSS
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01],
        "1.2.840.10040.4.1",
        Params::Dsa,
    ), // id-dsa
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01],
        "1.2.840.10046.2.1",
        Params::Dhx,
    ), // dhpublicnumber
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01],
        "1.2.840.113549.1.3.1",
        Params::DhKeyAgreement,
    ), // dhKeyAgreement
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d],
        "1.2.840.113549.1.5.13",
        Params::Pbes2,
    ), // PBES2
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c],
        "1.2.840.113549.1.5.12",
        Params::Pbkdf2,
    ), // PBKDF2
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02],
        "2.16.840.1.101.3.4.1.2",
        Params::AesCbc,
    ), // AES-128-CBC
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a],
        "2.16.840.1.101.3.4.1.42",
        Params::AesCbc,
    ), // AES-256-CBC
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03],
        "1.2.840.113549.1.12.1.3",
        Params::Pbes1,
    ), // pbeWithSHAAnd3-KeyTripleDES-CBC
];

/// `SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY DEFINED BY algorithm OPTIONAL }`
pub(super) fn algorithm_identifier_ok(tlv: &Tlv<'_>) -> bool {
    let Some((oid, params)) = (tlv.tag == 0x30)
        .then(|| strict::read(tlv.content))
        .flatten()
    else {
        return false;
    };
    oid.tag == 0x06 && strict::oid_is_der(oid.content) && parameters_ok(oid.content, params)
}

fn parameters_ok(oid: &[u8], params: &[u8]) -> bool {
    let Some(&(_, _, kind)) = KNOWN.iter().find(|(encoded, _, _)| *encoded == oid) else {
        // Unknown: any one element, unparsed.
        return params.is_empty() || strict::skip_element(params).is_some_and(<[u8]>::is_empty);
    };
    let single = || match strict::read(params) {
        Some((tlv, [])) => Some(tlv),
        _ => None,
    };
    match kind {
        Params::None => params.is_empty(),
        Params::OptionalNull => params.is_empty() || params == [0x05, 0x00],
        Params::Ec => single().is_some_and(|p| match p.tag {
            0x06 => strict::oid_is_der(p.content),
            0x05 => p.content.is_empty(),
            0x30 => strict::single_element_is_der(p.raw) && specified_curve_ok(&p),
            _ => false,
        }),
        Params::RsaPss => params.is_empty() || single().is_some_and(|p| rsa_pss_ok(&p)),
        Params::Dsa => single().is_some_and(|p| {
            sequence_of(&p).is_some_and(|f| matches!(f.as_slice(), [a, b, c] if [a, b, c].iter().all(|i| unsigned(i, usize::MAX))))
        }),
        Params::Dhx => single().is_some_and(|p| {
            sequence_of(&p).is_some_and(|f| match f.as_slice() {
                [p, g, q, rest @ ..] if [p, g, q].iter().all(|i| unsigned(i, usize::MAX)) => match rest {
                    [] => true,
                    [j] => unsigned(j, usize::MAX) || (j.tag == 0x30 && strict::single_element_is_der(j.raw)),
                    [j, v] => unsigned(j, usize::MAX) && v.tag == 0x30 && strict::single_element_is_der(v.raw),
                    _ => false,
                },
                _ => false,
            })
        }),
        Params::DhKeyAgreement => single().is_some_and(|p| {
            sequence_of(&p).is_some_and(|f| match f.as_slice() {
                [p, g] => unsigned(p, usize::MAX) && unsigned(g, usize::MAX),
                [p, g, length] => unsigned(p, usize::MAX) && unsigned(g, usize::MAX) && unsigned(length, 4),
                _ => false,
            })
        }),
        Params::Pbes2 => single().is_some_and(|p| {
            sequence_of(&p).is_some_and(|f| matches!(f.as_slice(), [kdf, scheme] if algorithm_identifier_ok(kdf) && algorithm_identifier_ok(scheme)))
        }),
        Params::Pbkdf2 => single().is_some_and(|p| {
            sequence_of(&p).is_some_and(|f| match f.as_slice() {
                [salt, count, rest @ ..] if salt.tag == 0x04 && unsigned(count, 8) => match rest {
                    [] => true,
                    [x] if x.tag == 0x02 => unsigned(x, 8),
                    [prf] => prf_ok(prf),
                    [length, prf] => unsigned(length, 8) && prf_ok(prf),
                    _ => false,
                },
                _ => false,
            })
        }),
        Params::AesCbc => single().is_some_and(|p| p.tag == 0x04 && p.content.len() == 16),
        Params::Pbes1 => single().is_some_and(|p| {
            sequence_of(&p).is_some_and(|f| matches!(f.as_slice(), [salt, count] if salt.tag == 0x04 && salt.content.len() == 8 && unsigned(count, 8)))
        }),
    }
}

/// `SpecifiedECDomain ::= SEQUENCE { version INTEGER, fieldID SEQUENCE { fieldType OID,
/// parameters ANY }, curve SEQUENCE { a, b OCTET STRING, seed BIT STRING OPTIONAL },
/// base OCTET STRING, order INTEGER, cofactor INTEGER OPTIONAL }`
fn specified_curve_ok(domain: &Tlv<'_>) -> bool {
    let Some(fields) = sequence_of(domain) else {
        return false;
    };
    let (version, field_id, curve, base, order, rest) = match fields.as_slice() {
        [v, f, c, b, o, rest @ ..] => (v, f, c, b, o, rest),
        _ => return false,
    };
    let field_ok = sequence_of(field_id)
        .is_some_and(|parts| matches!(parts.as_slice(), [oid, _] if oid.tag == 0x06));
    let curve_ok = sequence_of(curve).is_some_and(|parts| match parts.as_slice() {
        [a, b] => a.tag == 0x04 && b.tag == 0x04,
        [a, b, seed] => a.tag == 0x04 && b.tag == 0x04 && seed.tag == 0x03,
        _ => false,
    });
    let rest_ok = match rest {
        [] => true,
        [cofactor] => cofactor.tag == 0x02,
        _ => false,
    };
    version.tag == 0x02 && field_ok && curve_ok && base.tag == 0x04 && order.tag == 0x02 && rest_ok
}

/// The elements of a SEQUENCE.
fn sequence_of<'a>(tlv: &Tlv<'a>) -> Option<Vec<Tlv<'a>>> {
    (tlv.tag == 0x30)
        .then(|| strict::children(tlv.content))
        .flatten()
}

/// A non-negative, minimally encoded INTEGER of at most `bytes` magnitude octets.
fn unsigned(tlv: &Tlv<'_>, bytes: usize) -> bool {
    tlv.tag == 0x02
        && match tlv.content {
            [] => false,
            [first, ..] if first & 0x80 != 0 => false,
            [0] => true,
            [0, next, ..] if next & 0x80 == 0 => false,
            [0, magnitude @ ..] => magnitude.len() <= bytes,
            magnitude => magnitude.len() <= bytes,
        }
}

/// hmacWithSHA1, NULL: PBKDF2's default PRF, which DER must leave out.
const DEFAULT_PRF: &[u8] = &[
    0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07, 0x05, 0x00,
];

fn prf_ok(prf: &Tlv<'_>) -> bool {
    prf.raw != DEFAULT_PRF && algorithm_identifier_ok(prf)
}

/// SHA-1 with NULL parameters, and MGF1 over it: the RSASSA-PSS defaults.
const DEFAULT_PSS_HASH: &[u8] = &[
    0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
];
const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];

/// `RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0], maskGenAlgorithm [1],
/// saltLength [2] INTEGER, trailerField [3] INTEGER }`, each optional, each explicit, and the
/// first three not equal to their DEFAULT (DER); the reference reads saltLength as a u16 and
/// trailerField as a u8.
fn rsa_pss_ok(params: &Tlv<'_>) -> bool {
    let Some(fields) = sequence_of(params) else {
        return false;
    };
    let mut last_tag = 0;
    fields.iter().all(|field| {
        let in_order = field.tag > last_tag;
        last_tag = field.tag;
        let Some(inner) = strict::children_n::<1>(field.content).map(|[inner]| inner) else {
            return false;
        };
        in_order
            && match field.tag {
                0xa0 => inner.raw != DEFAULT_PSS_HASH && algorithm_identifier_ok(&inner),
                0xa1 => sequence_of(&inner).is_some_and(|parts| match parts.as_slice() {
                    [oid, hash] => {
                        oid.tag == 0x06
                            && strict::oid_is_der(oid.content)
                            && !(oid.content == MGF1 && hash.raw == DEFAULT_PSS_HASH)
                            && algorithm_identifier_ok(hash)
                    }
                    _ => false,
                }),
                0xa2 => unsigned(&inner, 2) && inner.content != [20],
                0xa3 => unsigned(&inner, 1),
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use x509_parser::asn1_rs::Oid;

    #[test]
    fn known_oids_match_their_names() {
        for &(encoded, name, _) in KNOWN {
            assert_eq!(Oid::new(Cow::Borrowed(encoded)).to_id_string(), name);
        }
        assert_eq!(
            Oid::new(Cow::Borrowed(MGF1)).to_id_string(),
            "1.2.840.113549.1.1.8"
        );
    }

    #[test]
    fn parameter_forms() {
        let ecdsa_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert!(parameters_ok(&ecdsa_sha256, &[]));
        assert!(!parameters_ok(&ecdsa_sha256, &[0x05, 0x00]));
        let sha256_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
        assert!(parameters_ok(&sha256_rsa, &[0x05, 0x00]));
        assert!(!parameters_ok(&sha256_rsa, &[0x02, 0x01, 0x00]));
        let unknown = [0x2a, 0x03];
        assert!(parameters_ok(&unknown, &[0x00, 0x02, 0xab, 0xcd]));
        assert!(parameters_ok(&unknown, &[0x1f, 0x81, 0x00, 0x00]));
        assert!(!parameters_ok(&unknown, &[0x05, 0x00, 0x05, 0x00]));
        let dsa = [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
        assert!(parameters_ok(
            &dsa,
            &[0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x05]
        ));
        assert!(!parameters_ok(
            &dsa,
            &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]
        ));
        let pss = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
        assert!(parameters_ok(&pss, &[]));
        assert!(parameters_ok(&pss, &[0x30, 0x00]));
        assert!(!parameters_ok(
            &pss,
            &[0x30, 0x05, 0xa2, 0x03, 0x02, 0x01, 0x14]
        ));
        assert!(parameters_ok(
            &pss,
            &[0x30, 0x05, 0xa2, 0x03, 0x02, 0x01, 0x20]
        ));
    }
}
