//! Columnar evaluation: the tree becomes one bitmap per node (64 rows per word), leaves
//! are tight loops over contiguous columns, and the set bits become row indexes.
//!
//! String predicates are decided once per dictionary word, then rows only compare codes
//! (one or two matching codes) or look up a per-word mask. A term over a missing column
//! matches nothing; NULL codes and NaN never match, so `Not` is plain bitwise negation.

use super::ir::{CompareTerm, Kind, Node, Op, StringTerm};
use super::snapshot::{DictColumn, Snapshot};

/// The rows of `snapshot` that `node` matches, ascending.
pub fn evaluate(node: &Node, snapshot: &Snapshot) -> Vec<u32> {
    let bits = bitmap(node, snapshot);
    let count: usize = bits.iter().map(|w| w.count_ones() as usize).sum();
    let mut rows = Vec::with_capacity(count);
    for (k, &word) in bits.iter().enumerate() {
        let base = (k as u32) << 6;
        let mut w = word;
        while w != 0 {
            rows.push(base + w.trailing_zeros());
            w &= w - 1;
        }
    }
    rows
}

fn words(size: usize) -> usize {
    size.div_ceil(64)
}

/// Clear the bits past the last row (after a negation).
fn clear_tail(bits: &mut [u64], size: usize) {
    let used = size % 64;
    if used != 0 {
        if let Some(last) = bits.last_mut() {
            *last &= (1u64 << used) - 1;
        }
    }
}

fn bitmap(node: &Node, snap: &Snapshot) -> Vec<u64> {
    let n = words(snap.size);
    match node {
        Node::All => {
            let mut bits = vec![u64::MAX; n];
            clear_tail(&mut bits, snap.size);
            bits
        }
        Node::Not(child) => {
            let mut bits = bitmap(child, snap);
            for w in &mut bits {
                *w = !*w;
            }
            clear_tail(&mut bits, snap.size);
            bits
        }
        Node::And(children) => {
            let mut acc: Option<Vec<u64>> = None;
            for child in children {
                match acc.as_mut() {
                    None => acc = Some(bitmap(child, snap)),
                    Some(bits) => {
                        if bits.iter().all(|&w| w == 0) {
                            break;
                        }
                        for (a, b) in bits.iter_mut().zip(bitmap(child, snap)) {
                            *a &= b;
                        }
                    }
                }
            }
            acc.unwrap_or_else(|| vec![0; n])
        }
        Node::Or(children) => {
            let mut acc = vec![0u64; n];
            for child in children {
                for (a, b) in acc.iter_mut().zip(bitmap(child, snap)) {
                    *a |= b;
                }
            }
            acc
        }
        Node::Str(term) => string_term(term, snap, n),
        Node::Cmp(term) => compare_term(term, snap, n),
    }
}

/// Set bit `j` of word `k` when `pred(col[64 * k + j])`.
#[inline(always)]
fn fill<T: Copy>(out: &mut [u64], col: &[T], pred: impl Fn(T) -> bool) {
    let mut chunks = col.chunks_exact(64);
    for (w, chunk) in out.iter_mut().zip(&mut chunks) {
        let mut bits = 0u64;
        for (j, &v) in chunk.iter().enumerate() {
            bits |= u64::from(pred(v)) << j;
        }
        *w = bits;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        if let Some(last) = out.get_mut(col.len() / 64) {
            let mut bits = 0u64;
            for (j, &v) in rest.iter().enumerate() {
                bits |= u64::from(pred(v)) << j;
            }
            *last = bits;
        }
    }
}

/// Per-word truth of `term` over a dictionary.
fn word_mask(words: &[String], term: &StringTerm) -> Vec<bool> {
    words.iter().map(|w| term.test(w)).collect()
}

fn dict_term(column: &DictColumn, term: &StringTerm, n: usize) -> Vec<u64> {
    let mut out = vec![0u64; n];
    let mask = word_mask(&column.words, term);
    let hits: Vec<u32> = mask
        .iter()
        .enumerate()
        .filter(|(_, &m)| m)
        .map(|(k, _)| k as u32)
        .take(3)
        .collect();
    let codes = column.codes.as_slice();
    match *hits.as_slice() {
        [] => {}
        [a] => fill(&mut out, codes, |c| c == a),
        [a, b] => fill(&mut out, codes, |c| c == a || c == b),
        _ => fill(&mut out, codes, |c| {
            mask.get(c as usize).copied().unwrap_or(false)
        }),
    }
    out
}

fn string_term(term: &StringTerm, snap: &Snapshot, n: usize) -> Vec<u64> {
    match term.field.kind {
        Kind::Tags => {
            let mut out = vec![0u64; n];
            let Some(tags) = &snap.tags else {
                return out;
            };
            let mask = word_mask(&tags.words, term);
            if !mask.contains(&true) {
                return out;
            }
            for (row, bounds) in tags.offsets.windows(2).enumerate() {
                let (lo, hi) = (bounds[0] as usize, bounds[1] as usize);
                let hit = tags.codes.get(lo..hi).is_some_and(|codes| {
                    codes
                        .iter()
                        .any(|&c| mask.get(c as usize).copied().unwrap_or(false))
                });
                if hit {
                    if let Some(w) = out.get_mut(row / 64) {
                        *w |= 1 << (row % 64);
                    }
                }
            }
            out
        }
        Kind::Metadata => match term.key.as_deref().and_then(|k| snap.metadata.get(k)) {
            Some(column) => dict_term(column, term, n),
            None => vec![0; n],
        },
        _ => match snap.strings.get(term.field.slot).and_then(Option::as_ref) {
            Some(column) => dict_term(column, term, n),
            None => vec![0; n],
        },
    }
}

fn compare_into(out: &mut [u64], col: &[f64], op: Op, x: f64) {
    match op {
        Op::Eq => fill(out, col, |v| v == x),
        Op::Gt => fill(out, col, |v| v > x),
        Op::Lt => fill(out, col, |v| v < x),
        Op::Ge => fill(out, col, |v| v >= x),
        Op::Le => fill(out, col, |v| v <= x),
    }
}

fn compare_term(term: &CompareTerm, snap: &Snapshot, n: usize) -> Vec<u64> {
    let mut out = vec![0u64; n];
    let Some(col) = snap.numbers.get(term.field.slot).and_then(Option::as_ref) else {
        return out;
    };
    match term.values.as_slice() {
        [x] => compare_into(&mut out, col, term.op, *x),
        values => {
            let mut part = vec![0u64; n];
            for &x in values {
                compare_into(&mut part, col, term.op, x);
                for (a, b) in out.iter_mut().zip(&part) {
                    *a |= b;
                }
            }
        }
    }
    out
}
