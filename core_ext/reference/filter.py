"""Device filter expressions: the pure-Python reference.

The operator API's ``filter`` strings (``type:raspberry-pi AND status:online``) are parsed
and type-checked once by :func:`compile_filter`; the resulting :class:`Filter` then answers
in three ways that always agree:

* :meth:`Filter.to_sql` -- a parameterised WHERE-clause fragment over the ``devices`` table;
* :meth:`Filter.evaluate` -- the matching rows of a columnar :class:`FleetSnapshot`;
* :meth:`Filter.matches` -- whether one device or event record matches.

The compiled ``fleetd_native`` extension implements the same API; this module defines the
semantics, error messages and error positions both must share.

Grammar (keywords are upper-case; precedence ``NOT`` > ``AND`` > ``OR``)::

    expression := or_expr | (empty or whitespace only: matches every device)
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := unary ("AND" unary)*
    unary      := "NOT" unary | "(" or_expr ")" | term
    term       := field ":" [">=" | "<=" | ">" | "<"] value ("," value)*
    field      := [A-Za-z0-9_.-]+        (a known field, or metadata.<key>)
    value      := bare | quoted
    bare       := any characters but whitespace ( ) , "
    quoted     := '"' ... '"'            (escapes \\" \\\\ \\*; may hold spaces , : ( ))

Juxtaposition is *not* a conjunction: ``status:online type:esp32`` is an error; write
``AND``. There is no whitespace inside a term. Whitespace is ASCII space, tab, CR, LF, VT,
FF. ``field:v1,v2`` is true when any value matches.

Wildcards: an unescaped ``*`` at the start and/or end of a value (bare or quoted) makes it
a suffix, prefix or contains match (``*`` alone: any value present). A ``*`` elsewhere is an
error; inside quotes ``\\*`` is a literal star.

Fields and types:

* strings ``id`` ``name`` ``type`` ``version`` ``agent_version`` ``fleet``: case-sensitive
  equality and wildcards; ``metadata.<key>`` (key ``[A-Za-z0-9_.-]{1,64}``) the same, a
  missing key being NULL; ``tags`` true when any tag matches.
* ``status``: one of unknown, online, offline, maintenance, updating, error, offboarded,
  case-insensitive (ASCII) in the filter, compared with the stored lower-case name.
* numbers ``cpu_usage`` ``memory_usage`` ``disk_usage`` ``uptime_seconds``: ``:`` (equal),
  ``>``, ``<``, ``>=``, ``<=`` against a decimal number (``80``, ``-1.5e3``; no inf/nan).
* timestamps ``last_seen`` ``registered_at`` ``updated_at``: the same operators against
  ``2024-01-01`` (midnight UTC), RFC 3339 (``2024-01-01T12:00:00.5+02:00``; ``T``, ``t`` or
  a space; fractions beyond microseconds are truncated) or a relative time ``-30s``
  ``-10m`` ``-2h`` ``-7d`` (now minus that, resolved at compile time against ``now``).
  Years 1 to 9999. Comparison is on Unix seconds as ``float(microseconds) / 1e6``.

Ordering operators are refused on every non-numeric field; wildcards on every numeric one.

NULL semantics are two-valued: a comparison involving NULL or a missing value is false,
and ``NOT`` is plain negation, so ``NOT cpu_usage:>80`` includes devices with no stats.

Errors are :class:`FilterError` with a 0-based character ``position``. The parser reads
left to right and reports the first problem it meets; within a term the order is: term
limit, ``:``, field, operator, then per value: value limit, lexing, what follows the value,
then the value's type.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_FILTER_VALUES",
    "Filter",
    "FilterError",
    "FleetSnapshot",
    "compile_filter",
]

MAX_FILTER_LENGTH: Final = 4096
"""Longest accepted expression, in characters."""
MAX_FILTER_DEPTH: Final = 32
"""Deepest accepted nesting of parentheses and ``NOT``."""
MAX_FILTER_TERMS: Final = 64
"""Most ``field:value`` terms in one expression."""
MAX_FILTER_VALUES: Final = 100
"""Most values in one term's list (``field:v1,v2,...``)."""

