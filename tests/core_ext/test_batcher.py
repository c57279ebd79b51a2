"""HeartbeatBatcher: every behavioural case runs on the compiled and the reference class.

The classes are imported directly (not through ``core_ext.compiled``) so these tests do not
depend on the Rust identity module; a missing Cython build fails collection loudly.
"""

from __future__ import annotations

import copy
import math
import pickle
import sys
from typing import Any, TypeAlias

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core_ext._batcher import HeartbeatBatcher as CompiledBatcher
from core_ext.reference.batcher import HeartbeatBatcher as ReferenceBatcher

Batcher: TypeAlias = CompiledBatcher | ReferenceBatcher
BatcherClass: TypeAlias = type[CompiledBatcher] | type[ReferenceBatcher]

NAN = math.nan
INF = math.inf


@pytest.fixture(params=[CompiledBatcher, ReferenceBatcher], ids=["compiled", "reference"])
def batcher_cls(request: pytest.FixtureRequest) -> BatcherClass:
    cls: BatcherClass = request.param
    return cls


@pytest.fixture
def batcher(batcher_cls: BatcherClass) -> Batcher:
    return batcher_cls()


def beat(
    batcher: Batcher,
    device_id: Any = "dev-1",
    *,
    seen_at: Any = 1.0,
    state: Any = 1,
    cpu_percent: Any = 10.0,
    memory_percent: Any = 20.0,
    disk_percent: Any = 30.0,
    uptime_seconds: Any = 100,
) -> bool:
    """One ``add`` with plausible defaults, passed by keyword."""
    return batcher.add(
        device_id=device_id,
        seen_at=seen_at,
        state=state,
        cpu_percent=cpu_percent,
        memory_percent=memory_percent,
        disk_percent=disk_percent,
        uptime_seconds=uptime_seconds,
    )


def drained_ids(batcher: Batcher) -> list[str]:
    records, _ = batcher.drain()
    return [record[0] for record in records]


# --- construction -------------------------------------------------------------------------


def test_max_pending_defaults_to_65536(batcher: Batcher) -> None:
    assert batcher.max_pending == 65536


def test_max_pending_is_kept(batcher_cls: BatcherClass) -> None:
    assert batcher_cls(max_pending=7).max_pending == 7


@pytest.mark.parametrize("max_pending", [0, -1, -(2**70), 2**63])
def test_max_pending_out_of_range_is_refused(batcher_cls: BatcherClass, max_pending: int) -> None:
    with pytest.raises(ValueError, match="max_pending"):
        batcher_cls(max_pending)


@pytest.mark.parametrize("max_pending", [1.5, 2.0, "3", None])
def test_non_integer_max_pending_is_refused(batcher_cls: BatcherClass, max_pending: Any) -> None:
    with pytest.raises(TypeError):
        batcher_cls(max_pending)


def test_new_batcher_is_empty(batcher: Batcher) -> None:
    assert len(batcher) == 0
    assert batcher.added == 0
    assert batcher.drain() == ([], [])


# --- coalescing ---------------------------------------------------------------------------


def test_single_heartbeat_drains_as_one_record_counted_once(batcher: Batcher) -> None:
    batcher.add("dev-1", 5.0, 2, 11.5, 22.5, 33.5, 3600)
    records, _ = batcher.drain()
    assert records == [("dev-1", 5.0, 2, 11.5, 22.5, 33.5, 3600, 1)]


def test_later_seen_at_wins_when_heartbeats_coalesce(batcher: Batcher) -> None:
    batcher.add("dev-1", 1.0, 1, 10.0, 20.0, 30.0, 100)
    batcher.add("dev-1", 2.0, 3, 11.0, 21.0, 31.0, 101)
    records, _ = batcher.drain()
    assert records == [("dev-1", 2.0, 3, 11.0, 21.0, 31.0, 101, 2)]


def test_earlier_seen_at_is_counted_but_does_not_overwrite(batcher: Batcher) -> None:
    batcher.add("dev-1", 2.0, 3, 11.0, 21.0, 31.0, 101)
    batcher.add("dev-1", 1.0, 1, 10.0, 20.0, 30.0, 100)
    records, _ = batcher.drain()
    assert records == [("dev-1", 2.0, 3, 11.0, 21.0, 31.0, 101, 2)]


