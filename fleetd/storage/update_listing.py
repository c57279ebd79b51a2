"""``filter`` and ``order_by`` of ListUpdates (pure: text in, SQL fragments out).

The device filter engine (core_ext) is compiled against the ``devices`` table, so updates
have their own small filter, a documented subset of the same language::

    name:firmware*   version:2.0.0,2.0.1   metadata.channel:stable   created_at:>-7d
    NOT name:"Firmware Update v2.0" AND created_at:>=2024-01-01

- terms joined by ``AND`` (upper case); ``OR`` only as a value list (``field:a,b``);
  ``NOT`` before a term negates it; no parentheses;
- ``name``, ``version``, ``metadata.<key>``: case-sensitive equality, ``*`` at the start
  and/or end of a value for suffix/prefix/contains matches; values may be quoted
  (``"..."``, with ``\\"`` and ``\\\\``) to hold spaces;
- ``created_at``: ``:`` ``>`` ``<`` ``>=`` ``<=`` against ``YYYY-MM-DD`` (midnight UTC),
  RFC 3339, or ``-30s -10m -2h -7d`` (now minus that); one value.

Values are always bind parameters. Limits: 1024 characters, 16 terms, 32 values a term.

``order_by`` is ``field [ASC|DESC], ...`` over ``created_at``, ``name``, ``version``
(default ``created_at DESC``), with the update id as the final tie-breaker, paged by
keyset like ListDevices (fleetd/storage/ordering.py); :func:`fleetd.storage.updates.list_updates`
runs the query.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from fleetd.storage.ordering import Ordering, SortableList, SortKey, parse
from fleetd.v1 import update_pb2

MAX_FILTER = 1024
MAX_TERMS = 16
MAX_VALUES = 32

SORTABLE: dict[str, tuple[str, str]] = {
    "created_at": ("created_at", "time"),
    "name": ("name", "text"),
    "version": ("version", "text"),
}
DEFAULT_ORDER = "created_at DESC"
UPDATES = SortableList(SORTABLE, SortKey("id", "update_id", "text", False), DEFAULT_ORDER)
_VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^\s(),"]+)'
_TERM = re.compile(rf"(NOT\s+)?([A-Za-z0-9_.-]+):(>=|<=|>|<)?({_VALUE}(?:,{_VALUE})*)(?=\s|$)")
_VALUES = re.compile(_VALUE)
_METADATA_KEY = re.compile(r"^metadata\.([A-Za-z0-9_.-]{1,64})$")
_RELATIVE = re.compile(r"^-([0-9]{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class InvalidFilter(ValueError):
    """The filter is not in the supported subset; the message says where."""


def parse_order(order_by: str) -> Ordering:
    """``order_by`` for updates; an empty one means DEFAULT_ORDER."""
    return parse(order_by, UPDATES)


def position(order: Ordering, update: update_pb2.Update) -> list[Any]:
    """``update``'s sort values for a page token (the shape Ordering.position makes)."""
    values = {
        "created_at": update.created_at.ToDatetime(tzinfo=dt.UTC),
        "name": update.name,
        "version": update.version,
        "update_id": update.id,
    }
    row = {k.column: values[k.column] for k in order.keys}
    return order.position(row)


@dataclass
class SqlFilter:
    """A WHERE fragment with ``$n`` placeholders numbered from ``first``."""

    first: int = 1
    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def bind(self, value: Any, cast: str) -> str:
        self.params.append(value)
        return f"${self.first + len(self.params) - 1}::{cast}"

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


def compile_filter(text: str, *, now: dt.datetime | None = None, first: int = 1) -> SqlFilter:
    """The SQL of ``text`` (see the module docstring); raises InvalidFilter."""
    if len(text) > MAX_FILTER:
        raise InvalidFilter(f"filter: longer than {MAX_FILTER} characters")
    now = now or dt.datetime.now(dt.UTC)
    out = SqlFilter(first)
    pos = _skip_space(text, 0)
    if pos == len(text):
        return out
    while True:
        match = _TERM.match(text, pos)
        if match is None:
            raise InvalidFilter(
                f"filter: expected field:value at character {pos} (supported: name, version, "
                "created_at, metadata.<key>; terms joined by AND)"
            )
        if len(out.clauses) == MAX_TERMS:
            raise InvalidFilter(f"filter: at most {MAX_TERMS} terms")
        clause = _term(out, match[2], match[3] or "", match[4], now, pos)
        out.clauses.append(f"NOT {clause}" if match[1] else clause)
        pos = _skip_space(text, match.end())
        if pos == len(text):
            return out
        if not text.startswith("AND", pos) or not text[pos + 3 : pos + 4].isspace():
            raise InvalidFilter(
                f"filter: expected AND at character {pos} (OR is written as a value list, "
                "field:a,b)"
            )
        pos = _skip_space(text, pos + 3)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _unquote(value: str) -> tuple[str, bool, bool]:
    """(literal text, wildcard at start, wildcard at end)."""
    if value.startswith('"'):
        inner = value[1:-1]
        starts, ends = inner.startswith("*"), inner.endswith("*") and not inner.endswith("\\*")
        inner = inner[1:] if starts else inner
        inner = inner[:-1] if ends else inner
        return re.sub(r"\\(.)", r"\1", inner), starts, ends
    starts, ends = value.startswith("*"), len(value) > 1 and value.endswith("*")
    inner = value[1 if starts else 0 : len(value) - 1 if ends else len(value)]
    return inner, starts, ends


def _like(text: str, starts: bool, ends: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{'%' if starts else ''}{escaped}{'%' if ends else ''}"


def _term(out: SqlFilter, name: str, op: str, raw: str, now: dt.datetime, pos: int) -> str:
    values = _VALUES.findall(raw)
    if len(values) > MAX_VALUES:
        raise InvalidFilter(f"filter: at most {MAX_VALUES} values in one term")
    if name == "created_at":
        if len(values) != 1:
            raise InvalidFilter(f"filter: created_at takes one value (character {pos})")
        when = _time(_unquote(values[0])[0], now, pos)
        return f"(created_at {op or '='} {out.bind(when, 'timestamptz')})"
    metadata = _METADATA_KEY.match(name)
    if name not in ("name", "version") and metadata is None:
        raise InvalidFilter(
            f"filter: unknown field {name!r} at character {pos}; fields are name, version, "
            "created_at, metadata.<key>"
        )
    if op:
        raise InvalidFilter(f"filter: {name} takes no {op} (character {pos})")
    column = "metadata->>" + out.bind(metadata[1], "text") if metadata else name
    alternatives = []
    for value in values:
        text, starts, ends = _unquote(value)
        if starts or ends:
            if not text and starts:  # '*' alone: the field is present
                alternatives.append(f"{column} IS NOT NULL")
            else:
                pattern = out.bind(_like(text, starts, ends), "text")
                alternatives.append(f"{column} LIKE {pattern}")
        else:
            alternatives.append(f"{column} = {out.bind(text, 'text')}")
    return f"COALESCE(({' OR '.join(alternatives)}), false)"


def _time(value: str, now: dt.datetime, pos: int) -> dt.datetime:
    relative = _RELATIVE.match(value)
    if relative:
        return now - dt.timedelta(seconds=int(relative[1]) * _UNITS[relative[2]])
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(
            f"filter: created_at value {value[:40]!r} at character {pos} is not a date, "
            "an RFC 3339 time or -<n>s/m/h/d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
