"""Mergeable quantile sketches (DDSketch), the pure-Python reference.

A :class:`Sketch` summarises a stream of numbers so that any quantile can be read back
within a stated *relative* error, and so that sketches of separate streams (per minute,
per device group) merge into the sketch of their union. It is the DDSketch of Masson, Rim
and Lee (VLDB 2019). The compiled ``fleetd_native.Sketch`` gives identical quantiles,
identical bytes and identical errors; this module defines them.

Mapping. With relative accuracy ``alpha`` (``MIN_RELATIVE_ACCURACY`` to
``MAX_RELATIVE_ACCURACY``, default 0.01), ``gamma = (1 + alpha) / (1 - alpha)`` and
``multiplier = 1 / log1p(2 * alpha / (1 - alpha))`` (that is ``1 / ln gamma``):

- a value ``x > 0`` is counted in the *positive store* under key ``ceil(log(x) *
  multiplier)``, the bucket ``(gamma^(k-1), gamma^k]``;
- a value ``x < 0`` in the *negative store* under key ``-ceil(log(-x) * multiplier)`` (so
  in each store a higher key means a higher value);
- ``0.0`` and ``-0.0`` in the zero count.

``log``, ``log1p`` and ``exp`` are the C library's, which both implementations call, so
keys agree bit for bit on one machine.

Quantiles. ``quantile(q)`` is an estimate of the element of rank ``floor(q * (count - 1))``
(0-based) in sorted order, the "lower" quantile. Walking the bins in value order (negative
keys ascending, zeros, positive keys ascending), the first bin whose cumulative count
exceeds that rank answers: key ``k`` of the positive store with ``(1 - alpha) *
exp(k * ln gamma)``, the value whose relative distance to both ends of the bucket is
``alpha``; key ``k`` of the
negative store with the opposite of that for ``-k``; zeros with ``0.0``. The answer is
clamped to ``[min, max]``, and ``quantile(0)`` is ``min``, ``quantile(1)`` is ``max``
exactly. So for every quantile whose true value lies outside a collapsed range (below),
``|estimate - true| <= alpha * |true|`` (up to float rounding at bucket edges).

Bounded size. Each store keeps at most ``max_bins`` consecutive keys: a value whose key
lies ``max_bins`` or more below the store's highest key ever seen ``H`` is counted under
``H - max_bins + 1``, and when ``H`` rises, the bins that fall below the new floor are
folded into it. This collapses the *lowest* values (the smallest positive ones; for the
negative store, the most negative ones). Quantiles whose values lie in a collapsed range
are over-estimated (up to the lowest kept bucket, clamped to ``min``): the relative
guarantee holds for quantiles above the collapsed range. A key lands in ``max(k, H -
max_bins + 1)`` whatever the order of insertion, so collapsing commutes with merging. With
the defaults one store spans values in a ratio of ``gamma^2048 ~ 6*10^17`` before anything
collapses.

Exact statistics. ``count`` is exact (at most ``MAX_COUNT``, 2^63 - 1); ``min`` and ``max``
are exact; ``sum`` is the float sum, added value by value in insertion order (``add(v, c)``
adds ``v * c``; ``merge`` adds the two sums), so merging in another order may change it by
rounding, as for any float sum. Everything else (bins, count, min, max, hence quantiles) is
independent of the order of adds and merges.

Merging. ``a.merge(b)`` needs the same ``relative_accuracy`` (bit for bit); ``a`` keeps its
``max_bins``. It equals the sketch of the concatenated streams when ``b.max_bins >=
a.max_bins``.

Binary format, version 1 (what ``to_bytes`` writes and ``from_bytes`` reads; little
endian; "uvarint" is LEB128, at most 10 bytes, minimal, up to 2^64 - 1)::

    b"DS"                  magic
    0x01                   version
    f64                    relative_accuracy
    uvarint                max_bins (1 to MAX_BINS)
    uvarint                zero count
    f64 f64 f64            sum, min, max (all +0.0 when the sketch is empty)
    store                  the negative store, then
    store                  the positive store

    store := uvarint n (non-empty bins, at most max_bins), then n pairs
             key   (the first: zigzag uvarint of the key; the next ones: uvarint of
                    key - previous key - 1, keys strictly ascending)
             count (uvarint, at least 1)

The encoding is canonical: ``from_bytes(b).to_bytes() == b`` for every ``b`` accepted.
``from_bytes`` refuses with ``ValueError("malformed sketch: ...")``, allocating nothing in
proportion to claimed sizes: a wrong magic or version, a truncation, trailing bytes, an
accuracy or ``max_bins`` out of range, a non-minimal varint, more than ``max_bins`` bins,
keys not ascending, spanning ``max_bins`` or more, or beyond ``+-ceil(746 * multiplier)``
(past any finite double), an empty bin, a total count over ``MAX_COUNT``, and statistics
that disagree with the bins.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Iterable

__all__ = [
    "DEFAULT_MAX_BINS",
    "DEFAULT_RELATIVE_ACCURACY",
    "FORMAT_VERSION",
    "MAX_BINS",
    "MAX_COUNT",
    "MAX_RELATIVE_ACCURACY",
    "MIN_RELATIVE_ACCURACY",
    "Sketch",
]

DEFAULT_RELATIVE_ACCURACY = 0.01
DEFAULT_MAX_BINS = 2048
MIN_RELATIVE_ACCURACY = 1e-6
MAX_RELATIVE_ACCURACY = 0.5
MAX_BINS = 65536
"""The largest ``max_bins`` accepted (per store)."""
MAX_COUNT = (1 << 63) - 1
"""The most values one sketch may hold (PostgreSQL's ``bigint``)."""
FORMAT_VERSION = 1
_MAGIC = b"DS"
_HEADER = struct.Struct("<d")
_STATS = struct.Struct("<ddd")
_U64 = (1 << 64) - 1


def _real(value: object) -> float:
    """``value`` as a float, accepting what ``PyFloat_AsDouble`` accepts (not ``str``)."""
    if type(value) is float:
        return value
    kind = type(value)
    if hasattr(kind, "__float__") or hasattr(kind, "__index__"):
        return float(value)  # type: ignore[arg-type]
    raise TypeError(f"must be real number, not {kind.__name__}")


def _not_finite(value: float) -> str:
    return "nan" if value != value else ("inf" if value > 0 else "-inf")


class _Store:
    """Counts by key; at most ``max_bins`` consecutive keys, the lowest ones collapsed."""

    __slots__ = ("bins", "hi", "lo")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.lo = 0
        self.hi = 0

    def add(self, key: int, count: int, max_bins: int) -> None:
        bins = self.bins
        if not bins:
            bins[key] = count
            self.lo = self.hi = key
            return
        if key > self.hi:
            self.hi = key
            floor = key - max_bins + 1
            if self.lo < floor:
                moved = 0
                for k in [k for k in bins if k < floor]:
                    moved += bins.pop(k)
                bins[floor] = bins.get(floor, 0) + moved
                self.lo = floor
        else:
            key = max(key, self.hi - max_bins + 1)
        bins[key] = bins.get(key, 0) + count
        if key < self.lo:
            self.lo = key

    def items(self) -> list[tuple[int, int]]:
        return sorted(self.bins.items())


def _uvarint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _write_store(out: bytearray, store: _Store) -> None:
    items = store.items()
    _uvarint(out, len(items))
    previous: int | None = None
    for key, count in items:
        if previous is None:
            _uvarint(out, (key << 1) ^ -1 if key < 0 else key << 1)
        else:
            _uvarint(out, key - previous - 1)
        _uvarint(out, count)
        previous = key


class _Reader:
    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, size: int) -> bytes:
        end = self.position + size
        if end > len(self.data):
            raise ValueError("malformed sketch: truncated")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def uvarint(self) -> int:
        value = 0
        for shift in range(0, 70, 7):
            if self.position >= len(self.data):
                raise ValueError("malformed sketch: truncated")
            byte = self.data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if (byte == 0 and shift) or value > _U64:
                    raise ValueError("malformed sketch: malformed varint")
                return value
        raise ValueError("malformed sketch: malformed varint")


