"""The public face of the filter reference: :func:`compile_filter` and :class:`Filter`.

Mirrors ``core_ext/rust/src/filter/python.rs`` (the compiled module's Python bindings):
argument checks, then the parser, the SQL emitter, evaluation and record matching.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping

from core_ext.reference.filter.eval import _row_predicate
from core_ext.reference.filter.ir import _Node
from core_ext.reference.filter.parse import (
    E_TOO_LONG,
    MAX_FILTER_LENGTH,
    FilterError,
    _check_characters,
    _Parser,
)
from core_ext.reference.filter.record import _matches
from core_ext.reference.filter.snapshot import FleetSnapshot
from core_ext.reference.filter.sql import _SqlWriter
from core_ext.reference.filter.timestamps import _now_micros


def compile_filter(expression: str, *, now: float | None = None) -> Filter:
    """Parse and type-check a filter expression.

    Args:
        expression: the filter (see the package docstring); empty or whitespace-only
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
