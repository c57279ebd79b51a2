"""Evaluation of a filter over a :class:`FleetSnapshot`: the matching rows.

Mirrors ``core_ext/rust/src/filter/eval.rs``. The semantics are the same; the reference
tests each row in turn where the Rust twin builds one bitmap per node.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from core_ext.reference.filter.ir import _And, _CompareTerm, _Node, _Not, _Or, _StringTerm
from core_ext.reference.filter.snapshot import NULL_CODE, FleetSnapshot


def _row_predicate(node: _Node, snapshot: FleetSnapshot) -> Callable[[int], bool]:
    """Row index -> whether the row matches (the obvious per-row semantics)."""
    if isinstance(node, _StringTerm):
        kind = node.field.kind
        if kind == "tags":
            tags = snapshot._tags
            if tags is None:
                return lambda row: False
            words, offsets, codes = tags
            return lambda row: any(
                node.test(words[codes[j]]) for j in range(offsets[row], offsets[row + 1])
            )
        if kind == "metadata":
            assert node.key is not None
            column = snapshot._metadata.get(node.key)
        else:
            column = snapshot._strings.get(node.field.name)
        if column is None:
            return lambda row: False
        dictionary, string_codes = column
        return lambda row: (
            string_codes[row] != NULL_CODE and node.test(dictionary[string_codes[row]])
        )
    if isinstance(node, _CompareTerm):
        values = snapshot._numbers.get(node.field.name)
        if values is None:
            return lambda row: False
        return lambda row: not math.isnan(values[row]) and node.test(values[row])
    if isinstance(node, _Not):
        inner = _row_predicate(node.child, snapshot)
        return lambda row: not inner(row)
    if isinstance(node, _And):
        parts = [_row_predicate(child, snapshot) for child in node.children]
        return lambda row: all(p(row) for p in parts)
    if isinstance(node, _Or):
        parts = [_row_predicate(child, snapshot) for child in node.children]
        return lambda row: any(p(row) for p in parts)
    return lambda row: True
