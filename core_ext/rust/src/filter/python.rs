//! The Python face of the filter module: `compile_filter`, `Filter`, `FleetSnapshot`,
//! `FilterError`. Argument checks and their messages mirror the reference.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::buffer::{Element, PyUntypedBuffer};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyString, PyTuple, PyType};

use super::eval;
use super::ir::{number_column, string_column, Kind, Node, FIELDS, NUMBER_SLOTS, STRING_SLOTS};
use super::parse::{self, E_BAD_CHARACTER, E_TOO_LONG, MAX_LENGTH};
use super::record;
use super::snapshot::{encode, first_bad_code, DictColumn, Snapshot, TagsColumn, NULL_CODE};
use super::sql::{self, Param};
use super::time;

create_exception!(
    fleetd_native,
    FilterError,
    PyValueError,
    "The filter expression is invalid; the message says what was expected.\n\n\
     Attributes:\n    position: 0-based character offset in the expression where the \
     problem is."
);

fn filter_error(py: Python<'_>, message: &str, position: usize) -> PyErr {
    let err = FilterError::new_err(message.to_owned());
    if let Err(e) = err.value(py).setattr("position", position) {
        return e;
    }
    err
}

/// Where the first NUL or unpaired surrogate is, for a str that is not valid UTF-8.
fn surrogate_position(expression: &Bound<'_, PyString>) -> PyResult<usize> {
    let encoded = expression.call_method1("encode", ("utf-32-le", "surrogatepass"))?;
    let bytes = encoded.cast::<PyBytes>()?.as_bytes();
    Ok(bytes
        .chunks_exact(4)
        .position(|c| {
            let cp = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            cp == 0 || (0xD800..=0xDFFF).contains(&cp)
        })
        .unwrap_or(0))
}

/// Compile a filter expression (see `fleetd_native.pyi`).
#[pyfunction]
#[pyo3(signature = (expression, *, now = None))]
pub fn compile_filter(
    py: Python<'_>,
    expression: &Bound<'_, PyAny>,
    now: Option<&Bound<'_, PyAny>>,
) -> PyResult<Filter> {
    let Ok(text) = expression.cast::<PyString>() else {
        let name = expression.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "expression must be str, not {name}"
        )));
    };
    let now = match now {
        Some(v) if !v.is_none() => v.extract::<f64>()?,
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    };
    let Some(now_micros) = time::now_micros(now) else {
        return Err(PyValueError::new_err(
            "now must be a finite Unix time in years 1 to 9999",
        ));
    };
    if text.len()? > MAX_LENGTH {
        return Err(filter_error(py, E_TOO_LONG, MAX_LENGTH));
    }
    let source = match text.to_str() {
        Ok(s) => s,
        Err(_) => {
            let position = surrogate_position(text)?;
            return Err(filter_error(py, E_BAD_CHARACTER, position));
        }
    };
    let chars: Vec<char> = source.chars().collect();
    if let Some(position) = parse::bad_character(&chars) {
        return Err(filter_error(py, E_BAD_CHARACTER, position));
    }
    match parse::compile(&chars, now_micros) {
        Ok(root) => Ok(Filter {
            expression: source.to_owned(),
            root,
        }),
        Err(e) => Err(filter_error(py, &e.message, e.position)),
    }
}

/// A compiled filter expression (see `fleetd_native.pyi`).
#[pyclass(frozen, module = "fleetd_native")]
pub struct Filter {
    expression: String,
    root: Node,
}

#[pymethods]
impl Filter {
    #[getter]
    fn expression(&self) -> &str {
        &self.expression
    }

    fn __repr__(&self) -> String {
        format!("<Filter {:?}>", self.expression)
    }