NULL_CODE: Final = 0xFFFFFFFF
"""The code of NULL (or a missing metadata key) in a dictionary-encoded snapshot column."""

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
_METADATA_PREFIX: Final = "metadata."
_MAX_METADATA_KEY: Final = 64

STRING_COLUMNS: Final = tuple(n for n, f in _FIELDS.items() if f.kind in ("string", "status"))
"""Fields a snapshot stores as dictionary-encoded string columns."""
NUMBER_COLUMNS: Final = tuple(n for n, f in _FIELDS.items() if f.kind in ("number", "timestamp"))
"""Fields a snapshot stores as ``array('d')`` (timestamps as Unix seconds); NaN is NULL."""

# ----------------------------------------------------------------------------- errors

E_TOO_LONG: Final = "expression too long: at most 4096 characters"
E_BAD_CHARACTER: Final = "invalid character: NUL and unpaired surrogates are not allowed"
E_EXPECTED_TERM: Final = "expected a field name, '(' or NOT"
E_EXPECTED_END: Final = "expected AND, OR or end of expression"
E_EXPECTED_CLOSE: Final = "expected AND, OR or ')'"
E_EXPECTED_COLON: Final = "expected ':' after field name '{field}'"
E_UNKNOWN_FIELD: Final = (
    "unknown field '{field}'; fields are id, name, type, version, agent_version, fleet, "
    "status, cpu_usage, memory_usage, disk_usage, uptime_seconds, last_seen, registered_at, "
    "updated_at, tags and metadata.<key>"
)
E_METADATA_KEY: Final = "metadata key must be 1 to 64 characters from A-Z a-z 0-9 _ . -"
E_OPERATOR: Final = (
    "operator '{op}' is not supported for field '{field}'; use ':' (equality, * wildcards)"
)
E_EXPECTED_VALUE: Final = "expected a value"
E_UNTERMINATED: Final = "unterminated quoted value"
E_ESCAPE: Final = 'invalid escape in quoted value: use \\", \\\\ or \\*'
E_STAR: Final = (
    "'*' is only allowed at the start or end of a value (inside quotes, \\* is a literal '*')"
)
E_AFTER_VALUE: Final = "expected ',', ')', whitespace or end of expression after a value"
E_WILDCARD: Final = "wildcards are not supported for field '{field}'"
E_STATUS: Final = (
    "unknown status; expected one of unknown, online, offline, maintenance, updating, "
    "error, offboarded"
)
E_NUMBER: Final = "invalid number for field '{field}'"
E_NUMBER_RANGE: Final = "number out of range for field '{field}'"
E_TIMESTAMP: Final = (
    "invalid timestamp for field '{field}': expected YYYY-MM-DD, RFC 3339 "
    "(2024-01-01T12:00:00Z) or a relative time (-30s, -10m, -2h, -7d)"
)
E_TIMESTAMP_RANGE: Final = "timestamp out of range for field '{field}': years 1 to 9999"
E_DEPTH: Final = "nesting too deep: at most 32 levels of parentheses and NOT"
E_TERMS: Final = "too many terms: at most 64"
E_VALUES: Final = "too many values in one term: at most 100"


class FilterError(ValueError):
    """The filter expression is invalid; the message says what was expected.

    Attributes:
        position: 0-based character offset in the expression where the problem is.
    """

    position: int

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


# ----------------------------------------------------------------------------- time

