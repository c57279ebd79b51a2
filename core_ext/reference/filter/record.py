"""Reading device and event records (mappings keyed by field name), and matching one.

The rules and errors here are shared by :meth:`Filter.matches` and
:meth:`FleetSnapshot.from_records`. Mirrors ``core_ext/rust/src/filter/record.rs``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

from core_ext.reference.filter.ir import _And, _CompareTerm, _Node, _Not, _Or, _StringTerm
from core_ext.reference.filter.timestamps import _datetime_micros, _seconds


def _type_error(name: str, expected: str, value: object) -> TypeError:
    return TypeError(f"record field '{name}' must be {expected}, not {type(value).__name__}")


def _record_string(record: Mapping[str, object], name: str) -> str | None:
    value = record.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _type_error(name, "str or None", value)


def _record_number(record: Mapping[str, object], name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
        return None if math.isnan(number) else number
    raise _type_error(name, "float, int or None", value)


def _record_timestamp(record: Mapping[str, object], name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _seconds(_datetime_micros(value))
    if isinstance(value, int | float):
        number = float(value)
        return None if math.isnan(number) else number
    raise _type_error(name, "datetime, float, int or None", value)


def _record_metadata(record: Mapping[str, object]) -> Mapping[object, object]:
    value = record.get("metadata")
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise _type_error("metadata", "a mapping of str to str, or None", value)


def _record_metadata_value(metadata: Mapping[object, object], key: str) -> str | None:
    value = metadata.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _type_error(f"metadata.{key}", "str or None", value)


def _record_tags(record: Mapping[str, object]) -> list[str]:
    value = record.get("tags")
    if value is None:
        return []
    if isinstance(value, list | tuple):
        for tag in value:
            if not isinstance(tag, str):
                raise _type_error("tags", "a list or tuple of str, or None", tag)
        return list(value)
    raise _type_error("tags", "a list or tuple of str, or None", value)


def _matches(node: _Node, record: Mapping[str, object]) -> bool:
    if isinstance(node, _StringTerm):
        kind = node.field.kind
        if kind == "tags":
            return any(node.test(tag) for tag in _record_tags(record))
        if kind == "metadata":
            assert node.key is not None
            value = _record_metadata_value(_record_metadata(record), node.key)
        else:
            value = _record_string(record, node.field.name)
        return value is not None and node.test(value)
    if isinstance(node, _CompareTerm):
        if node.field.kind == "timestamp":
            number = _record_timestamp(record, node.field.name)
        else:
            number = _record_number(record, node.field.name)
        return number is not None and node.test(number)
    if isinstance(node, _Not):
        return not _matches(node.child, record)
    if isinstance(node, _And):
        return all(_matches(child, record) for child in node.children)
    if isinstance(node, _Or):
        return any(_matches(child, record) for child in node.children)
    return True
