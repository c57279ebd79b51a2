//! The columnar fleet snapshot [`Filter.evaluate`](super::eval) runs over.
//!
//! Plain Rust data, built once (see `python.rs` for the checks made on the way in) and
//! immutable afterwards, so evaluation can run without the GIL. Row `i` of every column is
//! the same device.

use std::collections::HashMap;

use super::ir::{NUMBER_SLOTS, STRING_SLOTS};

/// The code of NULL (or a missing metadata key) in a dictionary-encoded column.
pub const NULL_CODE: u32 = u32::MAX;

/// A dictionary-encoded string column: row `i` holds `words[codes[i]]`, or NULL when
/// `codes[i]` is [`NULL_CODE`]. Every other code is `< words.len()` (checked on entry).
/// Words may repeat; predicates are computed per word, then per row.
#[derive(Debug, Default)]
pub struct DictColumn {
    pub words: Vec<String>,
    pub codes: Vec<u32>,
}

/// Tags in compressed-row form: row `i`'s tags are
/// `words[codes[j]] for j in offsets[i]..offsets[i + 1]`; `offsets` has `size + 1`
/// ascending entries from 0 to `codes.len()`, and every code is `< words.len()`.
#[derive(Debug, Default)]
pub struct TagsColumn {
    pub words: Vec<String>,
    pub offsets: Vec<u32>,
    pub codes: Vec<u32>,
}

/// A fleet, column by column. A column that is absent is NULL on every row.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub size: usize,
    /// By field slot (see `ir::FIELDS`): id, name, type, version, agent_version, fleet,
    /// status.
    pub strings: [Option<DictColumn>; STRING_SLOTS],
    /// By field slot: cpu_usage, memory_usage, disk_usage, uptime_seconds, last_seen,
    /// registered_at, updated_at. NaN is NULL; timestamps are Unix seconds.
    pub numbers: [Option<Vec<f64>>; NUMBER_SLOTS],
    pub metadata: HashMap<String, DictColumn>,
    pub tags: Option<TagsColumn>,
}

/// The first row whose code is neither `< dictionary_size` nor (when allowed) NULL.
pub fn first_bad_code(codes: &[u32], dictionary_size: usize, nulls: bool) -> Option<usize> {
    codes
        .iter()
        .position(|&c| (c as usize) >= dictionary_size && !(nulls && c == NULL_CODE))
}

/// Dictionary-encode values in first-seen order (the reference's `_encode`).
pub fn encode<S: AsRef<str>>(values: &[Option<S>]) -> DictColumn {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut words = Vec::new();
    let mut codes = Vec::with_capacity(values.len());
    for v in values {
        codes.push(match v {
            None => NULL_CODE,
            Some(s) => {
                let s = s.as_ref();
                *index.entry(s).or_insert_with(|| {
                    words.push(s.to_owned());
                    (words.len() - 1) as u32
                })
            }
        });
    }
    DictColumn { words, codes }
}
