"""Quantile sketches (DDSketch): the compiled and the reference implementation, same cases.

Every test taking ``core`` runs twice (see conftest.py). Exact percentiles are computed here
by sorting; the byte format is read back by a small independent parser (``parse``) written
from the specification in ``core_ext/reference/sketch.py``.
"""

from __future__ import annotations

import math
import random
import struct
from array import array
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core_ext.compiled
import core_ext.reference

MAX_COUNT = (1 << 63) - 1
QUANTILES = (0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
IMPLEMENTATIONS = (core_ext.compiled, core_ext.reference)
MULTIPLIER = 1.0 / math.log1p(2.0 * 0.01 / (1.0 - 0.01))  # 1 / ln gamma at 1%

fuzz_settings = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


# --- helpers -------------------------------------------------------------------------------


def exact_quantile(ordered: list[float], q: float) -> float:
    """The element of rank floor(q * (n - 1)), the quantile a sketch estimates."""
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_within(sketch: Any, values: list[float], alpha: float) -> None:
    ordered = sorted(values)
    for q in QUANTILES:
        true, estimate = exact_quantile(ordered, q), sketch.quantile(q)
        assert abs(estimate - true) <= alpha * abs(true) * (1 + 1e-9) + 1e-300, (q, true, estimate)


def sequential_sum(values: list[float]) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


def sketch_of(core: ModuleType, values: list[float], alpha: float = 0.01, bins: int = 2048) -> Any:
    sketch = core.Sketch(alpha, bins)
    sketch.add_many(values)
    return sketch


def bits(value: float | None) -> bytes | None:
    return None if value is None else struct.pack("<d", value)


def observed(sketch: Any) -> tuple[object, ...]:
    """Everything a sketch reports, floats as bits: equal tuples mean identical sketches."""
    return (
        sketch.to_bytes(),
        sketch.count,
        bits(sketch.sum),
        bits(sketch.min),
        bits(sketch.max),
        bits(sketch.avg),
        tuple(bits(sketch.quantile(q)) for q in QUANTILES),
    )


def uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def zigzag(key: int) -> int:
    return (key << 1) ^ -1 if key < 0 else key << 1


def encode(
    *,
    alpha: float = 0.01,
    max_bins: int = 2048,
    zeros: int = 0,
    stats: tuple[float, float, float] = (0.0, 0.0, 0.0),
    negative: list[tuple[int, int]] | None = None,
    positive: list[tuple[int, int]] | None = None,
    version: int = 1,
) -> bytes:
    """A sketch in format version 1, written from the specification (valid or not)."""
    out = b"DS" + bytes([version]) + struct.pack("<d", alpha) + uvarint(max_bins)
    out += uvarint(zeros) + struct.pack("<ddd", *stats)
    for store in (negative or [], positive or []):
        out += uvarint(len(store))
        previous = None
        for key, count in store:
            out += uvarint(zigzag(key) if previous is None else key - previous - 1)
            out += uvarint(count)
            previous = key
    return out


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def double(self) -> float:
        (value,) = struct.unpack_from("<d", self.data, self.at)
        self.at += 8
        return float(value)


def parse(data: bytes) -> dict[str, Any]:
    """The fields of a version 1 sketch (no validation: the implementations do that)."""
    assert data[:3] == b"DS\x01"
    cursor = _Cursor(data)
    cursor.at = 3
    fields: dict[str, Any] = {"alpha": cursor.double(), "max_bins": cursor.varint()}
    fields["zeros"] = cursor.varint()
    fields["sum"], fields["min"], fields["max"] = (cursor.double() for _ in range(3))
    for name in ("negative", "positive"):
        bins: list[tuple[int, int]] = []
        for i in range(cursor.varint()):
            raw = cursor.varint()
            key = (raw >> 1) ^ -(raw & 1) if i == 0 else bins[-1][0] + 1 + raw
            bins.append((key, cursor.varint()))
        fields[name] = bins
    assert cursor.at == len(data)
    return fields


def distributions() -> Iterator[tuple[str, list[float]]]:
    rng = random.Random(15)
    yield "uniform", [rng.uniform(0, 100) for _ in range(20_000)]
    yield "lognormal", [rng.lognormvariate(0, 2.5) for _ in range(20_000)]
    yield (
        "bimodal",
        [rng.gauss(5, 1) if rng.random() < 0.7 else rng.gauss(500, 50) for _ in range(20_000)],
    )
    yield "constant", [42.5] * 5_000
    yield (
        "zeros-and-negatives",
        [
            rng.choice((0.0, -0.0, rng.uniform(-1e4, -1e-3), rng.expovariate(0.01)))
            for _ in range(20_000)
        ],
    )
    yield "wide-range", [rng.choice((-1, 1)) * 10 ** rng.uniform(-12, 12) for _ in range(5_000)]
    yield "one-value", [-3.0]


DISTRIBUTIONS = dict(distributions())


def dyadic_values(rng: random.Random, n: int) -> list[float]:
    """Multiples of 1/64 below 2^20: every float sum of a few thousand is exact."""
    return [rng.randrange(-(1 << 26), 1 << 26) / 64 for _ in range(n)]


# --- empty sketches, defaults, the format by hand --------------------------------------------


def test_an_empty_sketch_has_no_quantiles(core: ModuleType) -> None:
    sketch = core.Sketch()
    assert (sketch.relative_accuracy, sketch.max_bins) == (0.01, 2048)
    assert (sketch.count, sketch.sum, sketch.min, sketch.max, sketch.avg) == (
        0,
        0.0,
        None,
        None,
        None,
    )
    assert sketch.quantile(0.5) is None
    assert sketch.to_bytes() == encode()
    assert repr(sketch) == "Sketch(relative_accuracy=0.01, max_bins=2048, count=0)"


def test_bytes_follow_the_documented_layout(core: ModuleType) -> None:
    """1.0 has key 0, 2.0 key ceil(ln 2 / ln gamma) = 35, -1.0 negative key 0, 0.0 a zero."""
    sketch = core.Sketch(0.01, 64)
    sketch.add_many([1.0, 0.0, -1.0, 2.0])
    expected = encode(
        max_bins=64,
        zeros=1,
        stats=(2.0, -1.0, 2.0),
        negative=[(0, 1)],
        positive=[(0, 1), (35, 1)],
    )
    assert expected.hex() == (
        "445301" "7b14ae47e17a843f" "40" "01"
        "0000000000000040" "000000000000f0bf" "0000000000000040"
        "01" "00" "01"
        "02" "00" "01" "22" "01"
    )  # fmt: skip
    assert sketch.to_bytes() == expected


# --- exact statistics and accuracy ---------------------------------------------------------


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_count_sum_min_max_are_exact(core: ModuleType, name: str) -> None:
    values = DISTRIBUTIONS[name]
    sketch = sketch_of(core, values)
    assert sketch.count == len(values)
    assert sketch.sum == sequential_sum(values)
    assert sketch.min == min(values)
    assert sketch.max == max(values)
    assert sketch.avg == sequential_sum(values) / len(values)


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05])
@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_quantiles_are_within_the_relative_accuracy(
    core: ModuleType, name: str, alpha: float
) -> None:
    values = DISTRIBUTIONS[name]
    # Bins enough that nothing collapses (collapsing has its own tests below).
    assert_within(sketch_of(core, values, alpha, bins=65536), values, alpha)


