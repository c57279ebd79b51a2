//! Chunk checksumming: the whole-file SHA-256 and a per-chunk digest manifest in one pass.
//!
//! A manifest lets a receiver verify every chunk of a transfer on its own (out of order, from
//! several sources, after a resume) and the whole file at the end. Both digests cover every
//! byte, so a manifest costs two SHA-256 computations per byte. Three ways to pay for them:
//!
//! - `ChunkHasher.update` on one thread runs both through the two-lane kernel (`sha256.rs`).
//! - `ChunkHasher.update` of a large buffer, with a second core available, hashes the chunks
//!   on a helper thread while the calling thread computes the whole-file digest.
//! - `hash_file` with `threads` > 1 reads and hashes chunks on `threads - 1` workers (two
//!   chunks at a time, two independent messages through the two-lane kernel) and feeds
//!   them, in order, to the whole-file digest on the calling thread. The chunk digests scale
//!   with the workers; the whole-file digest is one sequential stream, so the total never
//!   beats one core's SHA-256 speed: more than two threads only help when reading is slow.
//!
//! The GIL is released for every large input. The pure-Python reference
//! `core_ext/reference/checksum.py` defines the semantics.

mod helper;
mod sha256;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use sha256::{digest_two, update_pair, Stream};

/// The chunk size when none is given: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
/// The largest chunk size accepted: 1 GiB.
pub const MAX_CHUNK_SIZE: usize = 1 << 30;
/// The most threads `hash_file` accepts.
pub const MAX_THREADS: usize = 256;
/// Updates at least this long release the GIL.
const DETACH_MIN: usize = 16 << 10;
/// Updates at least this long may hash chunks and the whole file on two threads (handing
/// work to another thread costs tens of microseconds; this much data takes hundreds).
const SPLIT_MIN: usize = 1 << 20;
/// How much a split update hashes before deciding whether the helper took the other half.
const SPLIT_PROBE: usize = 256 << 10;

fn check_chunk_size(chunk_size: usize) -> PyResult<usize> {
    if (64..=MAX_CHUNK_SIZE).contains(&chunk_size) && chunk_size % 64 == 0 {
        Ok(chunk_size)
    } else {
        Err(PyValueError::new_err(format!(
            "chunk_size must be a multiple of 64 between 64 and {MAX_CHUNK_SIZE}, not {chunk_size}"
        )))
    }
}

/// `threads` as given (1 to `MAX_THREADS`), or the cores available.
fn check_threads(threads: Option<usize>) -> PyResult<usize> {
    match threads {
        None => Ok(available_cores().min(MAX_THREADS)),
        Some(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        Some(n) => Err(PyValueError::new_err(format!(
            "threads must be between 1 and {MAX_THREADS}, not {n}"
        ))),
    }
}

/// The cores this process may really use (affinity and cgroup quota included).
fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| thread::available_parallelism().map_or(1, usize::from))
}

