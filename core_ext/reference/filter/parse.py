"""Parser and typed compiler: expression text to an IR tree, or a :class:`FilterError`.

Holds the limits, the error messages and the character check too. Mirrors
``core_ext/rust/src/filter/parse.rs`` step for step: the same checks in the same order give
the same messages at the same positions. (There the parser returns a ``ParseError`` that
``python.rs`` turns into ``FilterError``; here the parser raises it directly.)
"""

from __future__ import annotations

import math
import re
from typing import Final

from core_ext.reference.filter.ir import (
    _FIELDS,
    _METADATA,
    STATUSES,
    Op,
    PatternKind,
    _All,
    _And,
    _CompareTerm,
    _Node,
    _Not,
    _Or,
    _StringTerm,
)
from core_ext.reference.filter.timestamps import _parse_timestamp, _seconds

MAX_FILTER_LENGTH: Final = 4096
"""Longest accepted expression, in characters."""
MAX_FILTER_DEPTH: Final = 32
"""Deepest accepted nesting of parentheses and ``NOT``."""
MAX_FILTER_TERMS: Final = 64
"""Most ``field:value`` terms in one expression."""
MAX_FILTER_VALUES: Final = 100
"""Most values in one term's list (``field:v1,v2,...``)."""

_METADATA_PREFIX: Final = "metadata."
_MAX_METADATA_KEY: Final = 64
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

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