def test_quantile_zero_and_one_are_min_and_max_exactly(core: ModuleType) -> None:
    values = DISTRIBUTIONS["lognormal"]
    sketch = sketch_of(core, values)
    assert (sketch.quantile(0), sketch.quantile(1)) == (min(values), max(values))


def test_zeros_are_reported_as_zero(core: ModuleType) -> None:
    sketch = sketch_of(core, [-0.0, 0.0, 0.0, 5.0])
    assert sketch.quantile(0.5) == 0.0
    assert sketch.min == 0.0
    assert math.copysign(1.0, sketch.min) == 1.0  # -0.0 is counted as 0.0


def test_add_with_a_count_equals_repeated_adds(core: ModuleType) -> None:
    one, many = core.Sketch(), core.Sketch()
    for value, count in [(1.5, 3), (-2.25, 2), (0.0, 4), (1e6, 1)]:
        one.add(value, count)
        for _ in range(count):
            many.add(value)
    assert observed(one) == observed(many)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(list, id="list"),
        pytest.param(tuple, id="tuple"),
        pytest.param(lambda v: array("d", v), id="array-d"),
        pytest.param(lambda v: memoryview(array("d", v)), id="memoryview"),
        pytest.param(
            lambda v: memoryview(array("d", [x for x in v for _ in (0, 1)]))[::2], id="strided"
        ),
        pytest.param(lambda v: (x for x in v), id="generator"),
        pytest.param(lambda v: array("f", v), id="array-f32"),
    ],
)
def test_add_many_takes_any_iterable_of_floats(
    core: ModuleType, wrap: Callable[[list[float]], Any]
) -> None:
    values = [0.5, -0.25, 0.0, 3.0, 0.125, 7.75]  # exact in float32 too
    expected = sketch_of(core, values)
    sketch = core.Sketch()
    sketch.add_many(wrap(values))
    assert observed(sketch) == observed(expected)


