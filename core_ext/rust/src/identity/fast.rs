//! The fast path of identity extraction, for certificates in the shape fleetd's CA issues.
//!
//! Building `x509-parser`'s certificate model costs more than everything else identity
//! extraction does together. Device certificates are regular: a v3 certificate, names of
//! single-valued string attributes, the six extensions the CA writes. For those, this module
//! reads the fields straight from the DER that `strict` has already validated.
//!
//! It only ever *accepts*: it returns the identity exactly as the full path would, or `None`,
//! and the caller then runs the full path, which stays the one definition of every refusal
//! and of every unusual certificate (other extensions or string types, unique identifiers,
//! multi-valued RDNs, v1). Every check below either repeats one of the full path's or
//! narrows the shape further; narrowing is always safe, widening never is.

use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::strict::{self, Tlv};
use super::{
    check_key_algorithm_identifier, check_serial, device_uri_among, hex, key_algorithm, serial_hex,
    DeviceIdentity,
};

/// The identity of a device certificate in the common shape, or `None` (use the full path).
pub(super) fn extract(der: &[u8]) -> Option<DeviceIdentity> {
    if !strict::certificate_is_der(der) {
        return None;
    }
    let (certificate, _) = strict::read(der)?;
    let [tbs, _, _] = strict::children_n::<3>(certificate.content)?;
    let mut fields = Elements(tbs.content);
    let version = fields.next()?;
    if version.tag != 0xa0 || version.content != [0x02, 0x01, 0x02] {
        return None;
    }
    let serial = fields.next()?;
    check_serial(serial.content).ok()?;
    let _signature_algorithm = fields.next()?;
    single_valued_name(&fields.next()?, |_, _| {})?;
    let [not_before, not_after] = strict::children_n::<2>(fields.next()?.content)?;
    let (not_before, not_after) = (timestamp(&not_before)?, timestamp(&not_after)?);
    let mut common_names = 0;
    let mut common_name: &[u8] = &[];
    single_valued_name(&fields.next()?, |oid, value| {
        if oid == COMMON_NAME {
            common_names += 1;
            common_name = value;
        }
    })?;
    let spki = fields.next()?;
    let extensions = fields.next()?;
    if extensions.tag != 0xa3 || fields.next().is_some() || !fields.finished() {
        return None;
    }
    let san = device_extensions(&extensions)?;

    let uris = Elements(san).filter(|name| name.tag == 0x86);
    let uris = uris.map(|name| std::str::from_utf8(name.content).unwrap_or_default());
    let (fleet, device_id) = device_uri_among(uris).ok()?;
    if common_names != 1 || common_name != device_id.as_bytes() {
        return None;
    }

    let (_, public_key) = SubjectPublicKeyInfo::from_der(spki.raw).ok()?;
    check_key_algorithm_identifier(&public_key.algorithm).ok()?;
    let key_algorithm = key_algorithm(&public_key).ok()?;

    Some(DeviceIdentity {
        device_id: device_id.to_owned(),
        fleet: fleet.to_owned(),
        serial: serial_hex(serial.content),
        fingerprint: hex(&Sha256::digest(der)),
        not_before,
        not_after,
        key_algorithm,
    })
}

/// The TLVs that fill a byte string, in order; `finished` says whether all of it was read.
struct Elements<'a>(&'a [u8]);

impl<'a> Iterator for Elements<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let (tlv, rest) = strict::read(self.0)?;
        self.0 = rest;
        Some(tlv)
    }
}

impl Elements<'_> {
    fn finished(&self) -> bool {
        self.0.is_empty()
    }
}

const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03]; // 2.5.4.3

/// A non-empty Name whose RDNs hold one attribute each, valued by a UTF8String or by an
/// ASCII PrintableString or IA5String; `visit` sees each (type OID, value) pair.
fn single_valued_name<'a>(name: &Tlv<'a>, mut visit: impl FnMut(&'a [u8], &'a [u8])) -> Option<()> {
    let mut rdns = Elements(name.content);
    let mut count = 0usize;
    for rdn in &mut rdns {
        let [attribute] = strict::children_n::<1>(rdn.content)?;
        let [oid, value] = strict::children_n::<2>(attribute.content)?;
        let text = match value.tag {
            0x0c => std::str::from_utf8(value.content).is_ok(),
            0x13 | 0x16 => value.content.is_ascii(),
            _ => false,
        };
        if rdn.tag != 0x31 || attribute.tag != 0x30 || oid.tag != 0x06 || !text {
            return None;
        }
        visit(oid.content, value.content);
        count += 1;
    }
    (rdns.finished() && count > 0).then_some(())
}

