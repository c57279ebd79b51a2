//! Mergeable quantile sketches (DDSketch: Masson, Rim, Lee, VLDB 2019) for fleet rollups.
//!
//! A `Sketch` answers any quantile within a relative error `α` of the truth, merges with
//! other sketches of the same accuracy (per-minute and per-group rollups into days and
//! fleets), and round-trips through a compact, versioned byte format stored in PostgreSQL.
//! The pure-Python reference `core_ext/reference/sketch.py` defines the semantics (its
//! module docstring is the specification, the byte format included); this crate must give
//! the same quantiles, the same bytes and the same errors.
//!
//! - `sketch/core.rs`: mapping, exact statistics, merge, quantiles.
//! - `sketch/store.rs`: one store (dense window of counts, the lowest keys collapsed).
//! - `sketch/format.rs`: `to_bytes` / `from_bytes`, with validation.
//!
//! `add_many` is the rollup's hot path: a list of floats or a 1-D float64 buffer
//! (`array('d')`, numpy) is read without per-value Python calls beyond the item access,
//! checked in full (all or nothing), then counted in one batch per store.

mod core;
mod format;
mod store;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyTuple, PyType};

use self::core::{
    accuracy_in_range, Core, DEFAULT_MAX_BINS, DEFAULT_RELATIVE_ACCURACY, MAX_BINS, MAX_COUNT,
};

fn float_repr(py: Python<'_>, value: f64) -> PyResult<String> {
    Ok(PyFloat::new(py, value).repr()?.to_string())
}

fn not_finite(value: f64) -> &'static str {
    if value.is_nan() {
        "nan"
    } else if value > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// Item `i` of `add_many`'s values as a finite float.
#[inline]
fn finite_item(i: usize, item: &Bound<'_, PyAny>) -> PyResult<f64> {
    let x = match item.cast_exact::<PyFloat>() {
        Ok(float) => float.value(),
        Err(_) => item.extract::<f64>()?,
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(PyValueError::new_err(format!(
            "values[{i}] is {}: a sketch takes finite numbers only",
            not_finite(x)
        )))
    }
}

fn too_many() -> PyErr {
    PyValueError::new_err(format!("a sketch holds at most {MAX_COUNT} values"))
}

fn index<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyInt>> {
    Ok(value
        .py()
        .import("operator")?
        .getattr("index")?
        .call1((value,))?
        .cast_into::<PyInt>()?)
}

/// A DDSketch: quantiles within `relative_accuracy` of the truth, mergeable.
#[pyclass(module = "fleetd_native")]
pub struct Sketch {
    core: Core,
}

impl Sketch {
    /// `values` as floats, all finite, or the reference's error for the first bad one.
    fn collect(values: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
        let mut out = Vec::new();
        if let Ok(list) = values.cast_exact::<PyList>() {
            out.reserve(list.len());
            for (i, item) in list.iter().enumerate() {
                out.push(finite_item(i, &item)?);
            }
        } else if let Ok(tuple) = values.cast_exact::<PyTuple>() {
            out.reserve(tuple.len());
            for (i, item) in tuple.iter().enumerate() {
                out.push(finite_item(i, &item)?);
            }
        } else {
            for (i, item) in values.try_iter()?.enumerate() {
                out.push(finite_item(i, &item?)?);
            }
        }
        Ok(out)
    }

    /// A one-dimensional float64 buffer (`array('d')`, numpy): copied out in one call.
    fn add_buffer(&mut self, py: Python<'_>, buffer: &PyBuffer<f64>) -> PyResult<bool> {
        if buffer.dimensions() != 1 {
            return Ok(false);
        }
        let values = buffer.to_vec(py)?;
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "values[{i}] is {}: a sketch takes finite numbers only",
                not_finite(values[i])
            )));
        }
        self.add_checked(&values)?;
        Ok(true)
    }

    fn add_checked(&mut self, values: &[f64]) -> PyResult<()> {
        if !self.core.has_room_for(values.len() as u64) {
            return Err(too_many());
        }
        self.core.add_values(values);
        Ok(())
    }
}

