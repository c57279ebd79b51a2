//! Timestamp values: `YYYY-MM-DD`, RFC 3339 and relative times, as Unix microseconds.

/// Microseconds per second.
pub const MICROS: i64 = 1_000_000;
const DAY_MICROS: i64 = 86_400 * MICROS;
/// 0001-01-01T00:00:00Z.
pub const MIN_MICROS: i64 = -62_135_596_800 * MICROS;
/// 9999-12-31T23:59:59.999999Z.
pub const MAX_MICROS: i64 = 253_402_300_800 * MICROS - 1;
/// The accepted range of the `now` argument, Unix seconds.
pub const MIN_NOW: f64 = -62_135_596_800.0;
pub const MAX_NOW: f64 = 253_402_300_799.0;

/// Why a value is not a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// Not one of the accepted forms (or an impossible date or time).
    Invalid,
    /// A valid form outside years 1 to 9999.
    OutOfRange,
}

/// Unix seconds as every backend compares them: `float(micros) / 1e6`.
pub fn seconds(micros: i64) -> f64 {
    micros as f64 / 1e6
}

/// `now` (Unix seconds) as microseconds, rounded half to even; None outside the range.
pub fn now_micros(now: f64) -> Option<i64> {
    if !(MIN_NOW..=MAX_NOW).contains(&now) {
        return None;
    }
    // In range, so the product fits an i64 exactly enough: |now * 1e6| < 2.6e17.
    Some((now * 1e6).round_ties_even() as i64)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let end = self.i.checked_add(n)?;
        let part = self.b.get(self.i..end)?;
        let mut v: i64 = 0;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        self.i = end;
        Some(v)
    }

    fn byte(&mut self, allowed: &[u8]) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        if allowed.contains(&c) {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }

    fn at_end(&self) -> bool {
        self.i == self.b.len()
    }
}

/// Parse a timestamp value against `now` (microseconds).
pub fn parse(text: &str, now: i64) -> Result<i64, TimeError> {
    let micros = if let Some(rest) = text.strip_prefix('-') {
        relative(rest, now)?
    } else {
        absolute(text.as_bytes()).ok_or(TimeError::Invalid)?
    };
    if (MIN_MICROS..=MAX_MICROS).contains(&micros) {
        Ok(micros)
    } else {
        Err(TimeError::OutOfRange)
    }
}

fn relative(rest: &str, now: i64) -> Result<i64, TimeError> {
    let b = rest.as_bytes();
    let Some((&unit, digits)) = b.split_last() else {
        return Err(TimeError::Invalid);
    };
    let unit_micros = match unit {
        b's' => MICROS,
        b'm' => 60 * MICROS,
        b'h' => 3600 * MICROS,
        b'd' => DAY_MICROS,
        _ => return Err(TimeError::Invalid),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(TimeError::Invalid);
    }
    if digits.len() > 12 {
        return Err(TimeError::OutOfRange);
    }
    let n = digits
        .iter()
        .fold(0i128, |acc, &c| acc * 10 + i128::from(c - b'0'));
    let micros = i128::from(now) - n * i128::from(unit_micros);
    i64::try_from(micros).map_err(|_| TimeError::OutOfRange)
}

fn absolute(b: &[u8]) -> Option<i64> {
    let mut c = Cursor { b, i: 0 };
    let year = c.digits(4)?;
    c.byte(b"-")?;
    let month = c.digits(2)?;
    c.byte(b"-")?;
    let day = c.digits(2)?;
    let (mut hour, mut minute, mut second, mut fraction, mut offset) = (0, 0, 0, 0, 0);
    if !c.at_end() {
        c.byte(b"Tt ")?;
        hour = c.digits(2)?;
        c.byte(b":")?;
        minute = c.digits(2)?;
        c.byte(b":")?;
        second = c.digits(2)?;
        if c.byte(b".").is_some() {
            let start = c.i;
            while c.i < b.len() && b[c.i].is_ascii_digit() {
                c.i += 1;
            }
            let frac = &b[start..c.i];
            if frac.is_empty() {
                return None;
            }
            for k in 0..6 {
                fraction = fraction * 10 + frac.get(k).map_or(0, |&d| i64::from(d - b'0'));
            }
        }
        if c.byte(b"Zz").is_none() {
            let sign = c.byte(b"+-")?;
            let off_h = c.digits(2)?;
            c.byte(b":")?;
            let off_m = c.digits(2)?;
            if off_h > 23 || off_m > 59 {
                return None;
            }
            offset = (off_h * 3600 + off_m * 60) * if sign == b'+' { 1 } else { -1 };
        }
        if !c.at_end() || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
    }
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs * MICROS + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 1), 19_723);
        assert_eq!(days_from_civil(1, 1, 1) * 86_400 * MICROS, MIN_MICROS);
        assert_eq!(
            (days_from_civil(9999, 12, 31) + 1) * DAY_MICROS - 1,
            MAX_MICROS
        );
    }

    #[test]
    fn forms() {
        let now = 1_700_000_000 * MICROS;
        assert_eq!(parse("2024-01-01", now), Ok(19_723 * DAY_MICROS));
        assert_eq!(
            parse("2024-01-01T01:00:00.5+01:00", now),
            Ok(19_723 * DAY_MICROS + 500_000)
        );
        assert_eq!(parse("2024-02-30", now), Err(TimeError::Invalid));
        assert_eq!(parse("-10m", now), Ok(now - 600 * MICROS));
        assert_eq!(parse("-9999999999999d", now), Err(TimeError::OutOfRange));
        assert_eq!(
            parse("0001-01-01T00:00:00+00:01", now),
            Err(TimeError::OutOfRange)
        );
        assert_eq!(parse("-", now), Err(TimeError::Invalid));
        assert_eq!(parse("2024-01-01T", now), Err(TimeError::Invalid));
    }
}