fn hex(digest: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for &b in digest {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

// --- the streaming core --------------------------------------------------------------------

/// The whole-file stream, the current chunk's stream and the finished chunks' digests.
#[derive(Clone)]
struct Chunker {
    whole: Stream,
    chunk: Stream,
    chunk_size: u64,
    chunks: Vec<[u8; 32]>,
}

/// The result of hashing, before it becomes a Python `Manifest`.
struct Digests {
    sha256: [u8; 32],
    size: u64,
    chunk_size: u64,
    chunks: Vec<[u8; 32]>,
}

impl Chunker {
    fn new(chunk_size: usize) -> Self {
        Self {
            whole: Stream::new(),
            chunk: Stream::new(),
            chunk_size: chunk_size as u64,
            chunks: Vec::new(),
        }
    }

    /// Absorb `data` on this thread: both digests through the two-lane kernel.
    fn update(&mut self, data: &[u8]) {
        update_both(
            &mut self.whole,
            &mut self.chunk,
            &mut self.chunks,
            self.chunk_size,
            data,
        );
    }

    /// Absorb `data` on two threads when a second core is free: the whole-file digest is
    /// offered to the helper thread while this side hashes the first `SPLIT_PROBE` bytes'
    /// chunks. If the helper has not taken it by then, this side withdraws it and goes on
    /// with both digests through the two-lane kernel, so a busy machine costs no more than
    /// one thread.
    fn update_split(&mut self, data: &[u8]) {
        let Some(mut offer) = helper::offer(&mut self.whole, data) else {
            self.update(data);
            return;
        };
        let (head, tail) = data.split_at(SPLIT_PROBE.min(data.len()));
        update_chunks(&mut self.chunk, &mut self.chunks, self.chunk_size, head);
        if offer.withdraw() {
            drop(offer);
            self.whole.update(head);
            self.update(tail);
        } else {
            update_chunks(&mut self.chunk, &mut self.chunks, self.chunk_size, tail);
            drop(offer); // waits for the helper's whole-file digest
        }
    }

    fn digests(&self) -> Digests {
        let mut chunks = self.chunks.clone();
        if self.chunk.length() > 0 {
            chunks.push(self.chunk.finish());
        }
        Digests {
            sha256: self.whole.finish(),
            size: self.whole.length(),
            chunk_size: self.chunk_size,
            chunks,
        }
    }
}

/// How many of `available` bytes still fit in the current chunk (at least 1).
fn room(chunk: &Stream, chunk_size: u64, available: usize) -> usize {
    let room = chunk_size.saturating_sub(chunk.length()).max(1);
    usize::try_from(room).map_or(available, |room| room.min(available))
}

fn close_full_chunk(chunk: &mut Stream, chunks: &mut Vec<[u8; 32]>, chunk_size: u64) {
    if chunk.length() >= chunk_size {
        chunks.push(chunk.finish());
        *chunk = Stream::new();
    }
}

/// Both digests over `data`, through the two-lane kernel.
fn update_both(
    whole: &mut Stream,
    chunk: &mut Stream,
    chunks: &mut Vec<[u8; 32]>,
    chunk_size: u64,
    mut data: &[u8],
) {
    while !data.is_empty() {
        let (head, tail) = data.split_at(room(chunk, chunk_size, data.len()));
        update_pair(whole, chunk, head);
        close_full_chunk(chunk, chunks, chunk_size);
        data = tail;
    }
}

/// The chunk digests only, over `data`.
fn update_chunks(chunk: &mut Stream, chunks: &mut Vec<[u8; 32]>, chunk_size: u64, mut data: &[u8]) {
    while !data.is_empty() {
        let (head, tail) = data.split_at(room(chunk, chunk_size, data.len()));
        chunk.update(head);
        close_full_chunk(chunk, chunks, chunk_size);
        data = tail;
    }
}

// --- Python API ----------------------------------------------------------------------------

/// The digests of one file or stream: whole-file SHA-256 and one SHA-256 per chunk.
#[pyclass(frozen, eq, hash, module = "fleetd_native")]
#[derive(PartialEq, Eq, Hash)]
pub struct Manifest {
    sha256: String,
    size: u64,
    chunk_size: u64,
    chunks: Vec<String>,
}

impl From<Digests> for Manifest {
    fn from(digests: Digests) -> Self {
        Self {
            sha256: hex(&digests.sha256),
            size: digests.size,
            chunk_size: digests.chunk_size,
            chunks: digests.chunks.iter().map(hex).collect(),
        }
    }
}

#[pymethods]
impl Manifest {
    #[new]
    #[pyo3(signature = (sha256, size, chunk_size, chunks))]
    fn new(sha256: String, size: u64, chunk_size: u64, chunks: Vec<String>) -> Self {
        Self {
            sha256,
            size,
            chunk_size,
            chunks,
        }
    }

    #[getter]
    fn sha256(&self) -> &str {
        &self.sha256
    }

    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    #[getter]
    fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    #[getter]
    fn chunks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.chunks)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let sha256 = PyString::new(py, &self.sha256).repr()?;
        Ok(format!(
            "Manifest(sha256={sha256}, size={}, chunk_size={}, chunks=<{} digests>)",
            self.size,
            self.chunk_size,
            self.chunks.len()
        ))
    }
}

