//! One process-wide helper thread that may take a stream's whole-file digest off its caller.
//!
//! `ChunkHasher` offers the whole-file half of a large update here and hashes the chunks
//! itself. If the helper has not *taken* the offer by the time the caller wants it, the
//! caller withdraws it and does both halves on its own thread (two lanes), so the caller
//! never waits for a thread that is not already working for it. A second concurrent offer
//! (another stream) finds the helper busy and is refused at once.
//!
//! The offer lends the helper two borrows (the stream and the data) across threads, which
//! the type system cannot see through: the state machine below is what makes it sound.
//! `OFFERED -> TAKEN` (helper) and `OFFERED -> WITHDRAWN` (caller) race on one atomic; the
//! helper touches the borrows only after winning, and a caller that lost waits for `DONE`
//! before returning, so the borrows outlive every use.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::sha256::Stream;

const IDLE: u8 = 0;
const OFFERED: u8 = 1;
const TAKEN: u8 = 2;
const DONE: u8 = 3;
const WITHDRAWN: u8 = 4;

/// How long the helper keeps looking for the next offer before it sleeps: consecutive
/// updates of one stream arrive microseconds apart.
const SPIN: Duration = Duration::from_micros(200);

/// The lent borrows, as raw parts.
#[derive(Clone, Copy)]
struct Job {
    stream: *mut Stream,
    data: *const u8,
    len: usize,
}

// SAFETY: a `Job` is only dereferenced by the helper between winning `OFFERED -> TAKEN` and
// publishing `DONE`, while its offerer waits; `Stream` is `Send` and the data is plain bytes.
unsafe impl Send for Job {}

struct Helper {
    state: AtomicU8,
    job: Mutex<Option<Job>>,
    wake: Condvar,
    finished: Mutex<()>,
    finished_signal: Condvar,
}

fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        let helper: &'static Helper = Box::leak(Box::new(Helper {
            state: AtomicU8::new(IDLE),
            job: Mutex::new(None),
            wake: Condvar::new(),
            finished: Mutex::new(()),
            finished_signal: Condvar::new(),
        }));
        thread::Builder::new()
            .name("fleetd-sha256".into())
            .spawn(move || helper.serve())
            .ok()
            .map(|_| helper)
    })
}

impl Helper {
    fn serve(&self) {
        loop {
            self.wait_for_offer();
            if self
                .state
                .compare_exchange(OFFERED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue; // withdrawn meanwhile
            }
            // The job of *this* offer: its offerer writes it right after offering, and
            // clears it only after `DONE` (a stale job from a withdrawn offer was cleared
            // before the state went back to `IDLE`).
            let job = loop {
                if let Some(job) = *self.job.lock().unwrap_or_else(PoisonError::into_inner) {
                    break job;
                }
                std::hint::spin_loop();
            };
            // SAFETY: we won the offer; the offerer keeps both borrows alive and untouched
            // until it sees `DONE` (see the module comment).
            unsafe {
                let data = std::slice::from_raw_parts(job.data, job.len);
                (*job.stream).update(data);
            }
            let _guard = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
            self.state.store(DONE, Ordering::Release);
            self.finished_signal.notify_all();
        }
    }

    /// Return once an offer is up: spin briefly, then sleep until one is posted.
    fn wait_for_offer(&self) {
        let deadline = Instant::now() + SPIN;
        while Instant::now() < deadline {
            if self.state.load(Ordering::Acquire) == OFFERED {
                return;
            }
            std::hint::spin_loop();
        }
        let mut slot = self.job.lock().unwrap_or_else(PoisonError::into_inner);
        while self.state.load(Ordering::Acquire) != OFFERED || slot.is_none() {
            slot = self.wake.wait(slot).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// An offer in progress. Dropping it withdraws it or, if the helper took it, waits until
/// the helper is done: the borrows it lent (`'a`) cannot end before.
pub struct Offer<'a> {
    helper: &'static Helper,
    withdrawn: bool,
    _lent: PhantomData<(&'a mut Stream, &'a [u8])>,
}

/// Offer `stream.update(data)` to the helper; `None` when it is busy or could not start.
pub fn offer<'a>(stream: &'a mut Stream, data: &'a [u8]) -> Option<Offer<'a>> {
    let helper = helper()?;
    helper
        .state
        .compare_exchange(IDLE, OFFERED, Ordering::AcqRel, Ordering::Acquire)
        .ok()?;
    let job = Job {
        stream: std::ptr::from_mut(stream),
        data: data.as_ptr(),
        len: data.len(),
    };
    *helper.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(job);
    helper.wake.notify_one();
    Some(Offer {
        helper,
        withdrawn: false,
        _lent: PhantomData,
    })
}

impl Offer<'_> {
    /// Take the work back if the helper has not started it: `true` means do it yourself
    /// (after dropping the offer); `false`, the helper is on it.
    pub fn withdraw(&mut self) -> bool {
        self.withdrawn = self
            .helper
            .state
            .compare_exchange(OFFERED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.withdrawn
    }
}

impl Drop for Offer<'_> {
    fn drop(&mut self) {
        let helper = self.helper;
        if !self.withdrawn && !self.withdraw() {
            let mut guard = helper
                .finished
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while helper.state.load(Ordering::Acquire) != DONE {
                guard = helper
                    .finished_signal
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        *helper.job.lock().unwrap_or_else(PoisonError::into_inner) = None;
        helper.state.store(IDLE, Ordering::Release);
    }
}