#[pymethods]
impl Sketch {
    #[new]
    #[pyo3(
        signature = (relative_accuracy = DEFAULT_RELATIVE_ACCURACY, max_bins = None),
        text_signature = "(relative_accuracy=0.01, max_bins=2048)"
    )]
    fn new(
        py: Python<'_>,
        relative_accuracy: f64,
        max_bins: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if !accuracy_in_range(relative_accuracy) {
            return Err(PyValueError::new_err(format!(
                "relative_accuracy must be between 1e-06 and 0.5, not {}",
                float_repr(py, relative_accuracy)?
            )));
        }
        let max_bins = match max_bins {
            None => DEFAULT_MAX_BINS,
            Some(value) => {
                let bins = index(value)?;
                match bins.extract::<u32>() {
                    Ok(n) if (1..=MAX_BINS).contains(&n) => n,
                    _ => {
                        return Err(PyValueError::new_err(format!(
                            "max_bins must be between 1 and {MAX_BINS}, not {bins}"
                        )))
                    }
                }
            }
        };
        Ok(Self {
            core: Core::new(relative_accuracy, max_bins),
        })
    }

    #[pyo3(signature = (value, count = None), text_signature = "(self, value, count=1)")]
    fn add(&mut self, value: f64, count: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let count = count.map(index).transpose()?;
        if !value.is_finite() {
            return Err(PyValueError::new_err(format!(
                "value is {}: a sketch takes finite numbers only",
                not_finite(value)
            )));
        }
        let n = match count {
            None => 1,
            Some(count) => match count.extract::<u64>() {
                Ok(n) if (1..=MAX_COUNT).contains(&n) => n,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "count must be between 1 and {MAX_COUNT}, not {count}"
                    )))
                }
            },
        };
        if !self.core.has_room_for(n) {
            return Err(too_many());
        }
        self.core.add(value, n);
        Ok(())
    }

    fn add_many(&mut self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        if !values.is_instance_of::<PyList>() && !values.is_instance_of::<PyTuple>() {
            if let Ok(buffer) = PyBuffer::<f64>::get(values) {
                if self.add_buffer(py, &buffer)? {
                    return Ok(());
                }
            }
        }
        let floats = Self::collect(values)?;
        self.add_checked(&floats)
    }

    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(other) = other.cast::<Sketch>() else {
            return Err(PyTypeError::new_err(format!(
                "can only merge a Sketch, not {}",
                other.get_type().name()?
            )));
        };
        let copy;
        let theirs_ref;
        let theirs: &Core = if other.is(slf) {
            copy = slf.borrow().core.clone();
            &copy
        } else {
            theirs_ref = other.borrow();
            &theirs_ref.core
        };
        let mut mine = slf.borrow_mut();
        if theirs.alpha != mine.core.alpha {
            let py = slf.py();
            return Err(PyValueError::new_err(format!(
                "cannot merge sketches of different relative accuracy ({} and {})",
                float_repr(py, mine.core.alpha)?,
                float_repr(py, theirs.alpha)?
            )));
        }
        if theirs.count == 0 {
            return Ok(());
        }
        if !mine.core.has_room_for(theirs.count) {
            return Err(too_many());
        }
        mine.core.merge(theirs);
        Ok(())
    }

    fn quantile(&self, py: Python<'_>, q: f64) -> PyResult<Option<f64>> {
        if !(0.0..=1.0).contains(&q) {
            return Err(PyValueError::new_err(format!(
                "q must be between 0 and 1, not {}",
                float_repr(py, q)?
            )));
        }
        Ok(self.core.quantile(q))
    }

    #[getter]
    fn relative_accuracy(&self) -> f64 {
        self.core.alpha
    }

    #[getter]
    fn max_bins(&self) -> u32 {
        self.core.max_bins
    }

    #[getter]
    fn count(&self) -> u64 {
        self.core.count
    }

    #[getter]
    fn sum(&self) -> f64 {
        self.core.sum
    }

    #[getter]
    fn min(&self) -> Option<f64> {
        (self.core.count > 0).then_some(self.core.min)
    }

    #[getter]
    fn max(&self) -> Option<f64> {
        (self.core.count > 0).then_some(self.core.max)
    }

    #[getter]
    fn avg(&self) -> Option<f64> {
        (self.core.count > 0).then(|| self.core.sum / self.core.count as f64)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Sketch(relative_accuracy={}, max_bins={}, count={})",
            float_repr(py, self.core.alpha)?,
            self.core.max_bins,
            self.core.count
        ))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &format::encode(&self.core))
    }

    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let Ok(bytes) = data.cast::<PyBytes>() else {
            return Err(PyTypeError::new_err(format!(
                "from_bytes takes bytes, not {}",
                data.get_type().name()?
            )));
        };
        format::decode(bytes.as_bytes())
            .map(|core| Self { core })
            .map_err(|why| PyValueError::new_err(format!("malformed sketch: {why}")))
    }
}
