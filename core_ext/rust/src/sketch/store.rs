//! One store of a sketch: counts by key in a dense window, the lowest keys collapsed.
//!
//! The store never holds more than `max_bins` consecutive keys: a key `k` is counted under
//! `max(k, H - max_bins + 1)`, `H` being the highest key ever added. That rule does not
//! depend on the order of insertion, so a batch (`reserve` then `add`) leaves the store
//! exactly as the reference's one-key-at-a-time insertion does, and merging commutes with
//! collapsing.

/// Counts by key. `lo`/`hi` are the lowest and highest non-empty keys (when not empty);
/// `counts` is a window starting at key `offset` that covers them, with some slack so that
/// keys arriving one by one do not copy the window each time. The window never exceeds
/// `max_bins` entries (16 when `max_bins` is smaller).
#[derive(Clone, Debug)]
pub struct Store {
    counts: Vec<u64>,
    offset: i64,
    lo: i64,
    hi: i64,
    total: u64,
    max_bins: i64,
}

impl Store {
    pub fn new(max_bins: u32) -> Self {
        Self {
            counts: Vec::new(),
            offset: 0,
            lo: 0,
            hi: 0,
            total: 0,
            max_bins: i64::from(max_bins),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The lowest and highest non-empty keys, `None` when empty.
    pub fn range(&self) -> Option<(i64, i64)> {
        (!self.is_empty()).then_some((self.lo, self.hi))
    }

    /// Prepare to add keys between `lo` and `hi` (`lo <= hi`), which the caller then adds
    /// with [`Store::add`], at least one of them equal to `lo` and one to `hi`: raise the
    /// floor to `max(H, hi) - max_bins + 1`, fold the bins below it into it, and make the
    /// window cover the new range.
    pub fn reserve(&mut self, lo: i64, hi: i64) {
        let (cur_lo, cur_hi) = self.range().unwrap_or((lo, hi));
        let new_hi = cur_hi.max(hi);
        let floor = new_hi - self.max_bins + 1;
        let new_lo = cur_lo.min(lo).max(floor);
        let mut moved = 0u64;
        if !self.is_empty() && cur_lo < floor {
            let end = floor.min(cur_hi + 1);
            for key in cur_lo..end {
                let slot = self.slot(key);
                moved += std::mem::take(&mut self.counts[slot]);
            }
        }
        if self.counts.is_empty()
            || new_lo < self.offset
            || new_hi >= self.offset + self.counts.len() as i64
        {
            self.regrow(new_lo, new_hi, lo < cur_lo);
        }
        if moved > 0 {
            let slot = self.slot(floor);
            self.counts[slot] += moved;
        }
        self.lo = new_lo;
        self.hi = new_hi;
    }

    /// A new window covering `[lo, hi]` with slack on the side that grew.
    fn regrow(&mut self, lo: i64, hi: i64, downwards: bool) {
        let span = hi - lo + 1;
        let len = (span + span / 2)
            .max(16)
            .min(self.max_bins.max(16))
            .max(span);
        let start = if downwards { hi - len + 1 } else { lo };
        let mut counts = vec![0u64; len as usize];
        if !self.counts.is_empty() {
            let old_end = self.offset + self.counts.len() as i64;
            let from = self.offset.max(start);
            let to = old_end.min(start + len);
            if from < to {
                let src = (from - self.offset) as usize..(to - self.offset) as usize;
                let dst = (from - start) as usize;
                counts[dst..dst + src.len()].copy_from_slice(&self.counts[src]);
            }
        }
        self.counts = counts;
        self.offset = start;
    }

    fn slot(&self, key: i64) -> usize {
        (key - self.offset) as usize
    }

    /// Count `key` (raised to the floor) `count` times; `reserve` covered it.
    #[inline]
    pub fn add(&mut self, key: i64, count: u64) {
        let key = key.max(self.hi - self.max_bins + 1);
        let slot = self.slot(key);
        self.counts[slot] += count;
        self.total += count;
    }

    /// Non-empty bins in ascending key order.
    pub fn bins(&self) -> impl DoubleEndedIterator<Item = (i64, u64)> + '_ {
        let (lo, hi) = self.range().unwrap_or((0, -1));
        (lo..=hi).filter_map(move |key| {
            let count = self.counts[self.slot(key)];
            (count > 0).then_some((key, count))
        })
    }
}