def test_add_many_takes_ints(core: ModuleType) -> None:
    sketch = core.Sketch()
    sketch.add_many([1, 2, True, 3.5])
    assert observed(sketch) == observed(sketch_of(core, [1.0, 2.0, 1.0, 3.5]))


# --- refusals of add, quantile, construction ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_non_finite_values_are_refused_and_nothing_is_added(
    core: ModuleType, value: float, name: str
) -> None:
    sketch = sketch_of(core, [1.0, 2.0])
    before = observed(sketch)
    with pytest.raises(ValueError, match=rf"^value is {name}: a sketch takes finite numbers only$"):
        sketch.add(value)
    with pytest.raises(ValueError, match=rf"^values\[2\] is {name}: a sketch takes finite"):
        sketch.add_many([3.0, 4.0, value, 5.0])
    with pytest.raises(ValueError, match=rf"^values\[1\] is {name}: "):
        sketch.add_many(array("d", [3.0, value]))
    assert observed(sketch) == before


@pytest.mark.parametrize("values", [["1.5"], [1.0, None], [b"x"]])
def test_non_numbers_are_a_type_error_and_nothing_is_added(
    core: ModuleType, values: list[object]
) -> None:
    sketch = sketch_of(core, [1.0])
    before = observed(sketch)
    with pytest.raises(TypeError):
        sketch.add_many(values)
    with pytest.raises(TypeError):
        sketch.add(values[-1])
    assert observed(sketch) == before


@pytest.mark.parametrize("count", [0, -1, MAX_COUNT + 1, 1 << 70])
def test_counts_out_of_range_are_refused(core: ModuleType, count: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^count must be between 1 and {MAX_COUNT}, not {count}$"
    ):
        core.Sketch().add(1.0, count)
    with pytest.raises(TypeError):
        core.Sketch().add(1.0, 2.0)


def test_a_sketch_holds_at_most_2_63_minus_1_values(core: ModuleType) -> None:
    sketch = core.Sketch()
    sketch.add(1.0, MAX_COUNT)
    before = observed(sketch)
    message = rf"^a sketch holds at most {MAX_COUNT} values$"
    with pytest.raises(ValueError, match=message):
        sketch.add(1.0)
    with pytest.raises(ValueError, match=message):
        sketch.add_many([1.0])
    with pytest.raises(ValueError, match=message):
        sketch.merge(sketch_of(core, [2.0]))
    assert observed(sketch) == before
    sketch.add_many([])
    assert sketch.count == MAX_COUNT


