//! Binary format version 1: what `to_bytes` writes and `from_bytes` reads.
//!
//! The layout is documented in `core_ext/reference/sketch.py` (module docstring) and the
//! stub. Decoding checks in the reference's order, so both refuse the same input with the
//! same message; nothing is allocated in proportion to a claimed size before it has been
//! checked against `max_bins` (at most 65536).

use super::core::{accuracy_in_range, Core, MAX_BINS, MAX_COUNT};
use super::store::Store;

pub const MAGIC: &[u8; 2] = b"DS";
pub const FORMAT_VERSION: u8 = 1;

fn uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_store(out: &mut Vec<u8>, store: &Store) {
    let n = store.bins().count();
    uvarint(out, n as u64);
    let mut previous: Option<i64> = None;
    for (key, count) in store.bins() {
        match previous {
            None => uvarint(out, ((key << 1) ^ (key >> 63)) as u64),
            Some(p) => uvarint(out, (key - p - 1) as u64),
        }
        uvarint(out, count);
        previous = Some(key);
    }
}

pub fn encode(core: &Core) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&core.alpha.to_le_bytes());
    uvarint(&mut out, u64::from(core.max_bins));
    uvarint(&mut out, core.zero_count);
    let stats = if core.count > 0 {
        [core.sum, core.min, core.max]
    } else {
        [0.0; 3]
    };
    for value in stats {
        out.extend_from_slice(&value.to_le_bytes());
    }
    write_store(&mut out, &core.negative);
    write_store(&mut out, &core.positive);
    out
}

/// Why `from_bytes` refused its input: the message after `"malformed sketch: "`.
pub type Refusal = String;

fn refuse<T>(why: &str) -> Result<T, Refusal> {
    Err(why.to_owned())
}

struct Reader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, size: usize) -> Result<&'a [u8], Refusal> {
        let Some(chunk) = self.data.get(self.position..self.position + size) else {
            return refuse("truncated");
        };
        self.position += size;
        Ok(chunk)
    }

    fn f64(&mut self) -> Result<f64, Refusal> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(bytes))
    }

    fn uvarint(&mut self) -> Result<u64, Refusal> {
        let mut value: u128 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.data.get(self.position) else {
                return refuse("truncated");
            };
            self.position += 1;
            value |= u128::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                if (byte == 0 && shift > 0) || value > u128::from(u64::MAX) {
                    return refuse("malformed varint");
                }
                return Ok(value as u64);
            }
        }
        refuse("malformed varint")
    }
}

pub fn decode(data: &[u8]) -> Result<Core, Refusal> {
    let mut reader = Reader { data, position: 0 };
    if reader.take(2)? != MAGIC {
        return refuse("not a sketch (bad magic)");
    }
    let version = reader.take(1)?[0];
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported version {version} (this build reads version {FORMAT_VERSION})"
        ));
    }
    let alpha = reader.f64()?;
    if !accuracy_in_range(alpha) {
        return refuse("relative_accuracy out of range");
    }
    let max_bins = reader.uvarint()?;
    if !(1..=u64::from(MAX_BINS)).contains(&max_bins) {
        return refuse("max_bins out of range");
    }
    let mut core = Core::new(alpha, max_bins as u32);
    let mut total = u128::from(reader.uvarint()?);
    if total > u128::from(MAX_COUNT) {
        return refuse("count too large");
    }
    core.zero_count = total as u64;
    let (sum, min, max) = (reader.f64()?, reader.f64()?, reader.f64()?);
    let limit = core.index_limit;
    for positive in [false, true] {
        let n = reader.uvarint()?;
        if n > max_bins {
            return refuse("more bins than max_bins");
        }
        let mut bins: Vec<(i64, u64)> = Vec::with_capacity(n as usize);
        let (mut first, mut previous) = (0i64, 0i64);
        for i in 0..n {
            let key = if i == 0 {
                let z = reader.uvarint()?;
                let key = ((z >> 1) as i64) ^ -((z & 1) as i64);
                if !(-limit..=limit).contains(&key) {
                    return refuse("bin key out of range");
                }
                first = key;
                key
            } else {
                let delta = reader.uvarint()?;
                if delta >= max_bins {
                    return refuse("bins span more than max_bins");
                }
                let key = previous + 1 + delta as i64;
                if key - first >= max_bins as i64 {
                    return refuse("bins span more than max_bins");
                }
                if key > limit {
                    return refuse("bin key out of range");
                }
                key
            };
            let count = reader.uvarint()?;
            if count == 0 {
                return refuse("empty bin");
            }
            total += u128::from(count);
            if total > u128::from(MAX_COUNT) {
                return refuse("count too large");
            }
            bins.push((key, count));
            previous = key;
        }
        let store = if positive {
            &mut core.positive
        } else {
            &mut core.negative
        };
        if let (Some(&(lo, _)), Some(&(hi, _))) = (bins.first(), bins.last()) {
            store.reserve(lo, hi);
            for (key, count) in bins {
                store.add(key, count);
            }
        }
    }
    if reader.position != data.len() {
        return refuse("trailing bytes");
    }
    let count = total as u64;
    check_statistics(&core, count, sum, min, max)?;
    core.count = count;
    core.sum = sum;
    core.min = min;
    core.max = max;
    Ok(core)
}

fn check_statistics(core: &Core, count: u64, sum: f64, min: f64, max: f64) -> Result<(), Refusal> {
    if count == 0 {
        if sum.to_bits() != 0 || min.to_bits() != 0 || max.to_bits() != 0 {
            return refuse("an empty sketch with a sum, min or max");
        }
        return Ok(());
    }
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return refuse("min and max are not finite and ordered");
    }
    let negatives = !core.negative.is_empty();
    let zeros = core.zero_count > 0;
    let positives = !core.positive.is_empty();
    if negatives != (min < 0.0)
        || positives != (max > 0.0)
        || (zeros && !(min <= 0.0 && 0.0 <= max))
        || (!zeros && (min == 0.0 || max == 0.0))
    {
        return refuse("min and max disagree with the bins");
    }
    Ok(())
}
