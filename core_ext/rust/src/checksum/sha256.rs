//! Streaming SHA-256 with a two-lane mode: one message into two chaining values at once.
//!
//! A chunk manifest hashes every byte twice, once for its chunk and once for the whole
//! file. While a chunk is being read both streams sit at the same block offset (chunk sizes
//! are multiples of the 64-byte block), so they compress the *same* message blocks: the
//! message schedule is computed once and the rounds run on two independent states. With the
//! x86 SHA extensions, whose round instruction is latency-bound, the second lane costs far
//! less than a second pass (measured on the benchmark machine: two lanes in about 1.4 times
//! the time of one). Elsewhere the two lanes are two calls to `sha2`'s compression function.
//!
//! Single streams use `sha2::block_api::compress256`, which picks SHA-NI (x86) or the ARMv8
//! SHA2 instructions at run time.

use sha2::block_api::compress256;

const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// One SHA-256 computation in progress.
#[derive(Clone)]
pub struct Stream {
    state: [u32; 8],
    pending: [u8; 64],
    pending_len: usize,
    length: u64,
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream {
    pub const fn new() -> Self {
        Self {
            state: IV,
            pending: [0; 64],
            pending_len: 0,
            length: 0,
        }
    }

    /// Bytes absorbed so far.
    pub const fn length(&self) -> u64 {
        self.length
    }

    pub fn update(&mut self, data: &[u8]) {
        let rest = self.fill_pending(data);
        if self.pending_len == 64 {
            compress256(&mut self.state, &[self.pending]);
            self.pending_len = 0;
        } else if rest.is_empty() {
            return;
        }
        let (blocks, tail) = as_blocks(rest);
        compress256(&mut self.state, blocks);
        self.keep(tail);
    }

    /// Top up the pending block from `data`; return what is left of `data`.
    fn fill_pending<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.pending_len == 0 {
            return data;
        }
        let take = (64 - self.pending_len).min(data.len());
        let (head, rest) = data.split_at(take);
        if let Some(slot) = self
            .pending
            .get_mut(self.pending_len..self.pending_len + take)
        {
            slot.copy_from_slice(head);
        }
        self.pending_len += take;
        rest
    }

    /// Keep the final partial block (`tail` is shorter than 64 bytes).
    fn keep(&mut self, tail: &[u8]) {
        if let Some(slot) = self.pending.get_mut(..tail.len()) {
            slot.copy_from_slice(tail);
            self.pending_len = tail.len();
        }
    }

