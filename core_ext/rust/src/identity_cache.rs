//! A bounded cache of device identities keyed by the certificate's exact bytes.
//!
//! The gateway sees the same peer certificate on every RPC of a connection; a hit here costs
//! one keyed hash of the bytes (foldhash, randomly seeded per cache), one comparison and a
//! reference count increment, and returns the very `DeviceIdentity` object cached.
//!
//! Invariants (shared with `core_ext/reference/identity_cache.py`, which defines them):
//! at most `capacity` entries, CLOCK (second-chance) eviction with new entries unmarked,
//! refusals never cached, counters never reset. The lock is never held while a certificate
//! is parsed (the GIL is released then), so two threads missing the same certificate both
//! parse it and the second keeps the first's entry.

use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyInt;
use std::hash::BuildHasher;

use crate::identity::{extract, DeviceIdentity, IdentityError};

/// The largest capacity accepted.
pub const MAX_CACHE_CAPACITY: usize = 1 << 24;

struct Slot {
    certificate: Box<[u8]>,
    hash: u64,
    identity: Py<DeviceIdentity>,
    referenced: bool,
}

/// The cache proper: slots in insertion order and a table of slot positions by hash.
struct Clock {
    table: HashTable<usize>,
    slots: Vec<Slot>,
    hand: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl Clock {
    fn position(&self, hash: u64, data: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.table
            .find(hash, |&i| {
                slots
                    .get(i)
                    .is_some_and(|slot| slot.hash == hash && *slot.certificate == *data)
            })
            .copied()
    }

    /// Insert a new entry (the caller checked it is absent); return the evicted identity, to
    /// be dropped once the lock is released.
    fn insert(
        &mut self,
        hash: u64,
        certificate: Box<[u8]>,
        identity: Py<DeviceIdentity>,
    ) -> Option<Py<DeviceIdentity>> {
        let slot = Slot {
            certificate,
            hash,
            identity,
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            let position = self.slots.len();
            self.slots.push(slot);
            self.index(hash, position);
            return None;
        }
        // Full: at most one sweep clears every mark, so this ends within two turns.
        loop {
            let hand = self.hand;
            self.hand = (hand + 1) % self.capacity;
            let victim = self.slots.get_mut(hand)?;
            if victim.referenced {
                victim.referenced = false;
                continue;
            }
            let old_hash = victim.hash;
            let old = std::mem::replace(victim, slot);
            if let Ok(entry) = self.table.find_entry(old_hash, |&i| i == hand) {
                entry.remove();
            }
            self.evictions += 1;
            self.index(hash, hand);
            return Some(old.identity);
        }
    }

    fn index(&mut self, hash: u64, position: usize) {
        let slots = &self.slots;
        self.table.insert_unique(hash, position, |&i| {
            slots.get(i).map_or(0, |slot| slot.hash)
        });
    }
}

/// At most `capacity` certificate → `DeviceIdentity` entries, CLOCK eviction.
#[pyclass(frozen, module = "fleetd_native")]
pub struct IdentityCache {
    hasher: DefaultHashBuilder,
    state: Mutex<Clock>,
}

impl IdentityCache {
    fn lock(&self) -> MutexGuard<'_, Clock> {
        // Nothing panics while the lock is held; a poisoned lock still guards valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl IdentityCache {
    #[new]
    fn new(py: Python<'_>, capacity: &Bound<'_, PyAny>) -> PyResult<Self> {
        let value = py
            .import("operator")?
            .getattr("index")?
            .call1((capacity,))?
            .cast_into::<PyInt>()?;
        let capacity = match value.extract::<usize>() {
            Ok(n) if (1..=MAX_CACHE_CAPACITY).contains(&n) => n,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "capacity must be between 1 and {MAX_CACHE_CAPACITY}, not {value}"
                )))
            }
        };
        Ok(Self {
            hasher: DefaultHashBuilder::default(),
            state: Mutex::new(Clock {
                table: HashTable::new(),
                slots: Vec::new(),
                hand: 0,
                capacity,
                hits: 0,
                misses: 0,
                evictions: 0,
            }),
        })
    }

    /// The identity `data` establishes, from the cache or extracted and cached.
    fn get(&self, py: Python<'_>, data: &[u8]) -> PyResult<Py<DeviceIdentity>> {
        let hash = self.hasher.hash_one(data);
        {
            let mut clock = self.lock();
            if let Some(position) = clock.position(hash, data) {
                clock.hits += 1;
                if let Some(slot) = clock.slots.get_mut(position) {
                    slot.referenced = true;
                    return Ok(slot.identity.clone_ref(py));
                }
            }
            clock.misses += 1;
        }
        let identity = py
            .detach(|| extract(data))
            .map_err(|rejection| IdentityError::new_err(rejection.to_string()))?;
        let identity = Py::new(py, identity)?;
        let evicted = {
            let mut clock = self.lock();
            if let Some(slot) = clock
                .position(hash, data)
                .and_then(|position| clock.slots.get(position))
            {
                return Ok(slot.identity.clone_ref(py));
            }
            clock.insert(hash, data.into(), identity.clone_ref(py))
        };
        drop(evicted);
        Ok(identity)
    }

    /// Drop every entry; the counters keep their values.
    fn clear(&self) {
        let slots = {
            let mut clock = self.lock();
            clock.table.clear();
            clock.hand = 0;
            std::mem::take(&mut clock.slots)
        };
        drop(slots);
    }

    fn __len__(&self) -> usize {
        self.lock().slots.len()
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.lock().capacity
    }

    #[getter]
    fn hits(&self) -> u64 {
        self.lock().hits
    }

    #[getter]
    fn misses(&self) -> u64 {
        self.lock().misses
    }

    #[getter]
    fn evictions(&self) -> u64 {
        self.lock().evictions
    }

    fn __repr__(&self) -> String {
        let clock = self.lock();
        format!(
            "IdentityCache(capacity={}, len={}, hits={}, misses={}, evictions={})",
            clock.capacity,
            clock.slots.len(),
            clock.hits,
            clock.misses,
            clock.evictions
        )
    }
}
