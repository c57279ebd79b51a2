//! `fleetd_native`: the Rust half of fleetd's compiled hot path.
//!
//! The Python-facing API is described in `fleetd_native.pyi`; the pure-Python reference in
//! `core_ext/reference` defines the semantics this crate must match.

pub mod checksum;
pub mod filter;
pub mod identity;
pub mod identity_cache;
pub mod sketch;

use pyo3::prelude::*;

/// The `fleetd_native` Python module.
#[pymodule]
fn fleetd_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<identity::DeviceIdentity>()?;
    m.add(
        "IdentityError",
        m.py().get_type::<identity::IdentityError>(),
    )?;
    m.add_function(wrap_pyfunction!(identity::extract_identity, m)?)?;
    m.add("MAX_CERTIFICATE_SIZE", identity::MAX_CERTIFICATE_SIZE)?;
    filter::register(m)?;
    m.add_class::<identity_cache::IdentityCache>()?;
    m.add("MAX_CACHE_CAPACITY", identity_cache::MAX_CACHE_CAPACITY)?;
    m.add_class::<checksum::ChunkHasher>()?;
    m.add_class::<checksum::Manifest>()?;
    m.add_function(wrap_pyfunction!(checksum::hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(checksum::verify_chunk, m)?)?;
    m.add("DEFAULT_CHUNK_SIZE", checksum::DEFAULT_CHUNK_SIZE)?;
    m.add("MAX_CHUNK_SIZE", checksum::MAX_CHUNK_SIZE)?;
    m.add_class::<sketch::Sketch>()?;
    Ok(())
}