_MICROS: Final = 1_000_000
_DAY_MICROS: Final = 86_400 * _MICROS
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_MIN_MICROS: Final = (dt.date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_MICROS
_MAX_MICROS: Final = (dt.date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORDINAL) * _DAY_MICROS - 1
_MIN_NOW: Final = -62_135_596_800.0
_MAX_NOW: Final = 253_402_300_799.0
_UNIT_MICROS: Final = {"s": _MICROS, "m": 60 * _MICROS, "h": 3600 * _MICROS, "d": _DAY_MICROS}
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MICRO: Final = dt.timedelta(microseconds=1)

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_RELATIVE = re.compile(r"-([0-9]+)([smhd])")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _seconds(micros: int) -> float:
    """Unix seconds as the filter compares them (the same rounding in every backend)."""
    return float(micros) / 1e6


def _datetime_micros(value: dt.datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _MICROS + delta.microseconds


def _micros_datetime(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def _now_micros(now: float | None) -> int:
    if now is None:
        now = time.time()
    math.isfinite(now)  # converts as a C double does: TypeError for str and None
    seconds = float(now)
    if not _MIN_NOW <= seconds <= _MAX_NOW:
        raise ValueError("now must be a finite Unix time in years 1 to 9999")
    return round(seconds * 1e6)


def _parse_timestamp(text: str, now_micros: int) -> int | None:
    """Microseconds since the epoch; None when ``text`` has no timestamp form.

    Raises OverflowError when it has one but lies outside years 1 to 9999.
    """
    m = _RELATIVE.fullmatch(text)
    if m is not None:
        digits, unit = m.groups()
        if len(digits) > 12:
            raise OverflowError
        micros = now_micros - int(digits) * _UNIT_MICROS[unit]
    else:
        m = _DATE.fullmatch(text)
        if m is not None:
            year, month, day = (int(g) for g in m.groups())
            hour = minute = second = fraction = offset = 0
        else:
            m = _DATETIME.fullmatch(text)
            if m is None:
                return None
            year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
            frac, sign, off_h, off_m = m.groups()[6:]
            fraction = int((frac or "")[:6].ljust(6, "0"))
            offset = 0
            if sign is not None:
                if int(off_h) > 23 or int(off_m) > 59:
                    return None
                offset = (int(off_h) * 3600 + int(off_m) * 60) * (1 if sign == "+" else -1)
            if hour > 23 or minute > 59 or second > 59:
                return None
        try:
            days = dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None
        seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        micros = seconds * _MICROS + fraction
    if not _MIN_MICROS <= micros <= _MAX_MICROS:
        raise OverflowError
    return micros


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

# ----------------------------------------------------------------------------- parser

_WHITESPACE: Final = frozenset(" \t\n\r\x0b\x0c")
_WORD: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_BARE_STOP: Final = _WHITESPACE | frozenset('(),"')
_AFTER_VALUE: Final = _WHITESPACE | frozenset("),")
_KEYWORDS: Final = ("AND", "OR", "NOT")


class _Parser:
    def __init__(self, text: str, now_micros: int) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.depth = 0
        self.terms = 0
        self.now_micros = now_micros

    def fail(self, message: str, position: int) -> FilterError:
        return FilterError(message, position)

    def skip_ws(self) -> None:
        while self.i < self.n and self.s[self.i] in _WHITESPACE:
            self.i += 1

    def word(self) -> str:
        j = self.i
        while j < self.n and self.s[j] in _WORD:
            j += 1
        return self.s[self.i : j]

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise self.fail(E_DEPTH, position)

    def parse(self) -> _Node:
        self.skip_ws()
        if self.i == self.n:
            return _All()
        node = self.parse_or()
        self.skip_ws()
        if self.i < self.n:
            raise self.fail(E_EXPECTED_END, self.i)
        return node

    def parse_or(self) -> _Node:
        children = [self.parse_and()]
        while True:
            self.skip_ws()
            if self.word() != "OR":
                break
            self.i += 2
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else _Or(tuple(children))

    def parse_and(self) -> _Node:
        children = [self.parse_unary()]
        while True:
            self.skip_ws()
            if self.word() != "AND":
                break
            self.i += 3
            children.append(self.parse_unary())
        return children[0] if len(children) == 1 else _And(tuple(children))

    def parse_unary(self) -> _Node:
        self.skip_ws()
        if self.word() == "NOT":
            self.enter(self.i)
            self.i += 3
            negated = _Not(self.parse_unary())
            self.depth -= 1
            return negated
        if self.i < self.n and self.s[self.i] == "(":
            self.enter(self.i)
            self.i += 1
            node = self.parse_or()
            self.skip_ws()
            if self.i >= self.n or self.s[self.i] != ")":
                raise self.fail(E_EXPECTED_CLOSE, self.i)
            self.i += 1
            self.depth -= 1
            return node
        return self.parse_term()

    def parse_term(self) -> _Node:
        start = self.i
        name = self.word()
        if not name or name in _KEYWORDS:
            raise self.fail(E_EXPECTED_TERM, start)
        self.terms += 1
        if self.terms > MAX_FILTER_TERMS:
            raise self.fail(E_TERMS, start)
        self.i += len(name)
        if self.i >= self.n or self.s[self.i] != ":":
            raise self.fail(E_EXPECTED_COLON.format(field=name), self.i)
        key: str | None = None
        field = _FIELDS.get(name)
        if field is None:
            if not name.startswith(_METADATA_PREFIX):
                raise self.fail(E_UNKNOWN_FIELD.format(field=name), start)
            key = name[len(_METADATA_PREFIX) :]
            if not 1 <= len(key) <= _MAX_METADATA_KEY:
                raise self.fail(E_METADATA_KEY, start + len(_METADATA_PREFIX))
            field = _METADATA
        self.i += 1
        op: Op = ":"
        op_position = self.i
        two = self.s[self.i : self.i + 2]
        if two == ">=":
            op = ">="
        elif two == "<=":
            op = "<="
        elif two[:1] == ">":
            op = ">"
        elif two[:1] == "<":
            op = "<"
        self.i += len(op) if op != ":" else 0
        if op != ":" and field.kind not in ("number", "timestamp"):
            raise self.fail(E_OPERATOR.format(op=op, field=name), op_position)

        exact: list[str] = []
        patterns: list[tuple[PatternKind, str]] = []
        numbers: list[float] = []
        micros: list[int] = []
        count = 0
        while True:
            count += 1
            value_start = self.i
            if count > MAX_FILTER_VALUES:
                raise self.fail(E_VALUES, value_start)
            text, leading, trailing = self.lex_value()
            if self.i < self.n and self.s[self.i] not in _AFTER_VALUE:
                raise self.fail(E_AFTER_VALUE, self.i)
            if field.kind in ("string", "metadata", "tags"):
                if leading and trailing:
                    patterns.append(("contains", text))
                elif leading:
                    patterns.append(("suffix", text))
                elif trailing:
                    patterns.append(("prefix", text))
                else:
                    exact.append(text)
            elif leading or trailing:
                raise self.fail(E_WILDCARD.format(field=name), value_start)
            elif field.kind == "status":
                lowered = text.lower() if text.isascii() else text
                if lowered not in STATUSES:
                    raise self.fail(E_STATUS, value_start)
                exact.append(lowered)
            elif field.kind == "number":
                if _NUMBER.fullmatch(text) is None:
                    raise self.fail(E_NUMBER.format(field=name), value_start)
                number = float(text)
                if not math.isfinite(number):
                    raise self.fail(E_NUMBER_RANGE.format(field=name), value_start)
                numbers.append(number)
            else:
                try:
                    when = _parse_timestamp(text, self.now_micros)
                except OverflowError:
                    raise self.fail(E_TIMESTAMP_RANGE.format(field=name), value_start) from None
                if when is None:
                    raise self.fail(E_TIMESTAMP.format(field=name), value_start)
                micros.append(when)
                numbers.append(_seconds(when))
            if self.i < self.n and self.s[self.i] == ",":
                self.i += 1
                continue
            break
        if field.kind in ("number", "timestamp"):
            return _CompareTerm(
                field, op, tuple(numbers), tuple(micros) if field.kind == "timestamp" else None
            )
        return _StringTerm(field, key, tuple(exact), tuple(patterns))

    def lex_value(self) -> tuple[str, bool, bool]:
        """The value at ``self.i``: (text, leading wildcard, trailing wildcard)."""
        start = self.i
        if start >= self.n or (self.s[start] in _BARE_STOP and self.s[start] != '"'):
            raise self.fail(E_EXPECTED_VALUE, start)
        chars: list[str] = []
        stars: list[int] = []  # indexes into chars of unescaped '*', with their positions
        star_positions: list[int] = []
        if self.s[start] == '"':
            j = start + 1
            while True:
                if j >= self.n:
                    raise self.fail(E_UNTERMINATED, start)
                c = self.s[j]
                if c == '"':
                    j += 1
                    break
                if c == "\\":
                    if j + 1 >= self.n:
                        raise self.fail(E_UNTERMINATED, start)
                    nxt = self.s[j + 1]
                    if nxt not in ('"', "\\", "*"):
                        raise self.fail(E_ESCAPE, j)
                    chars.append(nxt)
                    j += 2
                    continue
                if c == "*":
                    stars.append(len(chars))
                    star_positions.append(j)
                chars.append(c)
                j += 1
        else:
            j = start
            while j < self.n and self.s[j] not in _BARE_STOP:
                if self.s[j] == "*":
                    stars.append(len(chars))
                    star_positions.append(j)
                chars.append(self.s[j])
                j += 1
        leading = trailing = False
        last = len(chars) - 1
        for index, position in zip(stars, star_positions, strict=True):
            if index == 0:
                leading = True
            elif index == last:
                trailing = True
            else:
                raise self.fail(E_STAR, position)
        self.i = j
        body = chars[(1 if leading else 0) : (last if trailing else last + 1)]
        return "".join(body), leading, trailing


def _check_characters(expression: str) -> None:
    for position, c in enumerate(expression):
        if c == "\0" or "\ud800" <= c <= "\udfff":
            raise FilterError(E_BAD_CHARACTER, position)


def compile_filter(expression: str, *, now: float | None = None) -> Filter:
    """Parse and type-check a filter expression.

    Args:
        expression: the filter (see the module docstring); empty or whitespace-only
            matches every device.
        now: Unix seconds that relative times (``-10m``) count back from; default the
            current time. Resolved here, once, so every backend agrees.

    Raises:
        FilterError: the expression is invalid (message and ``position`` say where/why).
        ValueError: ``now`` is not finite or outside years 1 to 9999.
        TypeError: ``expression`` is not a str, or ``now`` not a real number.
    """
    if not isinstance(expression, str):
        raise TypeError(f"expression must be str, not {type(expression).__name__}")
    now_micros = _now_micros(now)
    if len(expression) > MAX_FILTER_LENGTH:
        raise FilterError(E_TOO_LONG, MAX_FILTER_LENGTH)
    _check_characters(expression)
    root = _Parser(expression, now_micros).parse()
    return Filter(expression, root)


# ----------------------------------------------------------------------------- records


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


# ----------------------------------------------------------------------------- snapshot

DictionaryColumn: TypeAlias = tuple[Sequence[str], "array[int]"]
"""``(dictionary, codes)``: row ``i`` holds ``dictionary[codes[i]]``, or NULL when
``codes[i] == FleetSnapshot.NULL_CODE``. ``codes`` is an ``array('I')``."""
TagsColumn: TypeAlias = tuple[Sequence[str], "array[int]", "array[int]"]
"""``(dictionary, offsets, codes)``: row ``i``'s tags are
``dictionary[codes[j]] for j in range(offsets[i], offsets[i + 1])``; ``offsets`` has
``size + 1`` entries from 0 to ``len(codes)``; both are ``array('I')``."""


def _buffer(value: object, typecode: str, what: str) -> memoryview:
    try:
        view = memoryview(value)  # type: ignore[arg-type]  # checked just below
    except TypeError:
        view = None
    if view is None or view.format != typecode or view.ndim != 1:
        raise TypeError(f"{what} must be an array('{typecode}')")
    return view


def _dictionary(value: object, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{what} dictionary must be a list of str")
    words = list(value)
    for word in words:
        if not isinstance(word, str):
            raise TypeError(f"{what} dictionary must be a list of str")
    return words


def _pair(value: object, what: str) -> tuple[object, object]:
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"{what} must be a (dictionary, codes) tuple")
    return value[0], value[1]


def _codes(value: object, size: int, dictionary_size: int, what: str, nulls: bool) -> array[int]:
    codes = array("I", _buffer(value, "I", f"{what} codes"))
    if len(codes) != size:
        raise ValueError(f"{what} has {len(codes)} rows, expected {size}")
    for row, code in enumerate(codes):
        if code >= dictionary_size and not (nulls and code == NULL_CODE):
            raise ValueError(f"{what} has a code out of range at row {row}")
    return codes


class FleetSnapshot:
    """An immutable columnar snapshot of a fleet, for :meth:`Filter.evaluate`.

    Built once from arrays (no per-row Python objects): every argument is keyword-only
    and optional; a column that is not given is NULL on every row (no tags for ``tags``).

    Args:
        size: the number of rows (devices).
        strings: field name (``id``, ``name``, ``type``, ``version``, ``agent_version``,
            ``fleet``, ``status``) -> ``(dictionary, codes)``, see ``DictionaryColumn``.
        numbers: field name (``cpu_usage``, ``memory_usage``, ``disk_usage``,
            ``uptime_seconds``, ``last_seen``, ``registered_at``, ``updated_at``) ->
            ``array('d')``: numbers, timestamps as Unix seconds (``float(micros) / 1e6``),
            NaN for NULL.
        metadata: metadata key -> ``(dictionary, codes)``, ``NULL_CODE`` where the key is
            missing.
        tags: ``(dictionary, offsets, codes)``, see ``TagsColumn``.

    Raises:
        TypeError: a column of the wrong type (codes and offsets must be ``array('I')``,
            numbers ``array('d')``, dictionaries lists of str).
        ValueError: unknown field names, wrong lengths, codes outside their dictionary,
            offsets not ascending from 0 to ``len(codes)``.
    """

    NULL_CODE: Final = NULL_CODE
    """The code of NULL (or a missing metadata key) in a dictionary-encoded column."""

    __slots__ = ("_metadata", "_numbers", "_size", "_strings", "_tags")

    def __init__(
        self,
        size: int,
        *,
        strings: Mapping[str, DictionaryColumn] | None = None,
        numbers: Mapping[str, array[float]] | None = None,
        metadata: Mapping[str, DictionaryColumn] | None = None,
        tags: TagsColumn | None = None,
    ) -> None:
        if not isinstance(size, int) or size < 0 or size > 0xFFFFFFFF:
            raise ValueError("size must be an int from 0 to 4294967295")
        self._size = size
        self._strings: dict[str, tuple[list[str], array[int]]] = {}
        self._numbers: dict[str, array[float]] = {}
        self._metadata: dict[str, tuple[list[str], array[int]]] = {}
        self._tags: tuple[list[str], array[int], array[int]] | None = None
        for name, column in (strings or {}).items():
            if name not in STRING_COLUMNS:
                raise ValueError(f"unknown string column '{name}'")
            what = f"column '{name}'"
            words, codes = _pair(column, what)
            dictionary = _dictionary(words, what)
            self._strings[name] = (dictionary, _codes(codes, size, len(dictionary), what, True))
        for name, values in (numbers or {}).items():
            if name not in NUMBER_COLUMNS:
                raise ValueError(f"unknown number column '{name}'")
            doubles = array("d", _buffer(values, "d", f"column '{name}'"))
            if len(doubles) != size:
                raise ValueError(f"column '{name}' has {len(doubles)} rows, expected {size}")
            self._numbers[name] = doubles
        for key, column in (metadata or {}).items():
            if not isinstance(key, str):
                raise TypeError("metadata keys must be str")
            what = f"metadata column '{key}'"
            words, codes = _pair(column, what)
            dictionary = _dictionary(words, what)
            self._metadata[key] = (dictionary, _codes(codes, size, len(dictionary), what, True))
        if tags is not None:
            if not isinstance(tags, tuple) or len(tags) != 3:
                raise TypeError("tags must be a (dictionary, offsets, codes) tuple")
            dictionary = _dictionary(tags[0], "tags")
            offsets = array("I", _buffer(tags[1], "I", "tags offsets"))
            codes_view = _buffer(tags[2], "I", "tags codes")
            if len(offsets) != size + 1:
                raise ValueError(f"tags offsets has {len(offsets)} entries, expected {size + 1}")
            if offsets[0] != 0 or offsets[size] != len(codes_view):
                raise ValueError("tags offsets must run from 0 to len(codes)")
            for row in range(size):
                if offsets[row] > offsets[row + 1]:
                    raise ValueError(f"tags offsets decrease at row {row}")
            tag_codes = _codes(codes_view, len(codes_view), len(dictionary), "tags", False)
            self._tags = (dictionary, offsets, tag_codes)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<FleetSnapshot of {self._size} devices>"

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]]) -> FleetSnapshot:
        """A snapshot of device records (the shape :meth:`Filter.matches` takes).

        Every field is read with the same rules and errors as :meth:`Filter.matches`;
        every metadata key found becomes a column. For tests, benchmarks and small fleets:
        it does Python work per row.
        """
        rows = list(records)
        size = len(rows)
        strings: dict[str, DictionaryColumn] = {}
        for name in STRING_COLUMNS:
            strings[name] = _encode([_record_string(r, name) for r in rows])
        numbers: dict[str, array[float]] = {}
        for name in NUMBER_COLUMNS:
            read = _record_timestamp if _FIELDS[name].kind == "timestamp" else _record_number
            values = [read(r, name) for r in rows]
            numbers[name] = array("d", [math.nan if v is None else v for v in values])
        maps = [_record_metadata(r) for r in rows]
        keys: dict[str, None] = {}
        for m in maps:
            for key in m:
                if not isinstance(key, str):
                    raise TypeError("record field 'metadata' keys must be str")
                keys[key] = None
        metadata = {k: _encode([_record_metadata_value(m, k) for m in maps]) for k in keys}
        all_tags = [_record_tags(r) for r in rows]
        tag_words: dict[str, int] = {}
        offsets = array("I", [0])
        tag_codes = array("I")
        for row_tags in all_tags:
            for tag in row_tags:
                tag_codes.append(tag_words.setdefault(tag, len(tag_words)))
            offsets.append(len(tag_codes))
        return cls(
            size,
            strings=strings,
            numbers=numbers,
            metadata=metadata,
            tags=(list(tag_words), offsets, tag_codes),
        )


