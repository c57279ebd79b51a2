"""The columnar fleet snapshot that :meth:`Filter.evaluate` runs over.

Mirrors ``core_ext/rust/src/filter/snapshot.rs`` (``NULL_CODE``, the column shapes,
``encode``), plus what ``python.rs`` does when a ``FleetSnapshot`` is built: the argument
checks (``buffer``, ``dictionary``, ``pair``, ``codes``) and ``from_records``.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeAlias

from core_ext.reference.filter.ir import _FIELDS, NUMBER_COLUMNS, STRING_COLUMNS
from core_ext.reference.filter.record import (
    _record_metadata,
    _record_metadata_value,
    _record_number,
    _record_string,
    _record_tags,
    _record_timestamp,
)

NULL_CODE: Final = 0xFFFFFFFF
"""The code of NULL (or a missing metadata key) in a dictionary-encoded snapshot column."""

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