/// Streaming SHA-256 over chunks: feed any number of writes, then `finish()`.
#[pyclass(module = "fleetd_native")]
pub struct ChunkHasher {
    chunker: Chunker,
    /// Whether large updates may use a second thread.
    split: bool,
}

/// The bytes of a bytes-like object, while the caller holds `buffer` (if one was needed).
enum Input<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyUntypedBuffer),
}

impl<'py> Input<'py> {
    fn new(data: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(bytes) = data.cast::<PyBytes>() {
            return Ok(Self::Bytes(bytes.clone()));
        }
        let buffer = PyUntypedBuffer::get(data)?;
        if !buffer.is_c_contiguous() {
            return Err(PyBufferError::new_err("data must be a C-contiguous buffer"));
        }
        Ok(Self::Buffer(buffer))
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Bytes(bytes) => bytes.as_bytes(),
            Self::Buffer(buffer) => {
                let len = buffer.len_bytes();
                let ptr = buffer.buf_ptr().cast::<u8>().cast_const();
                if len == 0 || ptr.is_null() {
                    return &[];
                }
                // SAFETY: the exported buffer is C-contiguous, `len` bytes long and stays
                // valid (and unresized) while `self` holds the export. Another thread may
                // still write to a mutable buffer meanwhile, as with hashlib: the digest is
                // then of some mix of old and new bytes; nothing is read out of bounds.
                unsafe { std::slice::from_raw_parts(ptr, len) }
            }
        }
    }
}

#[pymethods]
impl ChunkHasher {
    #[new]
    #[pyo3(signature = (chunk_size = DEFAULT_CHUNK_SIZE, *, threads = None))]
    fn new(chunk_size: usize, threads: Option<usize>) -> PyResult<Self> {
        let threads = check_threads(threads)?;
        Ok(Self {
            chunker: Chunker::new(check_chunk_size(chunk_size)?),
            split: threads >= 2,
        })
    }

    fn update(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let input = Input::new(data)?;
        let bytes = input.as_slice();
        let chunker = &mut self.chunker;
        if bytes.len() < DETACH_MIN {
            chunker.update(bytes);
        } else if bytes.len() >= SPLIT_MIN && self.split {
            py.detach(|| chunker.update_split(bytes));
        } else {
            py.detach(|| chunker.update(bytes));
        }
        Ok(())
    }

    fn finish(&self) -> Manifest {
        self.chunker.digests().into()
    }

    #[getter]
    fn chunk_size(&self) -> u64 {
        self.chunker.chunk_size
    }

    #[getter]
    fn size(&self) -> u64 {
        self.chunker.whole.length()
    }
}

/// Hash the file at `path` into a manifest, chunks in parallel on up to `threads` threads.
#[pyfunction]
#[pyo3(signature = (path, chunk_size = DEFAULT_CHUNK_SIZE, threads = None))]
pub fn hash_file(
    py: Python<'_>,
    path: PathBuf,
    chunk_size: usize,
    threads: Option<usize>,
) -> PyResult<Manifest> {
    let chunk_size = check_chunk_size(chunk_size)?;
    let threads = check_threads(threads)?;
    let digests = py.detach(|| hash_path(&path, chunk_size, threads))?;
    Ok(digests.into())
}

/// Whether `data` hashes to `expected` (64 hex digits, either case).
#[pyfunction]
pub fn verify_chunk(py: Python<'_>, data: &Bound<'_, PyAny>, expected: &str) -> PyResult<bool> {
    let expected = expected.as_bytes();
    if expected.len() != 64 || !expected.iter().all(u8::is_ascii_hexdigit) {
        return Err(PyValueError::new_err(
            "expected must be a SHA-256 digest: 64 hexadecimal digits",
        ));
    }
    let input = Input::new(data)?;
    let bytes = input.as_slice();
    let digest = if bytes.len() < DETACH_MIN {
        digest_of(bytes)
    } else {
        py.detach(|| digest_of(bytes))
    };
    let actual = hex(&digest);
    // Digests are public; the comparison need not be constant-time, but costs nothing to be.
    let difference = actual
        .bytes()
        .zip(expected)
        .fold(0u8, |acc, (a, e)| acc | (a ^ e.to_ascii_lowercase()));
    Ok(difference == 0)
}