@pytest.mark.parametrize("q", [-0.1, 1.0000001, math.nan, -math.inf])
def test_quantile_out_of_range_is_refused(core: ModuleType, q: float) -> None:
    with pytest.raises(ValueError, match=rf"^q must be between 0 and 1, not {q!r}$"):
        sketch_of(core, [1.0]).quantile(q)


@pytest.mark.parametrize("alpha", [0.0, 9e-7, 0.51, 1.0, -0.01, math.nan])
def test_relative_accuracy_out_of_range_is_refused(core: ModuleType, alpha: float) -> None:
    with pytest.raises(
        ValueError, match=rf"^relative_accuracy must be between 1e-06 and 0.5, not {alpha!r}$"
    ):
        core.Sketch(alpha)


@pytest.mark.parametrize("max_bins", [0, -5, 65537, 1 << 64])
def test_max_bins_out_of_range_is_refused(core: ModuleType, max_bins: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^max_bins must be between 1 and 65536, not {max_bins}$"
    ):
        core.Sketch(0.01, max_bins)
    with pytest.raises(TypeError):
        core.Sketch(0.01, 8.0)


# --- merging -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_merged_sketches_equal_the_sketch_of_the_concatenation(core: ModuleType, name: str) -> None:
    values = DISTRIBUTIONS[name]
    parts = [values[i : i + 997] for i in range(0, len(values), 997)]
    merged = core.Sketch()
    for part in parts:
        merged.merge(sketch_of(core, part))
    whole = sketch_of(core, values)
    assert merged.to_bytes()[:11] == whole.to_bytes()[:11]
    assert parse(merged.to_bytes()) | {"sum": 0} == parse(whole.to_bytes()) | {"sum": 0}
    assert [merged.quantile(q) for q in QUANTILES] == [whole.quantile(q) for q in QUANTILES]
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.sum == pytest.approx(whole.sum, rel=1e-9, abs=1e-6)


def test_merge_with_exact_sums_gives_identical_bytes(core: ModuleType) -> None:
    rng = random.Random(3)
    values = dyadic_values(rng, 5000)
    merged = core.Sketch()
    for i in range(0, len(values), 500):
        merged.merge(sketch_of(core, values[i : i + 500]))
    assert merged.to_bytes() == sketch_of(core, values).to_bytes()


@fuzz_settings
@given(
    parts=st.lists(
        st.lists(st.integers(-(1 << 20), 1 << 20).map(lambda k: k / 8), max_size=40),
        min_size=3,
        max_size=3,
    ),
    max_bins=st.integers(1, 64),
    order=st.permutations([0, 1, 2]),
)
def test_merge_is_associative_and_commutative_on_bytes(
    core: ModuleType, parts: list[list[float]], max_bins: int, order: list[int]
) -> None:
    a, b, c = (sketch_of(core, part, bins=max_bins) for part in parts)
    left = core.Sketch.from_bytes(a.to_bytes())
    left.merge(b)
    left.merge(c)  # (a + b) + c
    bc = core.Sketch.from_bytes(b.to_bytes())
    bc.merge(c)
    right = core.Sketch.from_bytes(a.to_bytes())
    right.merge(bc)  # a + (b + c)
    shuffled = core.Sketch(0.01, max_bins)
    for i in order:
        shuffled.merge((a, b, c)[i])
    whole = sketch_of(core, [v for part in parts for v in part], bins=max_bins)
    assert left.to_bytes() == right.to_bytes() == shuffled.to_bytes() == whole.to_bytes()


def test_merging_a_sketch_into_itself_doubles_it(core: ModuleType) -> None:
    values = [1.0, 2.5, -4.0, 0.0]
    sketch = sketch_of(core, values)
    sketch.merge(sketch)
    assert observed(sketch) == observed(sketch_of(core, values + values))


def test_merge_needs_the_same_relative_accuracy(core: ModuleType) -> None:
    sketch = sketch_of(core, [1.0])
    before = observed(sketch)
    with pytest.raises(
        ValueError,
        match=r"^cannot merge sketches of different relative accuracy \(0.01 and 0.02\)$",
    ):
        sketch.merge(sketch_of(core, [2.0], alpha=0.02))
    with pytest.raises(TypeError):
        sketch.merge(b"not a sketch")
    assert observed(sketch) == before