    #[pyo3(signature = (first_param = 1))]
    fn to_sql<'py>(
        &self,
        py: Python<'py>,
        first_param: i128,
    ) -> PyResult<(String, Bound<'py, PyList>)> {
        let first = usize::try_from(first_param)
            .ok()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| {
                PyValueError::new_err("first_param must be from 1 to 65535 (PostgreSQL's limit)")
            })?;
        let (text, params) = sql::render(&self.root, first);
        let list = PyList::empty(py);
        for p in params {
            match p {
                Param::Text(s) => list.append(s)?,
                Param::TextArray(v) => list.append(v)?,
                Param::Float(f) => list.append(f)?,
                Param::Timestamp(m) => list.append(record::datetime_from_micros(py, m)?)?,
            }
        }
        Ok((text, list))
    }

    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        snapshot: &Bound<'py, FleetSnapshot>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let snap = &snapshot.get().inner;
        let root = &self.root;
        let rows = py.detach(|| eval::evaluate(root, snap));
        let bytes = PyBytes::new_with(py, rows.len() * 4, |buf| {
            for (dst, row) in buf.chunks_exact_mut(4).zip(&rows) {
                dst.copy_from_slice(&row.to_ne_bytes());
            }
            Ok(())
        })?;
        let result = py.import("array")?.getattr("array")?.call1(("I",))?;
        result.call_method1("frombytes", (bytes,))?;
        Ok(result)
    }

    fn matches(&self, record: &Bound<'_, PyAny>) -> PyResult<bool> {
        record::matches(&self.root, record)
    }
}

/// A columnar fleet snapshot (see `fleetd_native.pyi`).
#[pyclass(frozen, module = "fleetd_native")]
pub struct FleetSnapshot {
    inner: Snapshot,
}

fn buffer<T: Element + Copy>(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    typecode: &str,
    what: &str,
) -> PyResult<Vec<T>> {
    let fail = || PyTypeError::new_err(format!("{what} must be an array('{typecode}')"));
    let raw = PyUntypedBuffer::get(value).map_err(|_| fail())?;
    if raw.dimensions() != 1 || raw.format().to_bytes() != typecode.as_bytes() {
        return Err(fail());
    }
    if raw.item_count() == 0 {
        // An empty array.array points at a 1-byte-aligned static buffer, which the typed
        // view refuses as misaligned; there is nothing to copy anyway.
        return Ok(Vec::new());
    }
    raw.into_typed::<T>().map_err(|_| fail())?.to_vec(py)
}

fn dictionary(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<String>> {
    let fail = || PyTypeError::new_err(format!("{what} dictionary must be a list of str"));
    if value.is_instance_of::<PyString>() {
        return Err(fail());
    }
    value.extract::<Vec<String>>().map_err(|_| fail())
}

fn pair<'py>(
    value: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    match value.cast::<PyTuple>() {
        Ok(t) if t.len() == 2 => Ok((t.get_item(0)?, t.get_item(1)?)),
        _ => Err(PyTypeError::new_err(format!(
            "{what} must be a (dictionary, codes) tuple"
        ))),
    }
}

fn codes(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    size: usize,
    dictionary_size: usize,
    what: &str,
    nulls: bool,
) -> PyResult<Vec<u32>> {
    let codes: Vec<u32> = buffer(py, value, "I", &format!("{what} codes"))?;
    if codes.len() != size {
        return Err(PyValueError::new_err(format!(
            "{what} has {} rows, expected {size}",
            codes.len()
        )));
    }
    if let Some(row) = first_bad_code(&codes, dictionary_size, nulls) {
        return Err(PyValueError::new_err(format!(
            "{what} has a code out of range at row {row}"
        )));
    }
    Ok(codes)
}

fn dict_column(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    size: usize,
    what: &str,
) -> PyResult<DictColumn> {
    let (words, raw_codes) = pair(value, what)?;
    let words = dictionary(&words, what)?;
    let codes = codes(py, &raw_codes, size, words.len(), what, true)?;
    Ok(DictColumn { words, codes })
}

fn items<'py>(mapping: Option<&Bound<'py, PyAny>>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    match mapping {
        Some(m) if !m.is_none() => m.call_method0("items")?.try_iter()?.collect(),
        _ => Ok(Vec::new()),
    }
}

