"""The compiled form of a filter: the field table, typed terms and the boolean tree.

Mirrors ``core_ext/rust/src/filter/ir.rs`` (``Field``/``FIELDS``/``STATUSES``, ``Pattern``,
``StringTerm``, ``Op``, ``CompareTerm``, ``Node``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

STATUSES: Final = (
    "unknown",
    "online",
    "offline",
    "maintenance",
    "updating",
    "error",
    "offboarded",
)

# ----------------------------------------------------------------------------- fields

Kind: TypeAlias = Literal["string", "status", "number", "timestamp", "metadata", "tags"]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: Kind
    column: str
    nullable: bool


_FIELDS: Final[dict[str, _Field]] = {
    f.name: f
    for f in (
        _Field("id", "string", "device_id", False),
        _Field("name", "string", "name", False),
        _Field("type", "string", "device_type", False),
        _Field("version", "string", "version", False),
        _Field("agent_version", "string", "agent_version", False),
        _Field("fleet", "string", "fleet", False),
        _Field("status", "status", "status", False),
        _Field("cpu_usage", "number", "cpu_usage", True),
        _Field("memory_usage", "number", "memory_usage", True),
        _Field("disk_usage", "number", "disk_usage", True),
        _Field("uptime_seconds", "number", "uptime_seconds", True),
        _Field("last_seen", "timestamp", "last_seen", True),
        _Field("registered_at", "timestamp", "registered_at", False),
        _Field("updated_at", "timestamp", "updated_at", False),
        _Field("tags", "tags", "tags", False),
    )
}
_METADATA: Final = _Field("metadata", "metadata", "metadata", True)

STRING_COLUMNS: Final = tuple(n for n, f in _FIELDS.items() if f.kind in ("string", "status"))
"""Fields a snapshot stores as dictionary-encoded string columns."""
NUMBER_COLUMNS: Final = tuple(n for n, f in _FIELDS.items() if f.kind in ("number", "timestamp"))
"""Fields a snapshot stores as ``array('d')`` (timestamps as Unix seconds); NaN is NULL."""

# ----------------------------------------------------------------------------- IR

Op: TypeAlias = Literal[":", ">", "<", ">=", "<="]
PatternKind: TypeAlias = Literal["prefix", "suffix", "contains"]

_SQL_OPS: Final[dict[str, str]] = {":": "=", ">": ">", "<": "<", ">=": ">=", "<=": "<="}


def _compare(op: Op, a: float, b: float) -> bool:
    if op == ":":
        return a == b
    if op == ">":
        return a > b
    if op == "<":
        return a < b
    if op == ">=":
        return a >= b
    return a <= b


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class _StringTerm:
    """String, status, metadata or tags: true when the value equals one of ``exact`` or
    matches one of ``patterns`` (for tags: when any tag does)."""

    field: _Field
    key: str | None
    exact: tuple[str, ...]
    patterns: tuple[tuple[PatternKind, str], ...]

    def test(self, value: str) -> bool:
        if value in self.exact:
            return True
        for kind, text in self.patterns:
            if kind == "prefix":
                if value.startswith(text):
                    return True
            elif kind == "suffix":
                if value.endswith(text):
                    return True
            elif text in value:
                return True
        return False


@dataclass(frozen=True, slots=True)
class _CompareTerm:
    """Number or timestamp: true when the (non-NULL) value compares true with any value.

    ``micros`` holds the timestamps' exact microseconds (for SQL), None for numbers.
    """

    field: _Field
    op: Op
    values: tuple[float, ...]
    micros: tuple[int, ...] | None

    def test(self, value: float) -> bool:
        return any(_compare(self.op, value, v) for v in self.values)


@dataclass(frozen=True, slots=True)
class _Not:
    child: _Node


@dataclass(frozen=True, slots=True)
class _And:
    children: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Or:
    children: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _All:
    pass


_Node: TypeAlias = _StringTerm | _CompareTerm | _Not | _And | _Or | _All