    /// The digest of everything absorbed; the stream itself is unchanged.
    pub fn finish(&self) -> [u8; 32] {
        let mut state = self.state;
        let mut last = [0u8; 128];
        let n = self.pending_len;
        if let (Some(slot), Some(pending)) = (last.get_mut(..n), self.pending.get(..n)) {
            slot.copy_from_slice(pending);
        }
        if let Some(marker) = last.get_mut(n) {
            *marker = 0x80;
        }
        let total = if n < 56 { 64 } else { 128 };
        if let Some(slot) = last.get_mut(total - 8..total) {
            slot.copy_from_slice(&self.length.wrapping_mul(8).to_be_bytes());
        }
        let (blocks, _) = as_blocks(last.get(..total).unwrap_or_default());
        compress256(&mut state, blocks);
        let mut digest = [0u8; 32];
        for (out, word) in digest.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// `data` as whole 64-byte blocks and the bytes after them (`<[u8]>::as_chunks`, which
/// needs Rust 1.88; the crate's MSRV is 1.85).
fn as_blocks(data: &[u8]) -> (&[[u8; 64]], &[u8]) {
    let count = data.len() / 64;
    let (whole, rest) = data.split_at(count * 64);
    // SAFETY: `whole` is exactly `count` * 64 initialised bytes, and `[u8; 64]` has the
    // size of 64 bytes and the alignment of `u8`.
    let blocks = unsafe { std::slice::from_raw_parts(whole.as_ptr().cast::<[u8; 64]>(), count) };
    (blocks, rest)
}

/// Absorb `data` into both streams. When they hold the same pending bytes (always, for the
/// whole-file and current-chunk streams of a manifest) the blocks go through the two-lane
/// kernel; otherwise each stream is updated on its own.
pub fn update_pair(a: &mut Stream, b: &mut Stream, data: &[u8]) {
    let in_step = a.pending_len == b.pending_len
        && a.pending.get(..a.pending_len) == b.pending.get(..b.pending_len);
    if !in_step {
        a.update(data);
        b.update(data);
        return;
    }
    b.length = b.length.wrapping_add(data.len() as u64);
    let rest = a.fill_pending(data);
    if a.pending_len == 64 {
        compress_both(&mut a.state, &mut b.state, &[a.pending]);
        a.pending_len = 0;
    }
    if !rest.is_empty() {
        let (blocks, tail) = as_blocks(rest);
        compress_both(&mut a.state, &mut b.state, blocks);
        a.keep(tail);
    }
    b.pending = a.pending;
    b.pending_len = a.pending_len;
}

/// The digests of two independent messages, computed together: their common whole blocks
/// go through the two-lane kernel, the rest through one lane each.
pub fn digest_two(x: &[u8], y: &[u8]) -> ([u8; 32], [u8; 32]) {
    let (x_blocks, _) = as_blocks(x);
    let (y_blocks, _) = as_blocks(y);
    let common = x_blocks.len().min(y_blocks.len());
    let (mut a, mut b) = (Stream::new(), Stream::new());
    if let (Some(xs), Some(ys)) = (x_blocks.get(..common), y_blocks.get(..common)) {
        compress_two(&mut a.state, xs, &mut b.state, ys);
        a.length = (common * 64) as u64;
        b.length = a.length;
    }
    a.update(x.get(common * 64..).unwrap_or_default());
    b.update(y.get(common * 64..).unwrap_or_default());
    (a.finish(), b.finish())
}

/// Compress `a_blocks` into `a` and as many `b_blocks` into `b` (equal lengths).
fn compress_two(a: &mut [u32; 8], a_blocks: &[[u8; 64]], b: &mut [u32; 8], b_blocks: &[[u8; 64]]) {
    #[cfg(target_arch = "x86_64")]
    {
        if shani::available() && a_blocks.len() == b_blocks.len() {
            // SAFETY: the CPU has the SHA extensions and SSE4.1 (checked just above).
            unsafe { shani::compress_two(a, a_blocks, b, b_blocks) };
            return;
        }
    }
    compress256(a, a_blocks);
    compress256(b, b_blocks);
}

/// Compress the same `blocks` into two states.
fn compress_both(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
    if blocks.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if shani::available() {
            // SAFETY: the CPU has the SHA extensions and SSE4.1 (checked just above).
            unsafe { shani::compress_both(a, b, blocks) };
            return;
        }
    }
    compress256(a, blocks);
    compress256(b, blocks);
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
        _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
        _mm_shuffle_epi8, _mm_storeu_si128,
    };
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse4.1")
                && std::arch::is_x86_feature_detected!("ssse3")
        })
    }

    /// The round constants, four per `_mm_loadu_si128`.
    static K: [u32; 64] = [
        0x428a_2f98,
        0x7137_4491,
        0xb5c0_fbcf,
        0xe9b5_dba5,
        0x3956_c25b,
        0x59f1_11f1,
        0x923f_82a4,
        0xab1c_5ed5,
        0xd807_aa98,
        0x1283_5b01,
        0x2431_85be,
        0x550c_7dc3,
        0x72be_5d74,
        0x80de_b1fe,
        0x9bdc_06a7,
        0xc19b_f174,
        0xe49b_69c1,
        0xefbe_4786,
        0x0fc1_9dc6,
        0x240c_a1cc,
        0x2de9_2c6f,
        0x4a74_84aa,
        0x5cb0_a9dc,
        0x76f9_88da,
        0x983e_5152,
        0xa831_c66d,
        0xb003_27c8,
        0xbf59_7fc7,
        0xc6e0_0bf3,
        0xd5a7_9147,
        0x06ca_6351,
        0x1429_2967,
        0x27b7_0a85,
        0x2e1b_2138,
        0x4d2c_6dfc,
        0x5338_0d13,
        0x650a_7354,
        0x766a_0abb,
        0x81c2_c92e,
        0x9272_2c85,
        0xa2bf_e8a1,
        0xa81a_664b,
        0xc24b_8b70,
        0xc76c_51a3,
        0xd192_e819,
        0xd699_0624,
        0xf40e_3585,
        0x106a_a070,
        0x19a4_c116,
        0x1e37_6c08,
        0x2748_774c,
        0x34b0_bcb5,
        0x391c_0cb3,
        0x4ed8_aa4a,
        0x5b9c_ca4f,
        0x682e_6ff3,
        0x748f_82ee,
        0x78a5_636f,
        0x84c8_7814,
        0x8cc7_0208,
        0x90be_fffa,
        0xa450_6ceb,
        0xbef9_a3f7,
        0xc671_78f2,
    ];

    /// (ABEF, CDGH): the register layout the SHA round instruction works on.
    #[target_feature(enable = "sse2,ssse3,sse4.1")]
    fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        let [a, b, c, d, e, f, g, h] = *state;
        // SAFETY: reads 16 bytes from each 4-word array.
        let (dcba, hgfe) = unsafe {
            (
                _mm_loadu_si128([a, b, c, d].as_ptr().cast()),
                _mm_loadu_si128([e, f, g, h].as_ptr().cast()),
            )
        };
        let cdab = _mm_shuffle_epi32(dcba, 0xb1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1b);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xf0),
        )
    }

    #[target_feature(enable = "sse2,ssse3,sse4.1")]
    fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1b);
        let dchg = _mm_shuffle_epi32(cdgh, 0xb1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xf0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        let (mut low, mut high) = ([0u32; 4], [0u32; 4]);
        // SAFETY: writes 16 bytes into each 4-word array.
        unsafe {
            _mm_storeu_si128(low.as_mut_ptr().cast(), dcba);
            _mm_storeu_si128(high.as_mut_ptr().cast(), hgef);
        }
        let [a, b, c, d] = low;
        let [e, f, g, h] = high;
        *state = [a, b, c, d, e, f, g, h];
    }

    /// Two lanes of the SHA-NI compression function over the same message blocks.
    ///
    /// # Safety
    ///
    /// The CPU must support the SHA extensions, SSSE3 and SSE4.1 (see `available`).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress_both(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
        let (mut abef1, mut cdgh1) = load(a);
        let (mut abef2, mut cdgh2) = load(b);
        let byte_swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        for block in blocks {
            let saved = (abef1, cdgh1, abef2, cdgh2);
            // SAFETY: each load reads 16 of the block's 64 bytes.
            let mut w: [__m128i; 4] = std::array::from_fn(|i| unsafe {
                _mm_shuffle_epi8(
                    _mm_loadu_si128(block.as_ptr().add(16 * i).cast()),
                    byte_swap,
                )
            });
            for (round, k) in K.chunks_exact(4).enumerate() {
                let i = round % 4;
                if round >= 4 {
                    let t = _mm_add_epi32(
                        _mm_sha256msg1_epu32(w[i], w[(i + 1) % 4]),
                        _mm_alignr_epi8(w[(i + 3) % 4], w[(i + 2) % 4], 4),
                    );
                    w[i] = _mm_sha256msg2_epu32(t, w[(i + 3) % 4]);
                }
                // SAFETY: reads the four round constants of this group.
                let k = unsafe { _mm_loadu_si128(k.as_ptr().cast()) };
                let wk = _mm_add_epi32(w[i], k);
                let wk_high = _mm_shuffle_epi32(wk, 0x0e);
                cdgh1 = _mm_sha256rnds2_epu32(cdgh1, abef1, wk);
                cdgh2 = _mm_sha256rnds2_epu32(cdgh2, abef2, wk);
                abef1 = _mm_sha256rnds2_epu32(abef1, cdgh1, wk_high);
                abef2 = _mm_sha256rnds2_epu32(abef2, cdgh2, wk_high);
            }
            abef1 = _mm_add_epi32(abef1, saved.0);
            cdgh1 = _mm_add_epi32(cdgh1, saved.1);
            abef2 = _mm_add_epi32(abef2, saved.2);
            cdgh2 = _mm_add_epi32(cdgh2, saved.3);
        }
        store(a, abef1, cdgh1);
        store(b, abef2, cdgh2);
    }

    /// Two lanes over two different messages of as many blocks: each its own message
    /// schedule, the rounds interleaved so each lane's latency hides behind the other's.
    ///
    /// # Safety
    ///
    /// The CPU must support the SHA extensions, SSSE3 and SSE4.1 (see `available`).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub unsafe fn compress_two(
        a: &mut [u32; 8],
        a_blocks: &[[u8; 64]],
        b: &mut [u32; 8],
        b_blocks: &[[u8; 64]],
    ) {
        let (mut abef1, mut cdgh1) = load(a);
        let (mut abef2, mut cdgh2) = load(b);
        let byte_swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        for (block1, block2) in a_blocks.iter().zip(b_blocks) {
            let saved = (abef1, cdgh1, abef2, cdgh2);
            // SAFETY: each load reads 16 of a block's 64 bytes.
            let mut w1: [__m128i; 4] = std::array::from_fn(|i| unsafe {
                _mm_shuffle_epi8(
                    _mm_loadu_si128(block1.as_ptr().add(16 * i).cast()),
                    byte_swap,
                )
            });
            // SAFETY: as above.
            let mut w2: [__m128i; 4] = std::array::from_fn(|i| unsafe {
                _mm_shuffle_epi8(
                    _mm_loadu_si128(block2.as_ptr().add(16 * i).cast()),
                    byte_swap,
                )
            });
            for (round, k) in K.chunks_exact(4).enumerate() {
                let i = round % 4;
                if round >= 4 {
                    for w in [&mut w1, &mut w2] {
                        let t = _mm_add_epi32(
                            _mm_sha256msg1_epu32(w[i], w[(i + 1) % 4]),
                            _mm_alignr_epi8(w[(i + 3) % 4], w[(i + 2) % 4], 4),
                        );
                        w[i] = _mm_sha256msg2_epu32(t, w[(i + 3) % 4]);
                    }
                }
                // SAFETY: reads the four round constants of this group.
                let k = unsafe { _mm_loadu_si128(k.as_ptr().cast()) };
                let wk1 = _mm_add_epi32(w1[i], k);
                let wk2 = _mm_add_epi32(w2[i], k);
                cdgh1 = _mm_sha256rnds2_epu32(cdgh1, abef1, wk1);
                cdgh2 = _mm_sha256rnds2_epu32(cdgh2, abef2, wk2);
                abef1 = _mm_sha256rnds2_epu32(abef1, cdgh1, _mm_shuffle_epi32(wk1, 0x0e));
                abef2 = _mm_sha256rnds2_epu32(abef2, cdgh2, _mm_shuffle_epi32(wk2, 0x0e));
            }
            abef1 = _mm_add_epi32(abef1, saved.0);
            cdgh1 = _mm_add_epi32(cdgh1, saved.1);
            abef2 = _mm_add_epi32(abef2, saved.2);
            cdgh2 = _mm_add_epi32(cdgh2, saved.3);
        }
        store(a, abef1, cdgh1);
        store(b, abef2, cdgh2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
    }

    #[test]
    fn single_stream_matches_sha2() {
        for len in [
            0,
            1,
            55,
            56,
            63,
            64,
            65,
            119,
            120,
            127,
            128,
            1000,
            4096 + 17,
        ] {
            let input = data(len);
            for split in [0, 1, 63, 64, len / 2, len] {
                let split = split.min(len);
                let mut stream = Stream::new();
                stream.update(&input[..split]);
                stream.update(&input[split..]);
                assert_eq!(stream.finish(), <[u8; 32]>::from(Sha256::digest(&input)));
                assert_eq!(stream.length(), len as u64);
            }
        }
    }

    #[test]
    fn two_lanes_match_two_single_streams() {
        let input = data(10_000);
        let mut a = Stream::new();
        let mut b = Stream::new();
        a.update(&input[..128]);
        b.update(&input[..128]);
        for piece in input[128..].chunks(333) {
            update_pair(&mut a, &mut b, piece);
        }
        let expected = <[u8; 32]>::from(Sha256::digest(&input));
        assert_eq!(a.finish(), expected);
        assert_eq!(b.finish(), expected);
    }

    #[test]
    fn two_messages_at_once_match_sha2() {
        let x = data(5000);
        let y: Vec<u8> = data(7000).iter().map(|b| b ^ 0x5a).collect();
        for (xl, yl) in [
            (0, 0),
            (64, 64),
            (5000, 7000),
            (7000, 5000),
            (63, 1000),
            (4096, 4096),
        ] {
            let (xs, ys) = (&x[..xl.min(x.len())], &y[..yl.min(y.len())]);
            let (dx, dy) = digest_two(xs, ys);
            assert_eq!(dx, <[u8; 32]>::from(Sha256::digest(xs)));
            assert_eq!(dy, <[u8; 32]>::from(Sha256::digest(ys)));
        }
    }

    #[test]
    fn lanes_out_of_step_fall_back_to_separate_updates() {
        let input = data(5000);
        let mut a = Stream::new();
        let mut b = Stream::new();
        a.update(&input[..10]);
        update_pair(&mut a, &mut b, &input[10..]);
        assert_eq!(a.finish(), <[u8; 32]>::from(Sha256::digest(&input)));
        assert_eq!(b.finish(), <[u8; 32]>::from(Sha256::digest(&input[10..])));
    }
}