fn item_pair<'py>(item: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let t = item.cast::<PyTuple>()?;
    Ok((t.get_item(0)?, t.get_item(1)?))
}

fn name_of(name: &Bound<'_, PyAny>) -> String {
    name.str().map_or_else(|_| String::new(), |s| s.to_string())
}

#[pymethods]
impl FleetSnapshot {
    #[classattr]
    const NULL_CODE: u32 = NULL_CODE;

    #[new]
    #[pyo3(signature = (size, *, strings = None, numbers = None, metadata = None, tags = None))]
    fn new(
        py: Python<'_>,
        size: &Bound<'_, PyAny>,
        strings: Option<&Bound<'_, PyAny>>,
        numbers: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let size_error = || PyValueError::new_err("size must be an int from 0 to 4294967295");
        if !size.is_instance_of::<PyInt>() {
            return Err(size_error());
        }
        let size = size
            .extract::<i64>()
            .ok()
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(size_error)? as usize;
        let mut snap = Snapshot {
            size,
            ..Snapshot::default()
        };
        for item in items(strings)? {
            let (name, column) = item_pair(&item)?;
            let name = name_of(&name);
            let Some(field) = string_column(&name) else {
                return Err(PyValueError::new_err(format!(
                    "unknown string column '{name}'"
                )));
            };
            let column = dict_column(py, &column, size, &format!("column '{name}'"))?;
            snap.strings[field.slot] = Some(column);
        }
        for item in items(numbers)? {
            let (name, column) = item_pair(&item)?;
            let name = name_of(&name);
            let Some(field) = number_column(&name) else {
                return Err(PyValueError::new_err(format!(
                    "unknown number column '{name}'"
                )));
            };
            let values: Vec<f64> = buffer(py, &column, "d", &format!("column '{name}'"))?;
            if values.len() != size {
                return Err(PyValueError::new_err(format!(
                    "column '{name}' has {} rows, expected {size}",
                    values.len()
                )));
            }
            snap.numbers[field.slot] = Some(values);
        }
        for item in items(metadata)? {
            let (key, column) = item_pair(&item)?;
            let Ok(key) = key.cast::<PyString>() else {
                return Err(PyTypeError::new_err("metadata keys must be str"));
            };
            let key = key.to_str()?.to_owned();
            let column = dict_column(py, &column, size, &format!("metadata column '{key}'"))?;
            snap.metadata.insert(key, column);
        }
        if let Some(tags) = tags.filter(|t| !t.is_none()) {
            snap.tags = Some(tags_column(py, tags, size)?);
        }
        Ok(Self { inner: snap })
    }

    fn __len__(&self) -> usize {
        self.inner.size
    }

    fn __repr__(&self) -> String {
        format!("<FleetSnapshot of {} devices>", self.inner.size)
    }

