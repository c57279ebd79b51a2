//! The sketch proper, without Python: mapping, exact statistics, merge and quantiles.
//!
//! Every floating-point step is the one `core_ext/reference/sketch.py` takes, in the same
//! order, with the same C library functions (`log`, `log1p`, `exp`), so keys, sums and
//! quantiles agree bit for bit with the reference.

use super::store::Store;

pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.01;
pub const DEFAULT_MAX_BINS: u32 = 2048;
pub const MIN_RELATIVE_ACCURACY: f64 = 1e-6;
pub const MAX_RELATIVE_ACCURACY: f64 = 0.5;
/// The largest `max_bins` accepted (per store).
pub const MAX_BINS: u32 = 65536;
/// The most values one sketch may hold (PostgreSQL's `bigint`).
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// Whether `alpha` is an accepted relative accuracy (NaN is not).
pub fn accuracy_in_range(alpha: f64) -> bool {
    (MIN_RELATIVE_ACCURACY..=MAX_RELATIVE_ACCURACY).contains(&alpha)
}

#[derive(Clone, Debug)]
pub struct Core {
    pub alpha: f64,
    pub max_bins: u32,
    ln_gamma: f64,
    multiplier: f64,
    /// Keys beyond `±index_limit` cannot come from a finite double.
    pub index_limit: i64,
    pub negative: Store,
    pub positive: Store,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Core {
    /// A new empty sketch; `alpha` and `max_bins` were checked by the caller.
    pub fn new(alpha: f64, max_bins: u32) -> Self {
        let ln_gamma = (2.0 * alpha / (1.0 - alpha)).ln_1p();
        let multiplier = 1.0 / ln_gamma;
        Self {
            alpha,
            max_bins,
            ln_gamma,
            multiplier,
            index_limit: (746.0 * multiplier).ceil() as i64,
            negative: Store::new(max_bins),
            positive: Store::new(max_bins),
            zero_count: 0,
            count: 0,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
        }
    }

    /// Whether `n` more values fit under `MAX_COUNT`.
    pub fn has_room_for(&self, n: u64) -> bool {
        n <= MAX_COUNT - self.count
    }

    #[inline]
    fn key(&self, magnitude: f64) -> i64 {
        (magnitude.ln() * self.multiplier).ceil() as i64
    }

    #[inline]
    fn note_extremes(&mut self, x: f64) {
        if self.count == 0 {
            let x = if x == 0.0 { 0.0 } else { x };
            self.min = x;
            self.max = x;
        } else if x < self.min {
            self.min = x;
        } else if x > self.max {
            self.max = x;
        }
    }

    /// `add(value, count)`: `x` finite, `1 <= n` and room checked by the caller.
    pub fn add(&mut self, x: f64, n: u64) {
        self.sum += x * n as f64;
        self.note_extremes(x);
        self.count += n;
        if x > 0.0 {
            let key = self.key(x);
            self.positive.reserve(key, key);
            self.positive.add(key, n);
        } else if x < 0.0 {
            let key = -self.key(-x);
            self.negative.reserve(key, key);
            self.negative.add(key, n);
        } else {
            self.zero_count += n;
        }
    }

    /// `add_many`: every value finite and room checked by the caller.
    ///
    /// Three passes: exact statistics and keys, one `reserve` per store for the batch's key
    /// range, then the counts. The result is the reference's one-by-one insertion.
    pub fn add_values(&mut self, values: &[f64]) {
        let mut keys: Vec<i64> = Vec::with_capacity(values.len());
        let (mut pos_lo, mut pos_hi) = (i64::MAX, i64::MIN);
        let (mut neg_lo, mut neg_hi) = (i64::MAX, i64::MIN);
        let mut zeros = 0u64;
        let mut sum = self.sum;
        for &x in values {
            sum += x;
            self.note_extremes(x);
            self.count += 1;
            if x > 0.0 {
                let key = self.key(x);
                pos_lo = pos_lo.min(key);
                pos_hi = pos_hi.max(key);
                keys.push(key);
            } else if x < 0.0 {
                let key = -self.key(-x);
                neg_lo = neg_lo.min(key);
                neg_hi = neg_hi.max(key);
                keys.push(key);
            } else {
                zeros += 1;
            }
        }
        self.sum = sum;
        self.zero_count += zeros;
        if pos_lo <= pos_hi {
            self.positive.reserve(pos_lo, pos_hi);
        }
        if neg_lo <= neg_hi {
            self.negative.reserve(neg_lo, neg_hi);
        }
        let mut keys = keys.into_iter();
        for &x in values {
            if x > 0.0 {
                if let Some(key) = keys.next() {
                    self.positive.add(key, 1);
                }
            } else if x < 0.0 {
                if let Some(key) = keys.next() {
                    self.negative.add(key, 1);
                }
            }
        }
    }

    /// Add everything `other` holds: same accuracy and room checked by the caller.
    pub fn merge(&mut self, other: &Core) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            if other.min < self.min {
                self.min = other.min;
            }
            if other.max > self.max {
                self.max = other.max;
            }
        }
        self.count += other.count;
        self.sum += other.sum;
        self.zero_count += other.zero_count;
        for (mine, theirs) in [
            (&mut self.negative, &other.negative),
            (&mut self.positive, &other.positive),
        ] {
            if let Some((lo, hi)) = theirs.range() {
                mine.reserve(lo, hi);
                for (key, count) in theirs.bins() {
                    mine.add(key, count);
                }
            }
        }
    }

    /// The estimate of the `q`-quantile (`0 <= q <= 1` checked by the caller).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        if q == 0.0 {
            return Some(self.min);
        }
        if q == 1.0 {
            return Some(self.max);
        }
        // floor(q * (count - 1)) as an integer: a bin answers when the cumulative count
        // exceeds it (integer comparisons, exact whatever the count).
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        for (key, count) in self.negative.bins() {
            seen += count;
            if seen > rank {
                return Some(self.clamp(-self.bucket_value(-key)));
            }
        }
        seen += self.zero_count;
        if seen > rank {
            return Some(self.clamp(0.0));
        }
        for (key, count) in self.positive.bins() {
            seen += count;
            if seen > rank {
                return Some(self.clamp(self.bucket_value(key)));
            }
        }
        Some(self.max)
    }

    fn bucket_value(&self, key: i64) -> f64 {
        (1.0 - self.alpha) * (key as f64 * self.ln_gamma).exp()
    }

    fn clamp(&self, value: f64) -> f64 {
        // The reference's min(max(value, min), max), comparison for comparison.
        let raised = if self.min > value { self.min } else { value };
        if self.max < raised {
            self.max
        } else {
            raised
        }
    }
}
