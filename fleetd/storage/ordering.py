"""``order_by`` for ListDevices: parsing, SQL ORDER BY, and keyset ("seek") pagination.

Shared by every keyset-paged list (fleetd/storage/update_listing.py orders updates with
the same :class:`Ordering`); it lives in storage because it writes SQL.

``order_by`` is ``field [ASC|DESC], ...`` over a whitelist of columns (the seed's examples:
``last_seen DESC``, ``name ASC``, ``cpu_usage DESC, memory_usage DESC``). ``device_id``
is always appended as the unique tie-breaker. NULLs sort last in either direction (a
device that never heartbeated has no ``last_seen``), matching the indexes a user would
create (``(last_seen DESC NULLS LAST, device_id)``).

A page token carries the last row's sort values; the next page's condition is the
expanded lexicographic "strictly after" over the keys, NULL-aware. No OFFSET is ever used,
so pages stay stable while devices come and go.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

MAX_SORT_KEYS = 4

# field name in order_by -> (column, kind). Kinds decide how page-token values round-trip.
SORTABLE: dict[str, tuple[str, str]] = {
    "id": ("device_id", "text"),
    "name": ("name", "text"),
    "type": ("device_type", "text"),
    "version": ("version", "text"),
    "status": ("status", "text"),
    "last_seen": ("last_seen", "time"),
    "registered_at": ("registered_at", "time"),
    "updated_at": ("updated_at", "time"),
    "cpu_usage": ("cpu_usage", "number"),
    "memory_usage": ("memory_usage", "number"),
    "disk_usage": ("disk_usage", "number"),
}
_TERM = re.compile(r"^\s*([a-z_]+)(?:\s+(asc|desc))?\s*$", re.IGNORECASE)


class InvalidOrderBy(ValueError):
    """``order_by`` names an unknown field or is malformed; the message says which."""


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str
    column: str
    kind: str
    descending: bool


@dataclass(frozen=True, slots=True)
class Ordering:
    keys: tuple[SortKey, ...]

    @property
    def canonical(self) -> str:
        """A normal form, so page tokens can be tied to the ordering they came from."""
        return ",".join(f"{k.field} {'desc' if k.descending else 'asc'}" for k in self.keys)

    def order_by_sql(self) -> str:
        return ", ".join(
            f"{k.column} {'DESC' if k.descending else 'ASC'} NULLS LAST" for k in self.keys
        )

    def position(self, row: Any) -> list[Any]:
        """The sort values of ``row`` as JSON-safe values for a page token."""
        values: list[Any] = []
        for key in self.keys:
            value = row[key.column]
            values.append(value.isoformat() if isinstance(value, dt.datetime) else value)
        return values

    def check_position(self, position: list[Any]) -> list[Any]:
        """``position`` (from a page token) as bind values; InvalidOrderBy when it does
        not fit this ordering. Check a token before querying, so a bad one is the caller's
        error (INVALID_ARGUMENT), not the query's."""
        if len(position) != len(self.keys):
            raise InvalidOrderBy("page_token does not match order_by")
        return [_decode(k, v) for k, v in zip(self.keys, position, strict=True)]

    def after_sql(self, position: list[Any], first_param: int) -> tuple[str, list[Any]]:
        """A condition selecting rows strictly after ``position``; with bind values."""
        values = self.check_position(position)
        params: list[Any] = []

        def bind(value: Any) -> str:
            params.append(value)
            return f"${first_param + len(params) - 1}"

        alternatives: list[str] = []
        equal_so_far: list[str] = []
        last = len(self.keys) - 1
        for i, (key, value) in enumerate(zip(self.keys, values, strict=True)):
            if value is not None:
                placeholder = bind(value)
                beyond = f"{key.column} {'<' if key.descending else '>'} {placeholder}"
                alternatives.append(
                    " AND ".join([*equal_so_far, f"({beyond} OR {key.column} IS NULL)"])
                )
                if i < last:
                    equal_so_far.append(f"{key.column} = {placeholder}")
            else:  # NULLs come last: nothing is strictly after a NULL at this level
                equal_so_far.append(f"{key.column} IS NULL")
        return "(" + " OR ".join(f"({a})" for a in alternatives) + ")", params


def _decode(key: SortKey, value: Any) -> Any:
    if value is None:
        return None
    try:
        if key.kind == "time":
            return dt.datetime.fromisoformat(str(value))
        if key.kind == "number":
            return float(value)
    except ValueError:
        raise InvalidOrderBy("page_token holds a malformed position") from None
    if not isinstance(value, str):
        raise InvalidOrderBy("page_token holds a malformed position")
    return value


@dataclass(frozen=True, slots=True)
class SortableList:
    """What one list may be ordered by: the ``order_by`` fields with their (column, kind),
    the unique tie-breaker appended unless chosen, and what an empty ``order_by`` means."""

    fields: dict[str, tuple[str, str]]
    tie_breaker: SortKey
    default: str


DEVICES = SortableList(SORTABLE, SortKey("id", "device_id", "text", False), default="id")


def parse(order_by: str, sortable: SortableList = DEVICES) -> Ordering:
    """Parse ``order_by`` (``field [ASC|DESC], ...``) for the list ``sortable`` describes;
    an empty one means ``sortable.default``. InvalidOrderBy names the problem."""
    keys: list[SortKey] = []
    text = order_by if order_by.strip() else sortable.default
    for term in text.split(","):
        match = _TERM.match(term)
        if match is None:
            raise InvalidOrderBy(f"order_by: cannot parse {term.strip()!r}; use 'field [ASC|DESC]'")
        name = match[1].lower()
        if name not in sortable.fields:
            raise InvalidOrderBy(
                f"order_by: unknown field {name!r}; sortable fields are "
                f"{', '.join(sortable.fields)}"
            )
        if any(k.field == name for k in keys):
            raise InvalidOrderBy(f"order_by: {name!r} appears twice")
        column, kind = sortable.fields[name]
        keys.append(SortKey(name, column, kind, (match[2] or "asc").lower() == "desc"))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidOrderBy(f"order_by: at most {MAX_SORT_KEYS} fields")
    if all(k.field != sortable.tie_breaker.field for k in keys):
        keys.append(sortable.tie_breaker)
    return Ordering(tuple(keys))