fn digest_of(data: &[u8]) -> [u8; 32] {
    let mut stream = Stream::new();
    stream.update(data);
    stream.finish()
}

// --- files ---------------------------------------------------------------------------------

fn changed_size(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "{} became shorter while it was being hashed",
            path.display()
        ),
    )
}

/// The manifest of the file at `path`. A regular file is hashed up to the size it had when
/// opened; anything else (a pipe, a device) is read to its end, on one thread.
fn hash_path(path: &Path, chunk_size: usize, threads: usize) -> io::Result<Digests> {
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return hash_sequential(file, chunk_size, None, path);
    }
    let size = metadata.len();
    if threads < 2 || size <= chunk_size as u64 {
        return hash_sequential(file, chunk_size, Some(size), path);
    }
    hash_parallel(&file, size, chunk_size, threads, path)
}

/// Read chunk by chunk and hash both digests on this thread (two-lane kernel).
fn hash_sequential(
    mut file: File,
    chunk_size: usize,
    size: Option<u64>,
    path: &Path,
) -> io::Result<Digests> {
    let mut chunker = Chunker::new(chunk_size);
    let mut buffer = vec![0u8; chunk_size];
    let mut remaining = size;
    loop {
        let want = remaining.map_or(chunk_size, |r| {
            usize::try_from(r).map_or(chunk_size, |r| r.min(chunk_size))
        });
        if want == 0 {
            break;
        }
        let slot = buffer.get_mut(..want).unwrap_or_default();
        let filled = read_full(&mut file, slot)?;
        chunker.update(slot.get(..filled).unwrap_or_default());
        if let Some(r) = remaining.as_mut() {
            if filled < want {
                return Err(changed_size(path));
            }
            *r -= filled as u64;
        } else if filled < want {
            break;
        }
    }
    Ok(chunker.digests())
}

/// Fill `buffer` from `file`; fewer bytes only at end of file.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(buffer.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A chunk read and hashed by a worker, on its way to the whole-file digest.
struct Done {
    index: usize,
    digest: [u8; 32],
    data: Vec<u8>,
}