def test_later_call_wins_on_equal_seen_at(batcher: Batcher) -> None:
    batcher.add("dev-1", 2.0, 1, 10.0, 20.0, 30.0, 100)
    batcher.add("dev-1", 2.0, 4, 12.0, 22.0, 32.0, 102)
    records, _ = batcher.drain()
    assert records == [("dev-1", 2.0, 4, 12.0, 22.0, 32.0, 102, 2)]


def test_count_covers_every_coalesced_heartbeat(batcher: Batcher) -> None:
    for seen_at in [3.0, 1.0, 5.0, 2.0, 4.0]:
        beat(batcher, "dev-1", seen_at=seen_at, uptime_seconds=int(seen_at))
    beat(batcher, "dev-2")
    records, _ = batcher.drain()
    assert [(r[0], r[1], r[6], r[7]) for r in records] == [
        ("dev-1", 5.0, 5, 5),
        ("dev-2", 1.0, 100, 1),
    ]


def test_len_counts_distinct_pending_devices(batcher: Batcher) -> None:
    for device_id in ["a", "b", "a", "c", "b", "a"]:
        beat(batcher, device_id)
    assert len(batcher) == 3


def test_added_counts_every_accepted_heartbeat_across_drains(batcher: Batcher) -> None:
    for device_id in ["a", "b", "a"]:
        beat(batcher, device_id)
    batcher.drain()
    beat(batcher, "a")
    assert batcher.added == 4
    assert len(batcher) == 1


def test_records_follow_first_arrival_since_last_drain(batcher: Batcher) -> None:
    for device_id in ["b", "a", "c", "b", "a"]:
        beat(batcher, device_id)
    assert drained_ids(batcher) == ["b", "a", "c"]
    for device_id in ["c", "b"]:
        beat(batcher, device_id)
    assert drained_ids(batcher) == ["c", "b"]


def test_drain_empties_the_buffer(batcher: Batcher) -> None:
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.drain()
    assert len(batcher) == 0
    assert batcher.drain() == ([], [])


def test_coalescing_restarts_after_drain(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=9.0, state=2)
    batcher.drain()
    beat(batcher, "a", seen_at=1.0, state=3)
    records, _ = batcher.drain()
    assert [(r[1], r[2], r[7]) for r in records] == [(1.0, 3, 1)]


def test_integer_values_are_stored_as_float(batcher: Batcher) -> None:
    batcher.add("dev-1", 7, 1, 50, 60, 70, 1)
    records, _ = batcher.drain()
    assert records == [("dev-1", 7.0, 1, 50.0, 60.0, 70.0, 1, 1)]
    assert all(type(value) is float for value in (records[0][1], *records[0][3:6]))


def test_bool_and_index_integers_are_stored_as_int(batcher: Batcher) -> None:
    class Code:
        def __index__(self) -> int:
            return 4

    state: Any = Code()
    batcher.add("dev-1", 1.0, state, 1.0, 1.0, 1.0, True)
    records, _ = batcher.drain()
    assert records == [("dev-1", 1.0, 4, 1.0, 1.0, 1.0, 1, 1)]
    assert type(records[0][2]) is int
    assert type(records[0][6]) is int


def test_percentages_are_passed_through_unclamped(batcher: Batcher) -> None:
    batcher.add("dev-1", 1.0, 1, 250.0, -3.5, 1e300, 0)
    records, _ = batcher.drain()
    assert records == [("dev-1", 1.0, 1, 250.0, -3.5, 1e300, 0, 1)]


def test_extreme_valid_values_round_trip(batcher: Batcher) -> None:
    huge = sys.float_info.max
    batcher.add("d" * 10_000, -huge, 2**31 - 1, huge, -0.0, 5e-324, 2**63 - 1)
    records, _ = batcher.drain()
    assert records == [("d" * 10_000, -huge, 2**31 - 1, huge, -0.0, 5e-324, 2**63 - 1, 1)]
    assert math.copysign(1.0, records[0][4]) == -1.0


# --- transitions --------------------------------------------------------------------------