    #[classmethod]
    fn from_records(_cls: &Bound<'_, PyType>, records: &Bound<'_, PyAny>) -> PyResult<Self> {
        let rows: Vec<Bound<'_, PyAny>> = records.try_iter()?.collect::<PyResult<_>>()?;
        let size = rows.len();
        if u32::try_from(size).is_err() {
            return Err(PyValueError::new_err(
                "size must be an int from 0 to 4294967295",
            ));
        }
        let mut snap = Snapshot {
            size,
            ..Snapshot::default()
        };
        for field in FIELDS.iter() {
            match field.kind {
                Kind::String | Kind::Status => {
                    let values = rows
                        .iter()
                        .map(|r| record::string(r, field.name))
                        .collect::<PyResult<Vec<_>>>()?;
                    snap.strings[field.slot] = Some(encode(&values));
                }
                _ => {}
            }
        }
        for field in FIELDS.iter() {
            let read = match field.kind {
                Kind::Number => record::number,
                Kind::Timestamp => record::timestamp,
                _ => continue,
            };
            let values = rows
                .iter()
                .map(|r| read(r, field.name).map(|v| v.unwrap_or(f64::NAN)))
                .collect::<PyResult<Vec<_>>>()?;
            snap.numbers[field.slot] = Some(values);
        }
        let maps = rows
            .iter()
            .map(record::metadata)
            .collect::<PyResult<Vec<_>>>()?;
        let mut keys: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for m in maps.iter().flatten() {
            for key in m.keys()?.iter() {
                let Ok(key) = key.cast::<PyString>() else {
                    return Err(PyTypeError::new_err(
                        "record field 'metadata' keys must be str",
                    ));
                };
                let key = key.to_str()?;
                if seen.insert(key.to_owned()) {
                    keys.push(key.to_owned());
                }
            }
        }
        for key in keys {
            let values = maps
                .iter()
                .map(|m| record::metadata_value(m.as_ref(), &key))
                .collect::<PyResult<Vec<_>>>()?;
            snap.metadata.insert(key, encode(&values));
        }
        let all_tags = rows
            .iter()
            .map(record::tags)
            .collect::<PyResult<Vec<_>>>()?;
        let mut offsets = Vec::with_capacity(size + 1);
        offsets.push(0u32);
        let flat: Vec<Option<&String>> = all_tags.iter().flatten().map(Some).collect();
        let encoded = encode(&flat);
        let mut end = 0usize;
        for row in &all_tags {
            end += row.len();
            offsets.push(
                u32::try_from(end)
                    .map_err(|_| PyValueError::new_err("too many tags for one snapshot"))?,
            );
        }
        snap.tags = Some(TagsColumn {
            words: encoded.words,
            offsets,
            codes: encoded.codes,
        });
        debug_assert!(snap.strings.len() == STRING_SLOTS && snap.numbers.len() == NUMBER_SLOTS);
        Ok(Self { inner: snap })
    }
}

fn tags_column(py: Python<'_>, tags: &Bound<'_, PyAny>, size: usize) -> PyResult<TagsColumn> {
    let t = match tags.cast::<PyTuple>() {
        Ok(t) if t.len() == 3 => t,
        _ => {
            return Err(PyTypeError::new_err(
                "tags must be a (dictionary, offsets, codes) tuple",
            ))
        }
    };
    let words = dictionary(&t.get_item(0)?, "tags")?;
    let offsets: Vec<u32> = buffer(py, &t.get_item(1)?, "I", "tags offsets")?;
    let raw_codes = t.get_item(2)?;
    let tag_codes: Vec<u32> = buffer(py, &raw_codes, "I", "tags codes")?;
    if offsets.len() != size + 1 {
        return Err(PyValueError::new_err(format!(
            "tags offsets has {} entries, expected {}",
            offsets.len(),
            size + 1
        )));
    }
    if offsets.first() != Some(&0) || offsets.last().map(|&o| o as usize) != Some(tag_codes.len()) {
        return Err(PyValueError::new_err(
            "tags offsets must run from 0 to len(codes)",
        ));
    }
    if let Some(row) = offsets.windows(2).position(|w| w[0] > w[1]) {
        return Err(PyValueError::new_err(format!(
            "tags offsets decrease at row {row}"
        )));
    }
    if let Some(j) = first_bad_code(&tag_codes, words.len(), false) {
        return Err(PyValueError::new_err(format!(
            "tags has a code out of range at row {j}"
        )));
    }
    Ok(TagsColumn {
        words,
        offsets,
        codes: tag_codes,
    })
}

/// Add the filter API to the `fleetd_native` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let error = py.get_type::<FilterError>();
    m.add("FilterError", error)?;
    m.add_class::<Filter>()?;
    m.add_class::<FleetSnapshot>()?;
    m.add_function(wrap_pyfunction!(compile_filter, m)?)?;
    m.add("MAX_FILTER_LENGTH", parse::MAX_LENGTH)?;
    m.add("MAX_FILTER_DEPTH", parse::MAX_DEPTH)?;
    m.add("MAX_FILTER_TERMS", parse::MAX_TERMS)?;
    m.add("MAX_FILTER_VALUES", parse::MAX_VALUES)?;
    Ok(())
}
