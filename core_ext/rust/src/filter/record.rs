//! Reading device and event records (Python mappings keyed by field name) with the
//! reference's rules and errors (`_record_*` in `core_ext/reference/filter/record.py`), for
//! `Filter.matches` and `FleetSnapshot.from_records`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple, PyType};

use super::ir::{Kind, Node};
use super::time::{self, MICROS};

static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    UTC.get_or_try_init(py, || {
        Ok(py
            .import("datetime")?
            .getattr("timezone")?
            .getattr("utc")?
            .unbind())
    })
    .map(|v| v.bind(py))
}

fn epoch(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    EPOCH
        .get_or_try_init(py, || {
            let datetime = DATETIME.import(py, "datetime", "datetime")?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("tzinfo", utc(py)?)?;
            Ok(datetime.call((1970, 1, 1), Some(&kwargs))?.unbind())
        })
        .map(|v| v.bind(py))
}

/// `Unix microseconds` as a UTC `datetime.datetime`.
pub fn datetime_from_micros(py: Python<'_>, micros: i64) -> PyResult<Bound<'_, PyAny>> {
    let timedelta = TIMEDELTA.import(py, "datetime", "timedelta")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("microseconds", micros)?;
    epoch(py)?.add(timedelta.call((), Some(&kwargs))?)
}

fn type_error(name: &str, expected: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let type_name = value
        .get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string());
    PyTypeError::new_err(format!(
        "record field '{name}' must be {expected}, not {type_name}"
    ))
}

/// `record.get(name)`, None when missing.
fn get<'py>(record: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(dict) = record.cast::<PyDict>() {
        return Ok(dict
            .get_item(name)?
            .unwrap_or_else(|| record.py().None().into_bound(record.py())));
    }
    record.call_method1("get", (name,))
}

fn string_value(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    if value.is_none() {
        return Ok(None);
    }
    match value.cast::<PyString>() {
        Ok(s) => Ok(Some(s.to_str()?.to_owned())),
        Err(_) => Err(type_error(name, "str or None", value)),
    }
}

pub fn string(record: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    string_value(&get(record, name)?, name)
}

fn real(value: &Bound<'_, PyAny>) -> PyResult<Option<Option<f64>>> {
    if value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>() {
        let v: f64 = value.extract()?;
        return Ok(Some(if v.is_nan() { None } else { Some(v) }));
    }
    Ok(None)
}

pub fn number(record: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<f64>> {
    let value = get(record, name)?;
    if value.is_none() {
        return Ok(None);
    }
    match real(&value)? {
        Some(v) => Ok(v),
        None => Err(type_error(name, "float, int or None", &value)),
    }
}

pub fn timestamp(record: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<f64>> {
    let value = get(record, name)?;
    if value.is_none() {
        return Ok(None);
    }
    let py = record.py();
    if value.is_instance(DATETIME.import(py, "datetime", "datetime")?)? {
        let mut aware = value.clone();
        if aware.getattr("tzinfo")?.is_none() {
            let kwargs = PyDict::new(py);
            kwargs.set_item("tzinfo", utc(py)?)?;
            aware = aware.call_method("replace", (), Some(&kwargs))?;
        }
        let delta = aware.sub(epoch(py)?)?;
        let days: i64 = delta.getattr("days")?.extract()?;
        let seconds: i64 = delta.getattr("seconds")?.extract()?;
        let micros: i64 = delta.getattr("microseconds")?.extract()?;
        return Ok(Some(time::seconds(
            (days * 86_400 + seconds) * MICROS + micros,
        )));
    }
    match real(&value)? {
        Some(v) => Ok(v),
        None => Err(type_error(name, "datetime, float, int or None", &value)),
    }
}

/// The record's metadata mapping; None stands for an empty one.
pub fn metadata<'py>(record: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyMapping>>> {
    let value = get(record, "metadata")?;
    if value.is_none() {
        return Ok(None);
    }
    match value.cast_into::<PyMapping>() {
        Ok(m) => Ok(Some(m)),
        Err(e) => Err(type_error(
            "metadata",
            "a mapping of str to str, or None",
            &e.into_inner(),
        )),
    }
}

pub fn metadata_value(
    metadata: Option<&Bound<'_, PyMapping>>,
    key: &str,
) -> PyResult<Option<String>> {
    let Some(m) = metadata else {
        return Ok(None);
    };
    let value = get(m.as_any(), key)?;
    string_value(&value, &format!("metadata.{key}"))
}

pub fn tags(record: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    const EXPECTED: &str = "a list or tuple of str, or None";
    let value = get(record, "tags")?;
    if value.is_none() {
        return Ok(Vec::new());
    }
    if !(value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>()) {
        return Err(type_error("tags", EXPECTED, &value));
    }
    let mut out = Vec::new();
    for item in value.try_iter()? {
        let item = item?;
        match item.cast::<PyString>() {
            Ok(s) => out.push(s.to_str()?.to_owned()),
            Err(_) => return Err(type_error("tags", EXPECTED, &item)),
        }
    }
    Ok(out)
}

/// Whether `record` matches `node` (the reference's `_matches`, same order of reads).
pub fn matches(node: &Node, record: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(match node {
        Node::All => true,
        Node::Not(child) => !matches(child, record)?,
        Node::And(children) => {
            for child in children {
                if !matches(child, record)? {
                    return Ok(false);
                }
            }
            true
        }
        Node::Or(children) => {
            for child in children {
                if matches(child, record)? {
                    return Ok(true);
                }
            }
            false
        }
        Node::Str(term) => match term.field.kind {
            Kind::Tags => tags(record)?.iter().any(|t| term.test(t)),
            Kind::Metadata => {
                let m = metadata(record)?;
                let key = term.key.as_deref().unwrap_or_default();
                metadata_value(m.as_ref(), key)?.is_some_and(|v| term.test(&v))
            }
            _ => string(record, term.field.name)?.is_some_and(|v| term.test(&v)),
        },
        Node::Cmp(term) => {
            let value = if term.field.kind == Kind::Timestamp {
                timestamp(record, term.field.name)?
            } else {
                number(record, term.field.name)?
            };
            value.is_some_and(|v| term.test(v))
        }
    })
}