def test_first_drain_reports_transition_from_minus_one(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=0)
    _, transitions = batcher.drain()
    assert transitions == [("dev-1", -1, 0)]


def test_transition_detected_against_last_drained_state(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=1)
    batcher.drain()
    beat(batcher, "dev-1", state=2)
    _, transitions = batcher.drain()
    assert transitions == [("dev-1", 1, 2)]


def test_unchanged_state_reports_no_transition(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=1)
    batcher.drain()
    beat(batcher, "dev-1", state=1)
    records, transitions = batcher.drain()
    assert len(records) == 1
    assert transitions == []


def test_transition_compares_drained_state_not_intermediate_ones(batcher: Batcher) -> None:
    beat(batcher, "dev-1", seen_at=1.0, state=1)
    batcher.drain()
    beat(batcher, "dev-1", seen_at=2.0, state=2)
    beat(batcher, "dev-1", seen_at=3.0, state=1)
    _, transitions = batcher.drain()
    assert transitions == []


def test_transition_uses_the_winning_heartbeats_state(batcher: Batcher) -> None:
    beat(batcher, "dev-1", seen_at=5.0, state=3)
    beat(batcher, "dev-1", seen_at=4.0, state=2)
    _, transitions = batcher.drain()
    assert transitions == [("dev-1", -1, 3)]


def test_last_drained_state_survives_drains_without_the_device(batcher: Batcher) -> None:
    beat(batcher, "a", state=1)
    batcher.drain()
    beat(batcher, "b", state=1)
    batcher.drain()
    assert batcher.drain() == ([], [])
    beat(batcher, "a", state=2)
    _, transitions = batcher.drain()
    assert transitions == [("a", 1, 2)]


def test_transitions_follow_record_order(batcher: Batcher) -> None:
    for device_id in ["c", "a", "b"]:
        beat(batcher, device_id, state=1)
    batcher.drain()
    for device_id, state in [("b", 2), ("a", 1), ("c", 3), ("d", 1)]:
        beat(batcher, device_id, state=state)
    records, transitions = batcher.drain()
    assert [r[0] for r in records] == ["b", "a", "c", "d"]
    assert transitions == [("b", 1, 2), ("c", 1, 3), ("d", -1, 1)]


# --- flush signal -------------------------------------------------------------------------