/// `UTCTime` (YYMMDDHHMMSSZ, years 1950-2049) or `GeneralizedTime` (YYYYMMDDHHMMSSZ) as
/// Unix seconds; `strict` has checked the format and that the date exists.
fn timestamp(time: &Tlv<'_>) -> Option<i64> {
    let digits = match time.tag {
        0x17 => time.content.get(..12)?,
        0x18 => time.content.get(..14)?,
        _ => return None,
    };
    let number = |at: usize, len: usize| -> Option<i64> {
        digits.get(at..at + len)?.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, at) = if time.tag == 0x17 {
        let yy = number(0, 2)?;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
    } else {
        (number(0, 4)?, 4)
    };
    if year == 0 {
        return None;
    }
    let days = days_from_civil(year, number(at, 2)?, number(at + 2, 2)?);
    Some(days * 86_400 + number(at + 4, 2)? * 3_600 + number(at + 6, 2)? * 60 + number(at + 8, 2)?)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

const SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x0e];
const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const AUTHORITY_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x23];
const EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]; // 1.3.6.1.5.5.7.3.2

/// The extensions of a device certificate: only the six the CA writes, each at most once and
/// in a form the full path accepts, not a CA, clientAuth present. Returns the content of the
/// subjectAltName's GeneralNames.
fn device_extensions<'a>(field: &Tlv<'a>) -> Option<&'a [u8]> {
    let [list] = strict::children_n::<1>(field.content)?;
    let mut seen = 0u8;
    let mut client_auth = false;
    let mut san = None;
    let mut extensions = Elements(list.content);
    for extension in &mut extensions {
        // `strict` checked the shape: { extnID, critical TRUE (optional), extnValue }.
        let mut parts = Elements(extension.content);
        let oid = parts.next()?;
        let value = match parts.next()? {
            critical if critical.tag == 0x01 => parts.next()?,
            value => value,
        };
        let (bit, name) = match oid.content {
            SUBJECT_KEY_IDENTIFIER => (1, "2.5.29.14"),
            KEY_USAGE => (2, "2.5.29.15"),
            SUBJECT_ALT_NAME => (4, "2.5.29.17"),
            BASIC_CONSTRAINTS => (8, "2.5.29.19"),
            AUTHORITY_KEY_IDENTIFIER => (16, "2.5.29.35"),
            EXTENDED_KEY_USAGE => (32, "2.5.29.37"),
            _ => return None,
        };
        if seen & bit != 0
            || !strict::single_element_is_der(value.content)
            || !strict::extension_value_ok(name, value.content)
        {
            return None;
        }
        seen |= bit;
        let (inner, _) = strict::read(value.content)?;
        let mut elements = Elements(inner.content);
        match bit {
            // subjectKeyIdentifier, keyUsage: their form is all the full path checks.
            1 | 2 => {}
            // GeneralNames: the string forms (UTF-8, as the full path reads them) and IP
            // addresses.
            4 => {
                let plain = elements.all(|name| match name.tag {
                    0x81 | 0x82 | 0x86 => std::str::from_utf8(name.content).is_ok(),
                    0x87 => true,
                    _ => false,
                });
                if !plain {
                    return None;
                }
                san = Some(inner.content);
            }
            // basicConstraints: empty, i.e. not a CA (any other form is a CA or malformed).
            8 => {
                if elements.next().is_some() {
                    return None;
                }
            }
            // authorityKeyIdentifier: a keyIdentifier alone.
            16 => {
                if elements.next()?.tag != 0x80 || elements.next().is_some() {
                    return None;
                }
            }
            // extKeyUsage: clientAuth among the purposes.
            _ => client_auth = elements.any(|purpose| purpose.content == CLIENT_AUTH),
        }
    }
    (extensions.finished() && client_auth).then_some(san?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(1600, 2, 29), -135_081);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    }

    #[test]
    fn times() {
        let utc = Tlv {
            tag: 0x17,
            content: b"491231235959Z",
            raw: &[],
        };
        assert_eq!(timestamp(&utc), Some(2_524_607_999));
        let utc = Tlv {
            tag: 0x17,
            content: b"500101000000Z",
            raw: &[],
        };
        assert_eq!(timestamp(&utc), Some(-631_152_000));
        let generalized = Tlv {
            tag: 0x18,
            content: b"20600601000000Z",
            raw: &[],
        };
        assert_eq!(timestamp(&generalized), Some(2_853_273_600));
    }
}