def _check_accuracy(alpha: float) -> None:
    if not MIN_RELATIVE_ACCURACY <= alpha <= MAX_RELATIVE_ACCURACY:
        raise ValueError(
            f"relative_accuracy must be between {MIN_RELATIVE_ACCURACY!r} and "
            f"{MAX_RELATIVE_ACCURACY!r}, not {alpha!r}"
        )


class Sketch:
    """A DDSketch: quantiles within ``relative_accuracy`` of the truth, mergeable.

    See the module docstring for the mapping, the collapsing rule and the binary format.
    """

    __slots__ = (
        "_count",
        "_index_limit",
        "_ln_gamma",
        "_max",
        "_max_bins",
        "_min",
        "_multiplier",
        "_negative",
        "_positive",
        "_relative_accuracy",
        "_sum",
        "_zero_count",
    )

    def __init__(
        self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY, max_bins: int = DEFAULT_MAX_BINS
    ) -> None:
        alpha = _real(relative_accuracy)
        _check_accuracy(alpha)
        bins = operator.index(max_bins)
        if not 1 <= bins <= MAX_BINS:
            raise ValueError(f"max_bins must be between 1 and {MAX_BINS}, not {bins}")
        self._relative_accuracy = alpha
        self._max_bins = bins
        self._ln_gamma = math.log1p(2.0 * alpha / (1.0 - alpha))
        self._multiplier = 1.0 / self._ln_gamma
        self._index_limit = math.ceil(746.0 * self._multiplier)
        self._negative = _Store()
        self._positive = _Store()
        self._zero_count = 0
        self._count = 0
        self._sum = 0.0
        self._min = 0.0
        self._max = 0.0

    # --- adding ------------------------------------------------------------------------------

    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` ``count`` times (``count`` from 1; ``value`` finite)."""
        x = _real(value)
        n = operator.index(count)
        if x - x != 0.0:
            raise ValueError(f"value is {_not_finite(x)}: a sketch takes finite numbers only")
        if n < 1 or n > MAX_COUNT:
            raise ValueError(f"count must be between 1 and {MAX_COUNT}, not {n}")
        if self._count + n > MAX_COUNT:
            raise ValueError(f"a sketch holds at most {MAX_COUNT} values")
        self._sum += x * n
        self._insert(x, n)

    def add_many(self, values: Iterable[float]) -> None:
        """Count each of ``values`` once, in order; all or nothing.

        Raises:
            ValueError: at the first value that is NaN or infinite (nothing is added).
            TypeError: at the first value that is not a real number (nothing is added).
        """
        floats: list[float] = []
        for i, value in enumerate(values):
            x = value if type(value) is float else _real(value)
            if x - x != 0.0:
                raise ValueError(
                    f"values[{i}] is {_not_finite(x)}: a sketch takes finite numbers only"
                )
            floats.append(x)
        if self._count + len(floats) > MAX_COUNT:
            raise ValueError(f"a sketch holds at most {MAX_COUNT} values")
        total = self._sum
        for x in floats:
            total += x
            self._insert(x, 1)
        self._sum = total

    def _insert(self, x: float, n: int) -> None:
        if self._count == 0:
            self._min = self._max = x if x != 0.0 else 0.0
        elif x < self._min:
            self._min = x
        elif x > self._max:
            self._max = x
        self._count += n
        if x > 0.0:
            key = math.ceil(math.log(x) * self._multiplier)
            self._positive.add(key, n, self._max_bins)
        elif x < 0.0:
            key = math.ceil(math.log(-x) * self._multiplier)
            self._negative.add(-key, n, self._max_bins)
        else:
            self._zero_count += n

    def merge(self, other: Sketch) -> None:
        """Add everything ``other`` holds (``other`` is unchanged).

        Raises:
            ValueError: when the relative accuracies differ, or the count would pass
                ``MAX_COUNT``.
        """
        if not isinstance(other, Sketch):
            raise TypeError(f"can only merge a Sketch, not {type(other).__name__}")
        if other._relative_accuracy != self._relative_accuracy:
            raise ValueError(
                f"cannot merge sketches of different relative accuracy "
                f"({self._relative_accuracy!r} and {other._relative_accuracy!r})"
            )
        if other._count == 0:
            return
        if self._count + other._count > MAX_COUNT:
            raise ValueError(f"a sketch holds at most {MAX_COUNT} values")
        if self._count == 0:
            self._min, self._max = other._min, other._max
        else:
            self._min = min(self._min, other._min)
            self._max = max(self._max, other._max)
        self._count += other._count
        self._sum += other._sum
        self._zero_count += other._zero_count
        for mine, theirs in ((self._negative, other._negative), (self._positive, other._positive)):
            # Highest key first: the floor rises once, then every other key lands at once.
            for key, count in reversed(theirs.items()):
                mine.add(key, count, self._max_bins)

    # --- reading -----------------------------------------------------------------------------

    def quantile(self, q: float) -> float | None:
        """An estimate of the ``q``-quantile (``0 <= q <= 1``); ``None`` when empty.

        Raises:
            ValueError: when ``q`` is not between 0 and 1.
        """
        rank_fraction = _real(q)
        if not 0.0 <= rank_fraction <= 1.0:
            raise ValueError(f"q must be between 0 and 1, not {rank_fraction!r}")
        if self._count == 0:
            return None
        if rank_fraction == 0.0:
            return self._min
        if rank_fraction == 1.0:
            return self._max
        rank = math.floor(rank_fraction * (self._count - 1))
        seen = 0
        for key, count in self._negative.items():
            seen += count
            if seen > rank:
                return self._clamp(-self._bucket_value(-key))
        seen += self._zero_count
        if seen > rank:
            return self._clamp(0.0)
        for key, count in self._positive.items():
            seen += count
            if seen > rank:
                return self._clamp(self._bucket_value(key))
        return self._max  # unreachable: the counts add up to count

    def _bucket_value(self, key: int) -> float:
        try:
            return (1.0 - self._relative_accuracy) * math.exp(key * self._ln_gamma)
        except OverflowError:
            return math.inf

    def _clamp(self, value: float) -> float:
        return min(max(value, self._min), self._max)

    @property
    def relative_accuracy(self) -> float:
        """The relative accuracy ``alpha`` quantiles are guaranteed within."""
        return self._relative_accuracy

    @property
    def max_bins(self) -> int:
        """The most bins each store keeps before collapsing its lowest ones."""
        return self._max_bins

    @property
    def count(self) -> int:
        """How many values were added."""
        return self._count

    @property
    def sum(self) -> float:
        """Their float sum."""
        return self._sum

    @property
    def min(self) -> float | None:
        """The least value, exactly; ``None`` when empty."""
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        """The greatest value, exactly; ``None`` when empty."""
        return self._max if self._count else None

    @property
    def avg(self) -> float | None:
        """``sum / count``; ``None`` when empty."""
        return self._sum / self._count if self._count else None

    def __repr__(self) -> str:
        return (
            f"Sketch(relative_accuracy={self._relative_accuracy!r}, "
            f"max_bins={self._max_bins}, count={self._count})"
        )

    # --- bytes -------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The sketch in binary format version 1 (module docstring)."""
        out = bytearray(_MAGIC)
        out.append(FORMAT_VERSION)
        out += _HEADER.pack(self._relative_accuracy)
        _uvarint(out, self._max_bins)
        _uvarint(out, self._zero_count)
        if self._count:
            out += _STATS.pack(self._sum, self._min, self._max)
        else:
            out += _STATS.pack(0.0, 0.0, 0.0)
        _write_store(out, self._negative)
        _write_store(out, self._positive)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> Sketch:
        """Read a sketch that ``to_bytes`` wrote, validating every field.

        Raises:
            ValueError: ``"malformed sketch: ..."`` when ``data`` is not a valid sketch.
            TypeError: when ``data`` is not ``bytes``.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"from_bytes takes bytes, not {type(data).__name__}")
        reader = _Reader(data)
        if reader.take(2) != _MAGIC:
            raise ValueError("malformed sketch: not a sketch (bad magic)")
        version = reader.take(1)[0]
        if version != FORMAT_VERSION:
            raise ValueError(
                f"malformed sketch: unsupported version {version} "
                f"(this build reads version {FORMAT_VERSION})"
            )
        (alpha,) = _HEADER.unpack(reader.take(8))
        if not MIN_RELATIVE_ACCURACY <= alpha <= MAX_RELATIVE_ACCURACY:
            raise ValueError("malformed sketch: relative_accuracy out of range")
        max_bins = reader.uvarint()
        if not 1 <= max_bins <= MAX_BINS:
            raise ValueError("malformed sketch: max_bins out of range")
        sketch = cls(alpha, max_bins)
        total = sketch._zero_count = reader.uvarint()
        if total > MAX_COUNT:
            raise ValueError("malformed sketch: count too large")
        total_sum, low, high = _STATS.unpack(reader.take(24))
        limit = sketch._index_limit
        for store in (sketch._negative, sketch._positive):
            n = reader.uvarint()
            if n > max_bins:
                raise ValueError("malformed sketch: more bins than max_bins")
            first = previous = 0
            for i in range(n):
                if i == 0:
                    z = reader.uvarint()
                    key = (z >> 1) ^ -(z & 1)
                    if not -limit <= key <= limit:
                        raise ValueError("malformed sketch: bin key out of range")
                    first = key
                else:
                    key = previous + 1 + reader.uvarint()
                    if key - first >= max_bins:
                        raise ValueError("malformed sketch: bins span more than max_bins")
                    if key > limit:
                        raise ValueError("malformed sketch: bin key out of range")
                count = reader.uvarint()
                if count == 0:
                    raise ValueError("malformed sketch: empty bin")
                total += count
                if total > MAX_COUNT:
                    raise ValueError("malformed sketch: count too large")
                store.bins[key] = count
                previous = key
            if n:
                store.lo, store.hi = first, previous
        if reader.position != len(data):
            raise ValueError("malformed sketch: trailing bytes")
        _check_statistics(sketch, total, total_sum, low, high)
        sketch._count = total
        sketch._sum, sketch._min, sketch._max = total_sum, low, high
        return sketch


def _check_statistics(sketch: Sketch, count: int, total: float, low: float, high: float) -> None:
    if count == 0:
        if _STATS.pack(total, low, high) != bytes(24):
            raise ValueError("malformed sketch: an empty sketch with a sum, min or max")
        return
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError("malformed sketch: min and max are not finite and ordered")
    negatives, zeros, positives = (
        bool(sketch._negative.bins),
        sketch._zero_count > 0,
        bool(sketch._positive.bins),
    )
    if (
        negatives != (low < 0.0)
        or positives != (high > 0.0)
        or (zeros and not low <= 0.0 <= high)
        or (not zeros and (low == 0.0 or high == 0.0))
    ):
        raise ValueError("malformed sketch: min and max disagree with the bins")
