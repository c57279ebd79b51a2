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

Layout: the package mirrors the Rust twin in ``core_ext/rust/src/filter/`` module for
module, so the two read side by side (this file mirrors ``mod.rs``):

* ``ir.py`` -- ``ir.rs``: the field table, statuses, typed terms and the boolean tree.
* ``timestamps.py`` -- ``time.rs``: timestamp values (``YYYY-MM-DD``, RFC 3339, relative
  times) as Unix microseconds, and ``now``.
* ``parse.py`` -- ``parse.rs``: the limits, the error messages, :class:`FilterError` and
  the parser / typed compiler.
* ``sql.py`` -- ``sql.rs``: the SQL emitter.
* ``snapshot.py`` -- ``snapshot.rs``: :class:`FleetSnapshot` (with the argument checks that
  ``python.rs`` makes on the way in).
* ``eval.py`` -- ``eval.rs``: evaluation over a snapshot (here row by row, not bitmaps).
* ``record.py`` -- ``record.rs``: reading records and :meth:`Filter.matches`.
* ``api.py`` -- ``python.rs``: :class:`Filter` and :func:`compile_filter`.
"""

from core_ext.reference.filter.api import Filter, compile_filter
from core_ext.reference.filter.parse import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    MAX_FILTER_VALUES,
    FilterError,
)
from core_ext.reference.filter.snapshot import FleetSnapshot

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
