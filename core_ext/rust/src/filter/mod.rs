//! Device filter expressions (`type:raspberry-pi AND status:online AND cpu_usage:>80`).
//!
//! Compiled once ([`parse`]: grammar, field types, limits, errors with positions), then
//! answered three ways that agree: a parameterised SQL WHERE fragment ([`sql`]),
//! evaluation over a columnar fleet snapshot ([`eval`] over [`snapshot`]), and matching
//! one record ([`record`]). The pure-Python reference `core_ext/reference/filter/`
//! defines the semantics, messages and positions; the Python API is in [`python`] and
//! `fleetd_native.pyi`. Nothing here panics on any input.

pub mod eval;
pub mod ir;
pub mod parse;
pub mod python;
pub mod record;
pub mod snapshot;
pub mod sql;
pub mod time;

pub use python::register;