def test_merge_of_an_empty_sketch_changes_nothing(core: ModuleType) -> None:
    sketch = sketch_of(core, [1.0, 2.0])
    before = observed(sketch)
    sketch.merge(core.Sketch())
    assert observed(sketch) == before
    empty = core.Sketch()
    empty.merge(sketch)
    assert observed(empty) == before


# --- collapsing ----------------------------------------------------------------------------


def test_each_store_keeps_at_most_max_bins_collapsing_the_lowest_values(core: ModuleType) -> None:
    values = [1.1**k for k in range(200)]  # positive keys 0..~959 at 1%
    negatives = [-v for v in values]
    sketch = sketch_of(core, values + negatives, bins=16)
    fields = parse(sketch.to_bytes())
    for store in (fields["positive"], fields["negative"]):
        assert len(store) <= 16
        assert store[-1][0] - store[0][0] < 16
    # Positive store: the smallest values went to the lowest kept key; the top stays.
    positive_top = fields["positive"][-1][0]
    assert fields["positive"][0][0] == positive_top - 15
    # Negative store: the most negative values (lowest keys) collapsed, near zero intact.
    assert fields["negative"][-1][0] == 0
    assert sum(count for _, count in fields["positive"]) == 200
    assert (sketch.count, sketch.min, sketch.max) == (400, min(negatives), max(values))


def test_quantiles_above_the_collapsed_range_keep_their_accuracy(core: ModuleType) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(0, 3) for _ in range(10_000)]
    sketch = sketch_of(core, values, bins=64)  # about a ratio of 3.6 kept at the top
    ordered = sorted(values)
    top_kept = parse(sketch.to_bytes())["positive"][0][0]
    floor_value = math.exp(top_kept / MULTIPLIER)
    for q in QUANTILES:
        true, estimate = exact_quantile(ordered, q), sketch.quantile(q)
        if true > floor_value:
            assert abs(estimate - true) <= 0.01 * true * (1 + 1e-9)
        else:  # collapsed (over-estimated) or in the lowest kept bucket
            assert true * 0.99 * (1 - 1e-9) <= estimate <= floor_value


def test_collapsing_does_not_depend_on_insertion_order(core: ModuleType) -> None:
    values = [float(k) for k in range(1, 3000)]
    ascending = sketch_of(core, values, bins=32)
    descending = sketch_of(core, values[::-1], bins=32)
    shuffled = values[:]
    random.Random(1).shuffle(shuffled)
    one_by_one = core.Sketch(0.01, 32)
    for value in shuffled:
        one_by_one.add(value)
    assert ascending.to_bytes() == descending.to_bytes() == one_by_one.to_bytes()


# --- bytes: round trip and hostile input ---------------------------------------------------


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_bytes_round_trip(core: ModuleType, name: str) -> None:
    values = DISTRIBUTIONS[name]
    sketch = sketch_of(core, values, bins=128)
    copy = core.Sketch.from_bytes(sketch.to_bytes())
    assert observed(copy) == observed(sketch)
    assert (copy.relative_accuracy, copy.max_bins) == (0.01, 128)
    # The copy goes on exactly as the original would.
    for s in (copy, sketch):
        s.add_many(values[:100])
    assert observed(copy) == observed(sketch)


def valid() -> bytes:
    return encode(
        max_bins=64, zeros=1, stats=(2.0, -1.0, 2.0), negative=[(0, 1)], positive=[(0, 1), (35, 1)]
    )


HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty input": (b"", "truncated"),
    "bad magic": (b"XS" + valid()[2:], r"not a sketch \(bad magic\)"),
    "version 0": (encode(version=0), r"unsupported version 0 \(this build reads version 1\)"),
    "version 2": (encode(version=2), r"unsupported version 2 \(this build reads version 1\)"),
    "accuracy zero": (encode(alpha=0.0), "relative_accuracy out of range"),
    "accuracy nan": (encode(alpha=math.nan), "relative_accuracy out of range"),
    "accuracy one": (encode(alpha=1.0), "relative_accuracy out of range"),
    "max_bins zero": (encode(max_bins=0), "max_bins out of range"),
    "max_bins huge": (encode(max_bins=1 << 40), "max_bins out of range"),
    "varint of 11 bytes": (valid()[:11] + b"\xff" * 10 + b"\x01", "malformed varint"),
    "varint past 2^64": (valid()[:11] + b"\xff" * 9 + b"\x02", "malformed varint"),
    "non-minimal varint": (valid()[:11] + b"\x88\x00", "malformed varint"),
    "zero count too large": (encode(zeros=1 << 63, stats=(0.0, 0.0, 0.0)), "count too large"),
    "2^64-1 bins claimed": (
        encode(max_bins=8)[:-2] + uvarint((1 << 64) - 1),
        "more bins than max_bins",
    ),
    "more bins than max_bins": (
        encode(max_bins=2, stats=(3.0, 1.0, 2.0), positive=[(0, 1), (1, 1), (2, 1)]),
        "more bins than max_bins",
    ),
    "absurd first key": (
        encode(stats=(1.0, 1.0, 1.0), positive=[(1 << 62, 1)]),
        "bin key out of range",
    ),
    "key past the largest double": (
        encode(stats=(1.0, 1.0, 1.0), positive=[(math.ceil(746.0 * MULTIPLIER) + 1, 1)]),
        "bin key out of range",
    ),
    "absurd key delta": (
        encode(stats=(2.0, 1.0, 1.0), positive=[(0, 1), (1 << 62, 1)]),
        "bins span more than max_bins",
    ),
    "span of max_bins": (
        encode(max_bins=4, stats=(2.0, 1.0, 1.0), positive=[(0, 1), (4, 1)]),
        "bins span more than max_bins",
    ),
    "empty bin": (encode(stats=(1.0, 1.0, 1.0), positive=[(0, 0)]), "empty bin"),
    "counts past 2^63-1": (
        encode(stats=(1.0, 1.0, 2.0), positive=[(0, 1 << 62), (35, 1 << 62)]),
        "count too large",
    ),
    "trailing byte": (valid() + b"\x00", "trailing bytes"),
    "empty with a sum": (encode(stats=(1.0, 0.0, 0.0)), "an empty sketch with a sum, min or max"),
    "empty with -0.0": (encode(stats=(-0.0, 0.0, 0.0)), "an empty sketch with a sum, min or max"),
    "min above max": (
        encode(stats=(3.0, 2.0, 1.0), positive=[(0, 1), (35, 1)]),
        "min and max are not finite and ordered",
    ),
    "nan min": (
        encode(stats=(3.0, math.nan, 2.0), positive=[(0, 1), (35, 1)]),
        "min and max are not finite and ordered",
    ),
    "positive bins, max zero": (
        encode(zeros=1, stats=(1.0, 0.0, 0.0), positive=[(0, 1)]),
        "min and max disagree with the bins",
    ),
    "negative min, no negative bins": (
        encode(stats=(1.0, -1.0, 1.0), positive=[(0, 2)]),
        "min and max disagree with the bins",
    ),
    "min zero without zeros": (
        encode(stats=(1.0, 0.0, 1.0), positive=[(0, 2)]),
        "min and max disagree with the bins",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_malformed_bytes_are_refused(core: ModuleType, case: str) -> None:
    data, message = HOSTILE[case]
    with pytest.raises(ValueError, match=rf"^malformed sketch: {message}$"):
        core.Sketch.from_bytes(data)


def test_every_truncation_is_refused(core: ModuleType) -> None:
    data = sketch_of(core, DISTRIBUTIONS["zeros-and-negatives"][:500]).to_bytes()
    for end in range(len(data)):
        with pytest.raises(ValueError, match=r"^malformed sketch: truncated$"):
            core.Sketch.from_bytes(data[:end])


def test_from_bytes_takes_bytes_only(core: ModuleType) -> None:
    with pytest.raises(TypeError):
        core.Sketch.from_bytes(bytearray(valid()))
    assert core.Sketch.from_bytes(valid()).to_bytes() == valid()


# --- compiled and reference: the same quantiles, bytes and errors --------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
spread = st.one_of(
    finite,
    st.floats(-1e6, 1e6),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, 1.0, 100.0]),
)
accuracies = st.sampled_from([1e-6, 0.001, 0.01, 0.1, 0.5])