def _encode(values: list[str | None]) -> DictionaryColumn:
    words: dict[str, int] = {}
    codes = array(
        "I", [NULL_CODE if v is None else words.setdefault(v, len(words)) for v in values]
    )
    return list(words), codes


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


# ----------------------------------------------------------------------------- SQL


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


# ----------------------------------------------------------------------------- Filter


class Filter:
    """A compiled filter expression; immutable, reusable, thread-safe.

    Made by :func:`compile_filter`, never directly.
    """

    __slots__ = ("_expression", "_root")

    def __init__(self, expression: str, root: _Node) -> None:
        self._expression = expression
        self._root = root

    @property
    def expression(self) -> str:
        """The source expression, as given."""
        return self._expression

    def __repr__(self) -> str:
        return f"<Filter {self._expression!r}>"

    def to_sql(self, first_param: int = 1) -> tuple[str, list[object]]:
        """A WHERE-clause fragment over the ``devices`` table, and its bind values.

        Placeholders are ``$first_param``, ``$first_param + 1``...; values are never part
        of the SQL text, only whitelisted column names, operators and casts are. Bind
        values are str, float, list[str] and UTC ``datetime.datetime``. The fragment is
        two-valued (never NULL), parenthesised, and refers to the columns unqualified;
        the empty filter gives ``TRUE``.

        Raises:
            ValueError: ``first_param`` is not from 1 to 65535.
            TypeError: ``first_param`` is not an int.
        """
        if not isinstance(first_param, int):
            raise TypeError(f"first_param must be int, not {type(first_param).__name__}")
        if not 1 <= first_param <= 65535:
            raise ValueError("first_param must be from 1 to 65535 (PostgreSQL's limit)")
        writer = _SqlWriter(first_param)
        sql = writer.write(self._root)
        return sql, writer.params

    def evaluate(self, snapshot: FleetSnapshot) -> array[int]:
        """The indexes of the snapshot rows that match, ascending, as ``array('I')``."""
        if not isinstance(snapshot, FleetSnapshot):
            raise TypeError("snapshot must be a FleetSnapshot")
        predicate = _row_predicate(self._root, snapshot)
        return array("I", [row for row in range(len(snapshot)) if predicate(row)])

    def matches(self, record: Mapping[str, object]) -> bool:
        """Whether one device or event record matches.

        Keys are field names; only the fields the filter names are read, a missing key
        is NULL. Strings (``id``, ``name``, ``type``, ``status``...) are str or None;
        numbers float, int or None (NaN is NULL); timestamps ``datetime.datetime``
        (naive = UTC), Unix seconds (float or int) or None; ``metadata`` a mapping of
        str to str (or None); ``tags`` a list or tuple of str (or None).

        Raises:
            TypeError: a field the filter reads has a value of another type.
        """
        return _matches(self._root, record)