def test_add_signals_flush_at_max_pending(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls(max_pending=2)
    assert beat(batcher, "a") is False
    assert beat(batcher, "a") is False  # still one distinct device
    assert beat(batcher, "b") is True
    assert beat(batcher, "b") is True  # coalescing while full still signals


def test_max_pending_one_signals_on_every_add(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls(max_pending=1)
    assert beat(batcher, "a") is True
    batcher.drain()
    assert beat(batcher, "a") is True


def test_add_keeps_accepting_past_max_pending(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls(max_pending=2)
    signals = [beat(batcher, f"dev-{i}") for i in range(5)]
    assert signals == [False, True, True, True, True]
    assert len(batcher) == 5
    assert drained_ids(batcher) == [f"dev-{i}" for i in range(5)]


def test_add_stops_signalling_after_drain(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls(max_pending=2)
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.drain()
    assert beat(batcher, "a") is False


def test_add_signal_drops_when_a_pending_device_is_forgotten(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls(max_pending=2)
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.forget("a")
    assert beat(batcher, "b") is False


# --- forget -------------------------------------------------------------------------------


def test_forget_drops_remembered_state(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=1)
    batcher.drain()
    batcher.forget("dev-1")
    beat(batcher, "dev-1", state=1)
    _, transitions = batcher.drain()
    assert transitions == [("dev-1", -1, 1)]


def test_forget_drops_the_pending_entry(batcher: Batcher) -> None:
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.forget("a")
    assert len(batcher) == 1
    assert batcher.added == 2
    records, transitions = batcher.drain()
    assert [r[0] for r in records] == ["b"]
    assert transitions == [("b", -1, 1)]


def test_forgotten_device_re_added_counts_from_its_re_add(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=9.0, state=5)
    beat(batcher, "b")
    batcher.forget("a")
    beat(batcher, "a", seen_at=1.0, state=2)
    records, transitions = batcher.drain()
    assert [(r[0], r[1], r[2], r[7]) for r in records] == [("b", 1.0, 1, 1), ("a", 1.0, 2, 1)]
    assert transitions == [("b", -1, 1), ("a", -1, 2)]


def test_forget_unknown_device_is_a_no_op(batcher: Batcher) -> None:
    beat(batcher, "a")
    batcher.forget("never-seen")
    batcher.forget("")
    assert len(batcher) == 1
    assert drained_ids(batcher) == ["a"]


@pytest.mark.parametrize("device_id", [b"a", None, 1])
def test_forget_refuses_non_str_device_id(batcher: Batcher, device_id: Any) -> None:
    with pytest.raises(TypeError):
        batcher.forget(device_id)


def test_mass_forget_while_pending_keeps_order_and_len(batcher: Batcher) -> None:
    # Enough forgets to make the compiled twin compact its arrival list, twice.
    devices = [f"dev-{i:03}" for i in range(300)]
    for device_id in devices:
        beat(batcher, device_id)
    forgotten = [d for i, d in enumerate(devices) if i % 5 != 0]
    for device_id in forgotten:
        batcher.forget(device_id)
    survivors = devices[::5]
    assert len(batcher) == len(survivors)
    for device_id in forgotten[:3]:
        beat(batcher, device_id)
    assert len(batcher) == len(survivors) + 3
    assert drained_ids(batcher) == survivors + forgotten[:3]


# --- validation ---------------------------------------------------------------------------


class StrSubclass(str):
    pass


@pytest.mark.parametrize("device_id", [b"dev-1", None, 1, StrSubclass("dev-1")])
def test_non_str_device_id_is_refused(batcher: Batcher, device_id: Any) -> None:
    with pytest.raises(TypeError):
        beat(batcher, device_id)


def test_empty_device_id_is_refused(batcher: Batcher) -> None:
    with pytest.raises(ValueError, match="device_id"):
        beat(batcher, "")


def test_nan_cpu_is_refused(batcher: Batcher) -> None:
    with pytest.raises(ValueError, match="cpu_percent"):
        beat(batcher, cpu_percent=NAN)


@pytest.mark.parametrize("field", ["seen_at", "cpu_percent", "memory_percent", "disk_percent"])
@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_non_finite_value_is_refused(batcher: Batcher, field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        beat(batcher, **{field: value})


@pytest.mark.parametrize("field", ["seen_at", "cpu_percent", "memory_percent", "disk_percent"])
@pytest.mark.parametrize("value", ["12.5", None, b"1"])
def test_non_real_value_is_refused(batcher: Batcher, field: str, value: Any) -> None:
    with pytest.raises(TypeError):
        beat(batcher, **{field: value})


@pytest.mark.parametrize("field", ["seen_at", "cpu_percent", "memory_percent", "disk_percent"])
def test_integer_too_large_for_a_float_is_refused(batcher: Batcher, field: str) -> None:
    with pytest.raises(OverflowError):
        beat(batcher, **{field: 10**400})


@pytest.mark.parametrize("uptime_seconds", [-1, -(2**70), 2**63])
def test_uptime_out_of_range_is_refused(batcher: Batcher, uptime_seconds: int) -> None:
    with pytest.raises(ValueError, match="uptime_seconds"):
        beat(batcher, uptime_seconds=uptime_seconds)


@pytest.mark.parametrize("state", [-1, 2**31, 2**70])
def test_state_out_of_range_is_refused(batcher: Batcher, state: int) -> None:
    with pytest.raises(ValueError, match="state"):
        beat(batcher, state=state)


@pytest.mark.parametrize("field", ["state", "uptime_seconds"])
@pytest.mark.parametrize("value", [1.0, 1.5, "1", None])
def test_non_integer_count_field_is_refused(batcher: Batcher, field: str, value: Any) -> None:
    with pytest.raises(TypeError):
        beat(batcher, **{field: value})


def test_refused_heartbeat_changes_nothing(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls(max_pending=2)
    beat(batcher, "a", seen_at=1.0, state=1)
    bad_calls: list[dict[str, Any]] = [
        {"device_id": "a", "seen_at": 9.0, "state": 2, "uptime_seconds": -1},
        {"device_id": "b", "seen_at": 9.0, "state": 2, "disk_percent": NAN},
        {"device_id": "a", "seen_at": NAN, "state": 2},
        {"device_id": "", "seen_at": 9.0},
        {"device_id": "b", "state": -5},
    ]
    for kwargs in bad_calls:
        with pytest.raises((TypeError, ValueError)):
            beat(batcher, **kwargs)
    assert len(batcher) == 1
    assert batcher.added == 1
    records, transitions = batcher.drain()
    assert records == [("a", 1.0, 1, 10.0, 20.0, 30.0, 100, 1)]
    assert transitions == [("a", -1, 1)]


def test_batcher_refuses_to_be_pickled_or_copied(batcher: Batcher) -> None:
    beat(batcher, "a")
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(batcher)
    with pytest.raises(TypeError, match="pickle"):
        copy.copy(batcher)


# --- differential -------------------------------------------------------------------------

DEVICE_IDS = ["a", "b", "c", "d", "e"]

_finite = st.floats(allow_nan=False, allow_infinity=False)
_valid_add = st.fixed_dictionaries(
    {
        "device_id": st.sampled_from(DEVICE_IDS),
        "seen_at": st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0]), _finite),
        "state": st.one_of(st.integers(0, 3), st.integers(0, 2**31 - 1)),
        "cpu_percent": st.one_of(st.floats(0.0, 100.0), _finite, st.integers(-5, 500)),
        "memory_percent": st.one_of(st.floats(0.0, 100.0), _finite),
        "disk_percent": st.one_of(st.floats(0.0, 100.0), _finite),
        "uptime_seconds": st.integers(0, 2**63 - 1),
    }
)
_BAD_VALUES: dict[str, list[Any]] = {
    "device_id": ["", b"a", None, 7, StrSubclass("a")],
    "seen_at": [NAN, INF, -INF, "1", None, 10**400],
    "state": [-1, 2**31, 2**64, 1.0, "1", None],
    "cpu_percent": [NAN, INF, "50", None, 10**400],
    "memory_percent": [NAN, -INF, None],
    "disk_percent": [INF, b"1", None],
    "uptime_seconds": [-1, 2**63, 2**80, 1.0, None],
}
_bad_field_value = st.sampled_from(
    [(field, value) for field, values in _BAD_VALUES.items() for value in values]
)
_invalid_add = st.builds(
    lambda kwargs, bad: {**kwargs, bad[0]: bad[1]}, _valid_add, _bad_field_value
)
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _valid_add),
        st.tuples(st.just("add"), _valid_add),
        st.tuples(st.just("add"), _invalid_add),
        st.tuples(st.just("drain"), st.just({})),
        st.tuples(
            st.just("forget"), st.fixed_dictionaries({"device_id": st.sampled_from(DEVICE_IDS)})
        ),
    ),
    max_size=80,
)


def _apply(batcher: Batcher, operation: str, kwargs: dict[str, Any]) -> object:
    """Run one operation; return its result, or the type of the exception it raised."""
    try:
        if operation == "add":
            return batcher.add(**kwargs)
        if operation == "drain":
            return batcher.drain()
        batcher.forget(**kwargs)
    except Exception as exc:  # the exception type is the observable result
        return type(exc)
    return None


@settings(max_examples=400)
@given(max_pending=st.integers(1, 6), operations=_operations)
def test_compiled_and_reference_agree_on_any_sequence(
    max_pending: int, operations: list[tuple[str, dict[str, Any]]]
) -> None:
    compiled = CompiledBatcher(max_pending)
    reference = ReferenceBatcher(max_pending)
    for operation, kwargs in operations:
        got = _apply(compiled, operation, kwargs)
        expected = _apply(reference, operation, kwargs)
        # repr() also tells 50 from 50.0 and -0.0 from 0.0, which == does not.
        assert repr(got) == repr(expected), (operation, kwargs)
        assert (len(compiled), compiled.added) == (len(reference), reference.added)
    assert repr(compiled.drain()) == repr(reference.drain())