def outcome(fn: Callable[..., tuple[object, ...]], *args: Any) -> tuple[object, ...]:
    """What ``fn(*args)`` gives: its result, or the error's type name and message."""
    try:
        return fn(*args)
    except (ValueError, TypeError) as error:
        return (type(error).__name__, str(error))


def decoded(core: ModuleType, data: bytes) -> tuple[object, ...]:
    return observed(core.Sketch.from_bytes(data))


def called(core: ModuleType, call: Callable[[Any], object]) -> tuple[object, ...]:
    call(sketch_of(core, [1.0]))
    return ("no error",)


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(st.lists(spread, max_size=30), max_size=4),
    alpha=accuracies,
    max_bins=st.integers(1, 40),
)
def test_compiled_and_reference_agree_bit_for_bit(
    batches: list[list[float]], alpha: float, max_bins: int
) -> None:
    results = []
    for core in IMPLEMENTATIONS:
        sketch = core.Sketch(alpha, max_bins)
        for i, batch in enumerate(batches):
            if i % 2:
                for value in batch:
                    sketch.add(value, 1 + i)
            else:
                sketch.add_many(batch)
        merged = core.Sketch.from_bytes(sketch.to_bytes())
        merged.merge(sketch)
        results.append((observed(sketch), observed(merged)))
    assert results[0] == results[1]


def mutations(data: bytes, rng: random.Random) -> Iterator[bytes]:
    for _ in range(40):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            kind = rng.randrange(3)
            at = rng.randrange(len(mutated) + 1)
            if kind == 0 and at < len(mutated):
                mutated[at] = rng.randrange(256)
            elif kind == 1:
                mutated[at:at] = bytes([rng.randrange(256)])
            else:
                del mutated[at : at + rng.randint(1, 3)]
        yield bytes(mutated)


@fuzz_settings
@given(
    values=st.lists(spread, max_size=20),
    max_bins=st.integers(1, 12),
    seed=st.integers(0, 1 << 32),
)
def test_both_refuse_or_accept_the_same_mutated_bytes(
    values: list[float], max_bins: int, seed: int
) -> None:
    data = sketch_of(core_ext.reference, values, bins=max_bins).to_bytes()
    for mutated in mutations(data, random.Random(seed)):
        answers = [outcome(decoded, core, mutated) for core in IMPLEMENTATIONS]
        assert answers[0] == answers[1]
        if answers[0][0] != "ValueError":  # accepted: the encoding is canonical
            assert answers[0][0] == mutated


@fuzz_settings
@given(data=st.binary(max_size=80))
def test_both_refuse_the_same_random_bytes(data: bytes) -> None:
    answers = [outcome(decoded, core, b"DS\x01" + data) for core in IMPLEMENTATIONS]
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.add(math.nan), id="add-nan"),
        pytest.param(lambda s: s.add(1.0, 0), id="add-count-0"),
        pytest.param(lambda s: s.add_many([1.0, math.inf]), id="add_many-inf"),
        pytest.param(lambda s: s.quantile(2.0), id="quantile-2"),
        pytest.param(lambda s: s.merge(s.__class__(0.5)), id="merge-accuracy"),
    ],
)
def test_both_give_the_same_error_messages(call: Callable[[Any], object]) -> None:
    messages = [outcome(called, core, call) for core in IMPLEMENTATIONS]
    assert messages[0] == messages[1]
    assert messages[0][0] == "ValueError"