/// Workers claim chunks in order, two at a time, read and hash them; this thread feeds them,
/// in order, to the whole-file digest. At most four buffers per worker exist: a worker takes
/// two free buffers *before* claiming chunks, so the chunk the whole-file digest waits for
/// is always held by a worker that can finish it.
fn hash_parallel(
    file: &File,
    size: u64,
    chunk_size: usize,
    threads: usize,
    path: &Path,
) -> io::Result<Digests> {
    let count = usize::try_from(size.div_ceil(chunk_size as u64))
        .map_err(|_| io::Error::other("file too large"))?;
    let workers = (threads - 1).clamp(1, count);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..4 * workers {
        // Buffers grow on first use, so a small file never allocates them all.
        free_tx.send(Vec::new()).map_err(io::Error::other)?;
    }
    let free_rx = Mutex::new(free_rx);
    let (done_tx, done_rx) = mpsc::channel::<io::Result<Done>>();

    thread::scope(|scope| {
        let mut started = 0;
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (next, stop, free_rx) = (&next, &stop, &free_rx);
            let spawned = thread::Builder::new()
                .name("fleetd-sha256".into())
                .spawn_scoped(scope, move || {
                    read_and_hash(file, size, chunk_size, next, stop, free_rx, &done_tx);
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        drop(done_tx);
        if started == 0 {
            return Err(io::Error::other("could not start a hashing thread"));
        }
        let mut whole = Stream::new();
        let mut chunks = vec![[0u8; 32]; count];
        let mut waiting: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        let mut expected = 0;
        let result = loop {
            if expected == count {
                break Ok(());
            }
            match done_rx.recv() {
                Ok(Ok(done)) => {
                    if let Some(slot) = chunks.get_mut(done.index) {
                        *slot = done.digest;
                    }
                    waiting.insert(done.index, done.data);
                }
                Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    break Err(changed_size(path));
                }
                Ok(Err(error)) => break Err(error),
                Err(_) => break Err(io::Error::other("hashing threads stopped early")),
            }
            while let Some(data) = waiting.remove(&expected) {
                whole.update(&data);
                // Workers may all have finished: a refused buffer is simply freed.
                let _ = free_tx.send(data);
                expected += 1;
            }
        };
        stop.store(true, Ordering::Relaxed);
        drop(free_tx); // wakes workers waiting for a buffer
        result?;
        Ok(Digests {
            sha256: whole.finish(),
            size,
            chunk_size: chunk_size as u64,
            chunks,
        })
    })
}

/// A worker: take two free buffers, claim two chunks, read them and hash both at once
/// through the two-lane kernel (two independent messages), hand them over; until none is
/// left or the whole-file thread stops.
fn read_and_hash(
    file: &File,
    size: u64,
    chunk_size: usize,
    next: &AtomicUsize,
    stop: &AtomicBool,
    free: &Mutex<mpsc::Receiver<Vec<u8>>>,
    done: &mpsc::Sender<io::Result<Done>>,
) {
    let read = |index: usize, mut data: Vec<u8>| -> Option<io::Result<(usize, Vec<u8>)>> {
        let offset = index as u64 * chunk_size as u64;
        if offset >= size {
            return None;
        }
        let len = usize::try_from(size - offset).map_or(chunk_size, |r| r.min(chunk_size));
        data.resize(len, 0);
        Some(
            file.read_exact_at(&mut data, offset)
                .map(|()| (index, data)),
        )
    };
    while !stop.load(Ordering::Relaxed) {
        let buffers = {
            let free = free.lock().unwrap_or_else(PoisonError::into_inner);
            free.recv().and_then(|first| Ok((first, free.recv()?)))
        };
        let Ok((first, second)) = buffers else {
            return;
        };
        let index = next.fetch_add(2, Ordering::Relaxed);
        let results = match (read(index, first), read(index + 1, second)) {
            (None, _) => return,
            (Some(Err(error)), _) | (_, Some(Err(error))) => vec![Err(error)],
            (Some(Ok((i, data))), None) => vec![Ok(Done {
                index: i,
                digest: digest_of(&data),
                data,
            })],
            (Some(Ok((i, x))), Some(Ok((j, y)))) => {
                let (dx, dy) = digest_two(&x, &y);
                vec![
                    Ok(Done {
                        index: i,
                        digest: dx,
                        data: x,
                    }),
                    Ok(Done {
                        index: j,
                        digest: dy,
                        data: y,
                    }),
                ]
            }
        };
        for result in results {
            let failed = result.is_err();
            if done.send(result).is_err() || failed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Split updates from several threads at once, racing for the one helper: every stream
    /// still gets exactly its own digests, whoever computed them.
    #[test]
    fn split_updates_race_for_the_helper_safely() {
        thread::scope(|scope| {
            for seed in 0..4u8 {
                scope.spawn(move || {
                    let input = data(3 << 20 | 12_345, seed);
                    for _ in 0..20 {
                        let mut chunker = Chunker::new(64 << 10);
                        for piece in input.chunks(SPLIT_MIN + 4096) {
                            chunker.update_split(piece);
                        }
                        let digests = chunker.digests();
                        assert_eq!(digests.sha256, <[u8; 32]>::from(Sha256::digest(&input)));
                        assert_eq!(digests.chunks.len(), input.len().div_ceil(64 << 10));
                        for (chunk, digest) in input.chunks(64 << 10).zip(&digests.chunks) {
                            assert_eq!(*digest, <[u8; 32]>::from(Sha256::digest(chunk)));
                        }
                    }
                });
            }
        });
    }
}
