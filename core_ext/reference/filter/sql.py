"""SQL emitter: a parameterised WHERE-clause fragment over the ``devices`` table.

Only whitelisted column names (from the field table), operators and casts are written into
the SQL text; every value (metadata keys included) is a bind parameter. Mirrors
``core_ext/rust/src/filter/sql.rs``.
"""

from __future__ import annotations

from typing import Final

from core_ext.reference.filter.ir import (
    _SQL_OPS,
    PatternKind,
    _And,
    _CompareTerm,
    _like_escape,
    _Node,
    _Not,
    _Or,
    _StringTerm,
)
from core_ext.reference.filter.timestamps import _micros_datetime

_TAG_LIKE: Final = "EXISTS (SELECT 1 FROM unnest(tags) AS _tag(value) WHERE _tag.value LIKE {})"


class _SqlWriter:
    def __init__(self, first_param: int) -> None:
        self.params: list[object] = []
        self.first = first_param

    def bind(self, value: object, cast: str) -> str:
        self.params.append(value)
        return f"${self.first + len(self.params) - 1}::{cast}"

    def write(self, node: _Node) -> str:
        if isinstance(node, _StringTerm):
            return self.string_term(node)
        if isinstance(node, _CompareTerm):
            return self.compare_term(node)
        if isinstance(node, _Not):
            return f"NOT ({self.write(node.child)})"
        if isinstance(node, _And):
            return "(" + " AND ".join(self.write(c) for c in node.children) + ")"
        if isinstance(node, _Or):
            return "(" + " OR ".join(self.write(c) for c in node.children) + ")"
        return "TRUE"

    def string_term(self, node: _StringTerm) -> str:
        parts: list[str] = []
        if node.field.kind == "tags":
            if node.exact:
                parts.append(f"tags && {self.bind(list(node.exact), 'text[]')}")
            for kind, text in node.patterns:
                pattern = self.bind(_like_pattern(kind, text), "text")
                # Only the placeholder is interpolated; the value is a bind parameter.
                parts.append(_TAG_LIKE.format(pattern))
            return _join_or(parts)
        if node.field.kind == "metadata":
            column = f"(metadata->>{self.bind(node.key, 'text')})"
        else:
            column = node.field.column
        if len(node.exact) == 1:
            parts.append(f"{column} = {self.bind(node.exact[0], 'text')}")
        elif node.exact:
            parts.append(f"{column} = ANY({self.bind(list(node.exact), 'text[]')})")
        for kind, text in node.patterns:
            parts.append(f"{column} LIKE {self.bind(_like_pattern(kind, text), 'text')}")
        if node.field.kind == "metadata":
            # ->> is NULL for a missing key: make the predicate two-valued.
            return f"COALESCE({' OR '.join(parts)}, false)"
        return _join_or(parts)

    def compare_term(self, node: _CompareTerm) -> str:
        column = node.field.column
        operand = "uptime_seconds::float8" if column == "uptime_seconds" else column
        parts: list[str] = []
        if node.micros is not None:
            for micros in node.micros:
                value = self.bind(_micros_datetime(micros), "timestamptz")
                parts.append(f"{operand} {_SQL_OPS[node.op]} {value}")
        else:
            for number in node.values:
                parts.append(f"{operand} {_SQL_OPS[node.op]} {self.bind(number, 'float8')}")
        predicate = _join_or(parts)
        if node.field.nullable:
            # NULL AND false is false: the guard keeps the predicate two-valued and indexable.
            return f"({column} IS NOT NULL AND {predicate})"
        return predicate


def _like_pattern(kind: PatternKind, text: str) -> str:
    escaped = _like_escape(text)
    if kind == "prefix":
        return escaped + "%"
    if kind == "suffix":
        return "%" + escaped
    return "%" + escaped + "%"


def _join_or(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
