"""HeartbeatBatcher: every behavioural case runs on the compiled and the reference class.

The classes are imported directly (not through ``core_ext.compiled``) so these tests do not
depend on the Rust identity module; a missing Cython build fails collection loudly.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import pickle
import random
import sys
from typing import Any, TypeAlias

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core_ext._batcher as compiled_module
import core_ext.reference.batcher as reference_module
from core_ext._batcher import HeartbeatBatcher as CompiledBatcher
from core_ext.heartbeat_types import COPY_COLUMNS, METRICS, Flush, Rollup
from core_ext.reference.batcher import MAX_GROUPS, MAX_SEEN_AT, MIN_SEEN_AT
from core_ext.reference.batcher import HeartbeatBatcher as ReferenceBatcher

Batcher: TypeAlias = CompiledBatcher | ReferenceBatcher
BatcherClass: TypeAlias = type[CompiledBatcher] | type[ReferenceBatcher]
Record: TypeAlias = tuple[str, float, int, float, float, float, int, int]

NAN = math.nan
INF = math.inf
UTC = dt.UTC

REST = (1000, 2000, 10.0, 20.0, 0.5, 0.4, 0.3, 45.0, 0, 0)
"""Plausible values of ``add``'s arguments after ``uptime_seconds``, for positional calls."""


@pytest.fixture(params=[CompiledBatcher, ReferenceBatcher], ids=["compiled", "reference"])
def batcher_cls(request: pytest.FixtureRequest) -> BatcherClass:
    cls: BatcherClass = request.param
    return cls


def new_batcher(batcher_cls: BatcherClass, *args: Any, **kwargs: Any) -> Batcher:
    """A batcher whose group 0 is ("rpi", "1.0"), the group ``beat`` uses by default."""
    batcher = batcher_cls(*args, **kwargs)
    assert batcher.group_id("rpi", "1.0") == 0
    return batcher


@pytest.fixture
def batcher(batcher_cls: BatcherClass) -> Batcher:
    return new_batcher(batcher_cls)


def beat(
    batcher: Batcher,
    device_id: Any = "dev-1",
    *,
    group: Any = 0,
    seen_at: Any = 1.0,
    state: Any = 1,
    cpu_percent: Any = 10.0,
    memory_percent: Any = 20.0,
    disk_percent: Any = 30.0,
    uptime_seconds: Any = 100,
    memory_used_mb: Any = 1000,
    memory_total_mb: Any = 2000,
    disk_used_gb: Any = 10.0,
    disk_total_gb: Any = 20.0,
    load_avg_1m: Any = 0.5,
    load_avg_5m: Any = 0.4,
    load_avg_15m: Any = 0.3,
    temperature: Any = 45.0,
    network_rx_bytes: Any = 0,
    network_tx_bytes: Any = 0,
) -> bool:
    """One ``add`` with plausible defaults, passed by keyword."""
    return batcher.add(
        device_id=device_id,
        group=group,
        seen_at=seen_at,
        state=state,
        cpu_percent=cpu_percent,
        memory_percent=memory_percent,
        disk_percent=disk_percent,
        uptime_seconds=uptime_seconds,
        memory_used_mb=memory_used_mb,
        memory_total_mb=memory_total_mb,
        disk_used_gb=disk_used_gb,
        disk_total_gb=disk_total_gb,
        load_avg_1m=load_avg_1m,
        load_avg_5m=load_avg_5m,
        load_avg_15m=load_avg_15m,
        temperature=temperature,
        network_rx_bytes=network_rx_bytes,
        network_tx_bytes=network_tx_bytes,
    )


def records(flush: Flush, prefix: str = "stats:") -> list[Record]:
    """The coalesced records a flush carries, read back from its HSET commands."""
    out: list[Record] = []
    for command in flush.redis_commands:
        if command[0] != "HSET":
            continue
        fields = dict(zip(command[2::2], command[3::2], strict=True))
        key = command[1]
        assert isinstance(key, str)
        out.append(
            (
                key.removeprefix(prefix),
                float(fields["seen_at"]),
                int(fields["state"]),
                float(fields["cpu"]),
                float(fields["mem"]),
                float(fields["disk"]),
                int(fields["uptime"]),
                int(fields["count"]),
            )
        )
    return out


def comparable(flush: Flush) -> Flush:
    """``flush`` with each rollup's sketch replaced by its bytes: the compiled and the
    reference ``Sketch`` are different classes, whose bytes are the same."""
    return flush._replace(rollups=[(*row[:8], row[8].to_bytes()) for row in flush.rollups])  # type: ignore[misc]


def drain_records(batcher: Batcher) -> list[Record]:
    return records(batcher.drain())


def drained_ids(batcher: Batcher) -> list[str]:
    return [record[0] for record in drain_records(batcher)]


def utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, UTC)


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


def test_rollup_interval_defaults_to_a_minute(batcher: Batcher) -> None:
    assert batcher.rollup_interval == 60


@pytest.mark.parametrize("interval", [1, 15, 60, 3600, 86400])
def test_rollup_interval_dividing_a_day_is_kept(batcher_cls: BatcherClass, interval: int) -> None:
    assert batcher_cls(rollup_interval=interval).rollup_interval == interval


@pytest.mark.parametrize("interval", [0, -60, 7, 86401, 2 * 86400, 2**70])
def test_rollup_interval_not_dividing_a_day_is_refused(
    batcher_cls: BatcherClass, interval: int
) -> None:
    with pytest.raises(ValueError, match="rollup_interval"):
        batcher_cls(rollup_interval=interval)


@pytest.mark.parametrize("stats_ttl", [0, -1, 2**31, 2**70])
def test_stats_ttl_out_of_range_is_refused(batcher_cls: BatcherClass, stats_ttl: int) -> None:
    with pytest.raises(ValueError, match="stats_ttl"):
        batcher_cls(stats_ttl=stats_ttl)


@pytest.mark.parametrize("field", ["stats_ttl", "rollup_interval"])
@pytest.mark.parametrize("value", [60.0, "60", None])
def test_non_integer_setting_is_refused(batcher_cls: BatcherClass, field: str, value: Any) -> None:
    with pytest.raises(TypeError):
        batcher_cls(**{field: value})


class StrSubclass(str):
    pass


@pytest.mark.parametrize("field", ["last_seen_key", "stats_key_prefix", "stats_key_suffix"])
@pytest.mark.parametrize("value", [b"k", None, 1, StrSubclass("k")])
def test_non_str_key_part_is_refused(batcher_cls: BatcherClass, field: str, value: Any) -> None:
    with pytest.raises(TypeError):
        batcher_cls(**{field: value})


def test_new_batcher_is_empty(batcher: Batcher) -> None:
    assert len(batcher) == 0
    assert batcher.added == 0
    assert batcher.drain() == Flush([], [], [], None, 0, 0)
    assert batcher.drain_copy_records() == []


# --- groups -------------------------------------------------------------------------------


def test_group_ids_count_up_in_first_call_order(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls()
    assert batcher.group_id("rpi", "1.0") == 0
    assert batcher.group_id("rpi", "1.1") == 1
    assert batcher.group_id("", "") == 2
    assert batcher.group_id("1.0", "rpi") == 3


def test_same_group_gets_the_same_id(batcher: Batcher) -> None:
    other = batcher.group_id("x86", "2")
    assert batcher.group_id("rpi", "1.0") == 0
    assert batcher.group_id("x86", "2") == other


def test_group_ids_survive_drains_and_forgets(batcher: Batcher) -> None:
    beat(batcher, "a")
    batcher.drain()
    batcher.forget("a")
    assert batcher.group_id("rpi", "1.0") == 0
    assert batcher.group_id("new", "1") == 1


@pytest.mark.parametrize("value", [b"rpi", None, 1, StrSubclass("rpi")])
@pytest.mark.parametrize("field", ["device_type", "version"])
def test_non_str_group_part_is_refused(batcher: Batcher, field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"device_type": "rpi", "version": "1.0", field: value}
    with pytest.raises(TypeError):
        batcher.group_id(**kwargs)


def test_groups_beyond_the_limit_are_refused(batcher_cls: BatcherClass) -> None:
    batcher = batcher_cls()
    for i in range(MAX_GROUPS):
        assert batcher.group_id("type", str(i)) == i
    with pytest.raises(ValueError, match="too many device groups"):
        batcher.group_id("type", "one more")
    assert batcher.group_id("type", "7") == 7  # known groups still resolve


@pytest.mark.parametrize("group", [1, -1, 2**70, -(2**70)])
def test_add_refuses_a_group_never_returned(batcher: Batcher, group: int) -> None:
    with pytest.raises(ValueError, match="group"):
        beat(batcher, group=group)


def test_add_refuses_any_group_before_group_id(batcher_cls: BatcherClass) -> None:
    with pytest.raises(ValueError, match="group"):
        beat(batcher_cls(), group=0)


@pytest.mark.parametrize("group", [0.0, "0", None])
def test_non_integer_group_is_refused(batcher: Batcher, group: Any) -> None:
    with pytest.raises(TypeError):
        beat(batcher, group=group)


# --- coalescing ---------------------------------------------------------------------------


def test_single_heartbeat_drains_as_one_record_counted_once(batcher: Batcher) -> None:
    batcher.add("dev-1", 0, 5.0, 2, 11.5, 22.5, 33.5, 3600, *REST)
    assert drain_records(batcher) == [("dev-1", 5.0, 2, 11.5, 22.5, 33.5, 3600, 1)]


def test_later_seen_at_wins_when_heartbeats_coalesce(batcher: Batcher) -> None:
    batcher.add("dev-1", 0, 1.0, 1, 10.0, 20.0, 30.0, 100, *REST)
    batcher.add("dev-1", 0, 2.0, 3, 11.0, 21.0, 31.0, 101, *REST)
    assert drain_records(batcher) == [("dev-1", 2.0, 3, 11.0, 21.0, 31.0, 101, 2)]


def test_earlier_seen_at_is_counted_but_does_not_overwrite(batcher: Batcher) -> None:
    batcher.add("dev-1", 0, 2.0, 3, 11.0, 21.0, 31.0, 101, *REST)
    batcher.add("dev-1", 0, 1.0, 1, 10.0, 20.0, 30.0, 100, *REST)
    assert drain_records(batcher) == [("dev-1", 2.0, 3, 11.0, 21.0, 31.0, 101, 2)]


def test_later_call_wins_on_equal_seen_at(batcher: Batcher) -> None:
    batcher.add("dev-1", 0, 2.0, 1, 10.0, 20.0, 30.0, 100, *REST)
    batcher.add("dev-1", 0, 2.0, 4, 12.0, 22.0, 32.0, 102, *REST)
    assert drain_records(batcher) == [("dev-1", 2.0, 4, 12.0, 22.0, 32.0, 102, 2)]


def test_count_covers_every_coalesced_heartbeat(batcher: Batcher) -> None:
    for seen_at in [3.0, 1.0, 5.0, 2.0, 4.0]:
        beat(batcher, "dev-1", seen_at=seen_at, uptime_seconds=int(seen_at))
    beat(batcher, "dev-2")
    assert [(r[0], r[1], r[6], r[7]) for r in drain_records(batcher)] == [
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


def test_drain_empties_the_flush_window(batcher: Batcher) -> None:
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.drain()
    assert len(batcher) == 0
    assert batcher.drain() == Flush([], [], [], None, 0, 0)


def test_coalescing_restarts_after_drain(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=9.0, state=2)
    batcher.drain()
    beat(batcher, "a", seen_at=1.0, state=3)
    assert [(r[1], r[2], r[7]) for r in drain_records(batcher)] == [(1.0, 3, 1)]


def test_integer_values_are_stored_as_float(batcher: Batcher) -> None:
    batcher.add("dev-1", 0, 7, 1, 50, 60, 70, 1, *REST)
    hset = batcher.drain().redis_commands[1]
    assert hset[2::2] == ("seen_at", "state", "cpu", "mem", "disk", "uptime", "count")
    assert hset[3::2] == (7.0, 1, 50.0, 60.0, 70.0, 1, 1)
    assert [type(value) for value in hset[3::2]] == [float, int, float, float, float, int, int]


def test_bool_and_index_integers_are_stored_as_int(batcher: Batcher) -> None:
    class Code:
        def __index__(self) -> int:
            return 4

    state: Any = Code()
    group: Any = False
    batcher.add("dev-1", group, 1.0, state, 1.0, 1.0, 1.0, True, *REST)
    flush = batcher.drain()
    assert records(flush) == [("dev-1", 1.0, 4, 1.0, 1.0, 1.0, 1, 1)]
    hset = flush.redis_commands[1]
    assert type(hset[5]) is int
    assert type(hset[13]) is int
    assert flush.transitions == [("dev-1", -1, 4)]


def test_percentages_are_passed_through_unclamped(batcher: Batcher) -> None:
    batcher.add("dev-1", 0, 1.0, 1, 250.0, -3.5, 1e300, 0, *REST)
    assert drain_records(batcher) == [("dev-1", 1.0, 1, 250.0, -3.5, 1e300, 0, 1)]


def test_extreme_valid_values_round_trip(batcher: Batcher) -> None:
    huge = sys.float_info.max
    batcher.add(
        "d" * 10_000, 0, MIN_SEEN_AT, 2**31 - 1, huge, -0.0, 5e-324, 2**63 - 1, 2**63 - 1, 0,
        huge, -huge, huge, 0.0, -0.0, -huge, 2**64 - 1, 0,
    )  # fmt: skip
    flush = batcher.drain()
    assert records(flush) == [
        ("d" * 10_000, MIN_SEEN_AT, 2**31 - 1, huge, -0.0, 5e-324, 2**63 - 1, 1)
    ]
    assert math.copysign(1.0, records(flush)[0][4]) == -1.0
    assert batcher.drain_copy_records() == [
        (
            "d" * 10_000, dt.datetime(1, 1, 1, tzinfo=UTC), huge, -0.0, 5e-324, 2**63 - 1,
            2**63 - 1, 0, huge, -huge, huge, 0.0, -0.0, -huge, None, None, True,
        )
    ]  # fmt: skip


# --- redis commands -----------------------------------------------------------------------


def test_redis_commands_are_one_zadd_then_hset_and_expire_per_device(
    batcher_cls: BatcherClass,
) -> None:
    batcher = new_batcher(
        batcher_cls,
        last_seen_key="fleetd:{f}:last_seen",
        stats_key_prefix="fleetd:dev:{",
        stats_key_suffix="}:stats",
        stats_ttl=600,
    )
    batcher.add("b", 0, 2.5, 1, 10.0, 20.0, 30.0, 7, *REST)
    batcher.add("a", 0, 1.5, 3, 11.0, 21.0, 31.0, 8, *REST)
    batcher.add("b", 0, 3.5, 1, 12.0, 22.0, 32.0, 9, *REST)
    assert batcher.drain().redis_commands == [
        ("ZADD", "fleetd:{f}:last_seen", 3.5, "b", 1.5, "a"),
        ("HSET", "fleetd:dev:{b}:stats", "seen_at", 3.5, "state", 1, "cpu", 12.0,
         "mem", 22.0, "disk", 32.0, "uptime", 9, "count", 2),
        ("EXPIRE", "fleetd:dev:{b}:stats", 600),
        ("HSET", "fleetd:dev:{a}:stats", "seen_at", 1.5, "state", 3, "cpu", 11.0,
         "mem", 21.0, "disk", 31.0, "uptime", 8, "count", 1),
        ("EXPIRE", "fleetd:dev:{a}:stats", 600),
    ]  # fmt: skip


def test_default_keys(batcher: Batcher) -> None:
    beat(batcher, "a")
    commands = batcher.drain().redis_commands
    assert [command[:2] for command in commands] == [
        ("ZADD", "last_seen"),
        ("HSET", "stats:a"),
        ("EXPIRE", "stats:a"),
    ]
    assert commands[2] == ("EXPIRE", "stats:a", 86400)


def test_no_redis_commands_when_every_pending_device_was_forgotten(batcher: Batcher) -> None:
    beat(batcher, "a")
    batcher.forget("a")
    flush = batcher.drain()
    assert flush.redis_commands == []
    assert flush.devices == 0
    assert flush.heartbeats == 1


def test_flush_counts_devices_and_heartbeats(batcher: Batcher) -> None:
    for device_id in ["a", "b", "a", "c", "a"]:
        beat(batcher, device_id)
    flush = batcher.drain()
    assert (flush.devices, flush.heartbeats) == (3, 5)


# --- transitions --------------------------------------------------------------------------


def test_first_drain_reports_transition_from_minus_one(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=0)
    assert batcher.drain().transitions == [("dev-1", -1, 0)]


def test_transition_detected_against_last_drained_state(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=1)
    batcher.drain()
    beat(batcher, "dev-1", state=2)
    assert batcher.drain().transitions == [("dev-1", 1, 2)]


def test_unchanged_state_reports_no_transition(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=1)
    batcher.drain()
    beat(batcher, "dev-1", state=1)
    flush = batcher.drain()
    assert flush.devices == 1
    assert flush.transitions == []


def test_transition_compares_drained_state_not_intermediate_ones(batcher: Batcher) -> None:
    beat(batcher, "dev-1", seen_at=1.0, state=1)
    batcher.drain()
    beat(batcher, "dev-1", seen_at=2.0, state=2)
    beat(batcher, "dev-1", seen_at=3.0, state=1)
    assert batcher.drain().transitions == []


def test_transition_uses_the_winning_heartbeats_state(batcher: Batcher) -> None:
    beat(batcher, "dev-1", seen_at=5.0, state=3)
    beat(batcher, "dev-1", seen_at=4.0, state=2)
    assert batcher.drain().transitions == [("dev-1", -1, 3)]


def test_last_drained_state_survives_drains_without_the_device(batcher: Batcher) -> None:
    beat(batcher, "a", state=1)
    batcher.drain()
    beat(batcher, "b", state=1)
    batcher.drain()
    assert batcher.drain().transitions == []
    beat(batcher, "a", state=2)
    assert batcher.drain().transitions == [("a", 1, 2)]


def test_transitions_follow_record_order(batcher: Batcher) -> None:
    for device_id in ["c", "a", "b"]:
        beat(batcher, device_id, state=1)
    batcher.drain()
    for device_id, state in [("b", 2), ("a", 1), ("c", 3), ("d", 1)]:
        beat(batcher, device_id, state=state)
    flush = batcher.drain()
    assert [r[0] for r in records(flush)] == ["b", "a", "c", "d"]
    assert flush.transitions == [("b", 1, 2), ("c", 1, 3), ("d", -1, 1)]


# --- flush signal and age -----------------------------------------------------------------


def test_add_signals_flush_at_max_pending(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, max_pending=2)
    assert beat(batcher, "a") is False
    assert beat(batcher, "a") is False  # still one distinct device
    assert beat(batcher, "b") is True
    assert beat(batcher, "b") is True  # coalescing while full still signals


def test_max_pending_one_signals_on_every_add(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, max_pending=1)
    assert beat(batcher, "a") is True
    batcher.drain()
    assert beat(batcher, "a") is True


def test_add_keeps_accepting_past_max_pending(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, max_pending=2)
    signals = [beat(batcher, f"dev-{i}") for i in range(5)]
    assert signals == [False, True, True, True, True]
    assert len(batcher) == 5
    assert drained_ids(batcher) == [f"dev-{i}" for i in range(5)]


def test_add_stops_signalling_after_drain(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, max_pending=2)
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.drain()
    assert beat(batcher, "a") is False


def test_copy_window_does_not_count_towards_max_pending(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, max_pending=2)
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.drain()  # both now wait in the COPY window
    assert beat(batcher, "c") is False


def test_add_signal_drops_when_a_pending_device_is_forgotten(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, max_pending=2)
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.forget("a")
    assert beat(batcher, "b") is False


def test_oldest_pending_age_is_zero_when_nothing_was_added(batcher: Batcher) -> None:
    assert batcher.oldest_pending_age(1000.0) == 0.0


def test_oldest_pending_age_measures_from_the_least_seen_at(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=100.0)
    beat(batcher, "b", seen_at=90.5)
    beat(batcher, "a", seen_at=120.0)
    assert batcher.oldest_pending_age(130.0) == 39.5
    batcher.forget("b")  # its heartbeat is still in the rollups, still waiting to flush
    assert batcher.oldest_pending_age(130.0) == 39.5
    batcher.drain()
    assert batcher.oldest_pending_age(130.0) == 0.0


def test_flush_interval_spans_the_seen_at_of_the_window(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=100.0)
    beat(batcher, "b", seen_at=90.5)
    beat(batcher, "a", seen_at=120.0)
    assert batcher.drain().interval == (90.5, 120.0)
    beat(batcher, "a", seen_at=7.0)
    assert batcher.drain().interval == (7.0, 7.0)
    assert batcher.drain().interval is None


# --- rollups ------------------------------------------------------------------------------


def stats(rows: list[Rollup], metric: str = "cpu_usage") -> list[tuple[Any, ...]]:
    """The rows of one metric without their sketch: (bucket_start, type, version, metric,
    count, sum, min, max)."""
    return [row[:8] for row in rows if row[3] == metric]


def test_rollups_count_sum_min_max_per_group_and_metric(batcher: Batcher) -> None:
    x86 = batcher.group_id("x86", "2.1")
    beat(batcher, "a", seen_at=60.0, cpu_percent=10.0, memory_percent=50.0, disk_percent=5.0)
    beat(
        batcher, "b", group=x86, seen_at=61.0, cpu_percent=1.0, memory_percent=2.0, disk_percent=3.0
    )
    beat(batcher, "c", seen_at=62.0, cpu_percent=30.0, memory_percent=40.0, disk_percent=7.0)
    minute = utc(60.0)
    rows = batcher.drain().rollups
    assert stats(rows) == [
        (minute, "rpi", "1.0", "cpu_usage", 2, 40.0, 10.0, 30.0),
        (minute, "x86", "2.1", "cpu_usage", 1, 1.0, 1.0, 1.0),
    ]
    assert stats(rows, "memory_usage") == [
        (minute, "rpi", "1.0", "memory_usage", 2, 90.0, 40.0, 50.0),
        (minute, "x86", "2.1", "memory_usage", 1, 2.0, 2.0, 2.0),
    ]
    assert stats(rows, "disk_usage") == [
        (minute, "rpi", "1.0", "disk_usage", 2, 12.0, 5.0, 7.0),
        (minute, "x86", "2.1", "disk_usage", 1, 3.0, 3.0, 3.0),
    ]
    # The statistics are the sketch's, and the sketch holds exactly those readings.
    for row in rows:
        sketch = row[8]
        assert (sketch.count, sketch.sum, sketch.min, sketch.max) == row[4:8]


def test_rollups_fold_every_field_under_its_metric_name(batcher: Batcher) -> None:
    beat(
        batcher,
        "a",
        seen_at=60.0,
        memory_used_mb=1500,
        disk_used_gb=12.5,
        load_avg_1m=1.5,
        load_avg_5m=1.25,
        load_avg_15m=1.0,
        temperature=51.5,
    )
    rows = batcher.drain().rollups
    assert {row[3]: row[5] for row in rows} == {
        "cpu_usage": 10.0,
        "memory_usage": 20.0,
        "memory_used_mb": 1500.0,
        "disk_usage": 30.0,
        "disk_used_gb": 12.5,
        "load_avg_1m": 1.5,
        "load_avg_5m": 1.25,
        "load_avg_15m": 1.0,
        "temperature": 51.5,
    }


def test_rollups_count_every_heartbeat_not_only_coalescing_winners(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=5.0, cpu_percent=10.0)
    beat(batcher, "a", seen_at=4.0, cpu_percent=90.0)  # loses coalescing, still counted
    beat(batcher, "a", seen_at=6.0, cpu_percent=20.0)
    [cpu] = stats(batcher.drain().rollups)
    assert cpu[3:] == ("cpu_usage", 3, 120.0, 10.0, 90.0)


def test_rollups_split_at_bucket_boundaries(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=119.999, cpu_percent=1.0)
    beat(batcher, "b", seen_at=120.0, cpu_percent=2.0)
    beat(batcher, "c", seen_at=59.0, cpu_percent=4.0)
    beat(batcher, "d", seen_at=100.0, cpu_percent=8.0)
    cpu = stats(batcher.drain().rollups)
    assert [(r[0], r[4], r[5]) for r in cpu] == [
        (utc(60.0), 2, 9.0),
        (utc(120.0), 1, 2.0),
        (utc(0.0), 1, 4.0),
    ]


def test_rollup_buckets_follow_rollup_interval(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, rollup_interval=3600)
    beat(batcher, "a", seen_at=1_699_999_200.0)  # 2023-11-14T22:00:00Z
    beat(batcher, "b", seen_at=1_700_002_799.5)
    rollups = batcher.drain().rollups
    assert {r[0] for r in rollups} == {dt.datetime(2023, 11, 14, 22, tzinfo=UTC)}
    assert rollups[0][4] == 2


def test_rollup_buckets_before_1970_align_to_the_interval(batcher_cls: BatcherClass) -> None:
    batcher = new_batcher(batcher_cls, rollup_interval=86400)
    beat(batcher, "a", seen_at=MIN_SEEN_AT + 86399.5)
    beat(batcher, "b", seen_at=-0.5)
    starts = [r[0] for r in stats(batcher.drain().rollups)]
    assert starts == [dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(1969, 12, 31, tzinfo=UTC)]


def test_rollups_list_buckets_and_groups_in_first_appearance_order(batcher: Batcher) -> None:
    x86 = batcher.group_id("x86", "2.1")
    beat(batcher, "a", group=x86, seen_at=130.0)
    beat(batcher, "b", seen_at=61.0)
    beat(batcher, "c", group=x86, seen_at=61.0)
    beat(batcher, "d", group=x86, seen_at=131.0)
    beat(batcher, "e", seen_at=62.0)
    keys = [(r[0], r[1]) for r in stats(batcher.drain().rollups)]
    assert keys == [(utc(120.0), "x86"), (utc(60.0), "rpi"), (utc(60.0), "x86")]


def test_rollup_metrics_come_in_a_fixed_order(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=1.0, network_rx_bytes=0)
    beat(batcher, "a", seen_at=2.0, network_rx_bytes=10)  # a rate: every metric has a reading
    assert tuple(r[3] for r in batcher.drain().rollups) == METRICS


def test_rollups_keep_forgotten_devices_heartbeats(batcher: Batcher) -> None:
    beat(batcher, "a", cpu_percent=10.0)
    beat(batcher, "b", cpu_percent=20.0)
    batcher.forget("a")
    assert batcher.drain().rollups[0][4:8] == (2, 30.0, 10.0, 20.0)


def test_rollups_restart_after_drain(batcher: Batcher) -> None:
    beat(batcher, "a", cpu_percent=10.0)
    batcher.drain()
    beat(batcher, "a", seen_at=2.0, cpu_percent=20.0)
    assert batcher.drain().rollups[0][4:8] == (1, 20.0, 20.0, 20.0)
    assert batcher.drain().rollups == []


def test_rollups_sum_zeros_to_positive_zero(batcher: Batcher) -> None:
    # The sketch's rule: its sum starts at 0.0 and a lone -0.0 is kept as 0.0.
    beat(batcher, "a", cpu_percent=-0.0)
    beat(batcher, "b", cpu_percent=0.0)
    beat(batcher, "c", cpu_percent=-0.0)
    count, total, low, high = batcher.drain().rollups[0][4:8]
    assert (count, total, low, high) == (3, 0.0, 0.0, 0.0)
    assert math.copysign(1.0, total) == 1.0


def _fold(rollups: list[Rollup]) -> dict[tuple[dt.datetime, str, str, str], bytes]:
    """What a per-minute rollup writer does with consecutive flushes: merge the sketches."""
    folded: dict[tuple[dt.datetime, str, str, str], Any] = {}
    for start, device_type, version, metric, *_, sketch in rollups:
        key = (start, device_type, version, metric)
        if key in folded:
            folded[key].merge(sketch)
        else:
            folded[key] = sketch
    return {key: sketch.to_bytes() for key, sketch in folded.items()}


_whole_percent = st.integers(0, 100).map(float)  # sums stay exact whatever the grouping


@settings(max_examples=200)
@given(
    beats=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 1),
            st.floats(0.0, 300.0),
            _whole_percent,
            _whole_percent,
            _whole_percent,
        ),
        max_size=40,
    ),
    drain_after=st.sets(st.integers(0, 40)),
)
def test_rollups_of_consecutive_drains_fold_into_the_rollups_of_one(
    beats: list[tuple[str, int, float, float, float, float]], drain_after: set[int]
) -> None:
    for cls in (CompiledBatcher, ReferenceBatcher):
        split, whole = cls(), cls()
        for batcher in (split, whole):
            batcher.group_id("rpi", "1")
            batcher.group_id("x86", "2")
        pieces: list[Rollup] = []
        # Counters stay 0: rates are 0.0 or unknown, so sums stay exact too.
        for i, (device_id, group, seen_at, cpu, mem, disk) in enumerate(beats):
            for batcher in (split, whole):
                batcher.add(
                    device_id, group, seen_at, 1, cpu, mem, disk, 0, 1, 2, 3.0, 4.0,
                    0.5, 0.5, 0.5, NAN, 0, 0,
                )  # fmt: skip
            if i in drain_after:
                pieces += split.drain().rollups
        pieces += split.drain().rollups
        assert _fold(pieces) == _fold(whole.drain().rollups)


# --- COPY window --------------------------------------------------------------------------


def test_copy_records_wait_for_drain(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=1_700_000_000.25)
    assert batcher.drain_copy_records() == []
    batcher.drain()
    assert batcher.drain_copy_records() == [
        (
            "a", dt.datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC), 10.0, 20.0, 30.0,
            100, 1000, 2000, 10.0, 20.0, 0.5, 0.4, 0.3, 45.0, None, None, True,
        )
    ]  # fmt: skip
    assert batcher.drain_copy_records() == []


def test_copy_record_matches_the_merge_staging_columns(batcher: Batcher) -> None:
    batcher.add(
        "a", 0, 1_700_000_000.5, 3, 11.5, 22.5, 33.5, 3600, 700, 4096, 1.5, 64.0, 2.0, 1.5,
        1.0, NAN, 10, 20,
    )  # fmt: skip
    batcher.drain()
    [record] = batcher.drain_copy_records()
    assert len(record) == len(COPY_COLUMNS)
    named = dict(zip(COPY_COLUMNS, record, strict=True))
    seen_at = named.pop("seen_at")
    assert named == {
        "device_id": "a",
        "cpu_usage": 11.5,
        "memory_usage": 22.5,
        "disk_usage": 33.5,
        "uptime_seconds": 3600,
        "memory_used_mb": 700,
        "memory_total_mb": 4096,
        "disk_used_gb": 1.5,
        "disk_total_gb": 64.0,
        "load_avg_1m": 2.0,
        "load_avg_5m": 1.5,
        "load_avg_15m": 1.0,
        "temperature": None,  # NaN: no sensor
        "network_rx_rate": None,  # a first heartbeat: no rate yet
        "network_tx_rate": None,
        "sample": True,
    }
    assert isinstance(seen_at, dt.datetime) and seen_at.tzinfo is UTC
    assert seen_at.timestamp() == 1_700_000_000.5


def test_copy_window_keeps_the_last_drained_record_per_device(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=10.0, cpu_percent=1.0)
    beat(batcher, "b", seen_at=10.0, cpu_percent=2.0)
    batcher.drain()
    beat(batcher, "c", seen_at=11.0, cpu_percent=3.0)
    beat(batcher, "a", seen_at=5.0, cpu_percent=4.0)  # an earlier seen_at, drained later
    batcher.drain()
    got = [(r[0], r[1], r[2]) for r in batcher.drain_copy_records()]
    # Positions follow first arrival in the window; values the latest drain.
    assert got == [("a", utc(5.0), 4.0), ("b", utc(10.0), 2.0), ("c", utc(11.0), 3.0)]


def test_copy_window_takes_coalesced_records(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=10.0, cpu_percent=1.0)
    beat(batcher, "a", seen_at=12.0, cpu_percent=2.0, uptime_seconds=12)
    beat(batcher, "a", seen_at=11.0, cpu_percent=3.0)
    batcher.drain()
    assert [r[:6] for r in batcher.drain_copy_records()] == [("a", utc(12.0), 2.0, 20.0, 30.0, 12)]


def test_forget_drops_the_copy_entry(batcher: Batcher) -> None:
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.drain()
    batcher.forget("a")
    assert [r[0] for r in batcher.drain_copy_records()] == ["b"]


def test_forgotten_device_re_drained_enters_the_copy_window_last(batcher: Batcher) -> None:
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.drain()
    batcher.forget("a")
    beat(batcher, "a", seen_at=2.0)
    batcher.drain()
    assert [(r[0], r[1]) for r in batcher.drain_copy_records()] == [
        ("b", utc(1.0)),
        ("a", utc(2.0)),
    ]


@pytest.mark.parametrize(
    "seen_at",
    [
        0.0,
        -0.0,
        5e-324,
        0.5e-6,  # half a microsecond: rounds to even (0)
        1.5e-6,  # rounds to even (2)
        -0.5e-6,
        -1e-7,
        0.9999995,
        -0.9999995,
        951_782_400.0,  # 2000-02-29
        1_700_000_000.123456789,
        MIN_SEEN_AT,
        MIN_SEEN_AT + 0.5,
        MAX_SEEN_AT,
        MAX_SEEN_AT - 1e-4,
    ],
)
def test_copy_record_seen_at_is_datetime_fromtimestamp(batcher: Batcher, seen_at: float) -> None:
    beat(batcher, "a", seen_at=seen_at)
    batcher.drain()
    [record] = batcher.drain_copy_records()
    assert record[1] == utc(seen_at)
    assert repr(record[1]) == repr(utc(seen_at))


@settings(max_examples=2000)
@given(seen_at=st.floats(MIN_SEEN_AT, MAX_SEEN_AT))
def test_compiled_copy_datetimes_equal_datetime_fromtimestamp(seen_at: float) -> None:
    batcher = CompiledBatcher()
    beat(batcher, "a", group=batcher.group_id("", ""), seen_at=seen_at)
    batcher.drain()
    assert batcher.drain_copy_records()[0][1] == utc(seen_at)


# --- forget -------------------------------------------------------------------------------


def test_forget_drops_remembered_state(batcher: Batcher) -> None:
    beat(batcher, "dev-1", state=1)
    batcher.drain()
    batcher.forget("dev-1")
    beat(batcher, "dev-1", state=1)
    assert batcher.drain().transitions == [("dev-1", -1, 1)]


def test_forget_drops_the_pending_entry(batcher: Batcher) -> None:
    beat(batcher, "a")
    beat(batcher, "b")
    batcher.forget("a")
    assert len(batcher) == 1
    assert batcher.added == 2
    flush = batcher.drain()
    assert [r[0] for r in records(flush)] == ["b"]
    assert flush.transitions == [("b", -1, 1)]
    assert flush.redis_commands[0] == ("ZADD", "last_seen", 1.0, "b")


def test_forgotten_device_re_added_counts_from_its_re_add(batcher: Batcher) -> None:
    beat(batcher, "a", seen_at=9.0, state=5)
    beat(batcher, "b")
    batcher.forget("a")
    beat(batcher, "a", seen_at=1.0, state=2)
    flush = batcher.drain()
    assert [(r[0], r[1], r[2], r[7]) for r in records(flush)] == [
        ("b", 1.0, 1, 1),
        ("a", 1.0, 2, 1),
    ]
    assert flush.transitions == [("b", -1, 1), ("a", -1, 2)]


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


def test_mass_forget_keeps_order_and_len_in_both_windows(batcher: Batcher) -> None:
    # Enough forgets to make the compiled twin compact its arrival lists, twice.
    devices = [f"dev-{i:03}" for i in range(300)]
    for device_id in devices:
        beat(batcher, device_id)
    batcher.drain()
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
    assert [r[0] for r in batcher.drain_copy_records()] == survivors + forgotten[:3]


# --- validation ---------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "seen_at",
    [MIN_SEEN_AT - 1e-3, MAX_SEEN_AT + 1e-4, MAX_SEEN_AT + 1, -sys.float_info.max, 1e300],
)
def test_seen_at_outside_datetime_range_is_refused(batcher: Batcher, seen_at: float) -> None:
    with pytest.raises(ValueError, match="seen_at"):
        beat(batcher, seen_at=seen_at)


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
    batcher = new_batcher(batcher_cls, max_pending=2)
    beat(batcher, "a", seen_at=1.0, state=1)
    bad_calls: list[dict[str, Any]] = [
        {"device_id": "a", "seen_at": 9.0, "state": 2, "uptime_seconds": -1},
        {"device_id": "b", "seen_at": 9.0, "state": 2, "disk_percent": NAN},
        {"device_id": "a", "seen_at": NAN, "state": 2},
        {"device_id": "a", "seen_at": MAX_SEEN_AT + 1, "state": 2},
        {"device_id": "", "seen_at": 9.0},
        {"device_id": "b", "state": -5},
        {"device_id": "b", "group": 1, "seen_at": 0.5},
        {"device_id": "a", "seen_at": 9.0, "network_rx_bytes": 500, "network_tx_bytes": -1},
        {"device_id": "a", "seen_at": 9.0, "network_rx_bytes": 500, "temperature": INF},
        {"device_id": "a", "seen_at": 9.0, "memory_used_mb": -1},
        {"device_id": "a", "seen_at": 9.0, "memory_total_mb": 2**63},
        {"device_id": "a", "seen_at": 9.0, "load_avg_15m": NAN},
        {"device_id": "a", "seen_at": 9.0, "disk_total_gb": -INF},
        {"device_id": "a", "seen_at": 9.0, "network_rx_bytes": 2**64},
    ]
    for kwargs in bad_calls:
        with pytest.raises((TypeError, ValueError)):
            beat(batcher, **kwargs)
    assert len(batcher) == 1
    assert batcher.added == 1
    assert batcher.oldest_pending_age(1.0) == 0.0
    flush = batcher.drain()
    assert records(flush) == [("a", 1.0, 1, 10.0, 20.0, 30.0, 100, 1)]
    assert flush.transitions == [("a", -1, 1)]
    assert flush.rollups[0][4:8] == (1, 10.0, 10.0, 10.0)
    assert (flush.interval, flush.heartbeats) == ((1.0, 1.0), 1)
    # The device's memory is untouched too: the next rate is against the first heartbeat.
    beat(batcher, "a", seen_at=3.0, network_rx_bytes=100)
    batcher.drain()
    assert batcher.drain_copy_records()[0][14:] == (50.0, 0.0, True)


def test_batcher_refuses_to_be_pickled_or_copied(batcher: Batcher) -> None:
    beat(batcher, "a")
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(batcher)
    with pytest.raises(TypeError, match="pickle"):
        copy.copy(batcher)


def test_both_modules_export_the_same_constants() -> None:
    names = [
        "MAX_GROUPS",
        "MAX_SEEN_AT",
        "MAX_STATE",
        "MAX_STATS_TTL",
        "MAX_UPTIME_SECONDS",
        "MIN_SEEN_AT",
        "NEVER_DRAINED",
        "METRICS",
        "Flush",
    ]
    for name in names:
        assert getattr(compiled_module, name) == getattr(reference_module, name), name


# --- many devices (the compiled twin's hash table: growth, tombstones, equal keys) --------


def test_equal_device_ids_that_are_different_objects_are_one_device(batcher: Batcher) -> None:
    first = "".join(["dev", "-", "1"])
    second = "".join(["dev-", "1"])
    assert first == second and first is not second
    beat(batcher, first, seen_at=1.0)
    beat(batcher, second, seen_at=2.0)
    assert len(batcher) == 1
    assert [(r[0], r[1], r[7]) for r in drain_records(batcher)] == [("dev-1", 2.0, 2)]
    beat(batcher, first)
    batcher.forget("".join(["dev", "-1"]))
    assert len(batcher) == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_and_reference_agree_on_a_large_churning_fleet(seed: int) -> None:
    rng = random.Random(seed)
    devices = [f"device-{i}" for i in range(3000)]
    compiled, reference = CompiledBatcher(), ReferenceBatcher()
    for batcher in (compiled, reference):
        batcher.group_id("a", "1")
        batcher.group_id("b", "2")
    for step in range(40_000):
        roll = rng.random()
        device_id = "".join(rng.choice(devices))  # a new str object every time
        for batcher in (compiled, reference):
            if roll < 0.15:
                batcher.forget(device_id)
            else:
                batcher.add(
                    device_id, step % 2, float(step % 977), step % 3, 1.0, 2.0, 3.0, 4, 5, 6,
                    7.0, 8.0, 0.5, 0.25, 0.125, NAN if step % 5 else 40.0, step * 1000, step,
                )  # fmt: skip
        if roll > 0.9995:
            assert comparable(compiled.drain()) == comparable(reference.drain())
        if roll < 0.0005:
            assert compiled.drain_copy_records() == reference.drain_copy_records()
        assert len(compiled) == len(reference)
    assert comparable(compiled.drain()) == comparable(reference.drain())
    assert compiled.drain_copy_records() == reference.drain_copy_records()


def test_a_window_of_many_devices_drains_in_arrival_order(batcher: Batcher) -> None:
    devices = [f"d{i}" for i in range(20_000)]
    for device_id in reversed(devices):
        beat(batcher, device_id)
    for device_id in devices[::2]:
        beat(batcher, device_id, seen_at=2.0)
    assert len(batcher) == len(devices)
    flush = batcher.drain()
    assert flush.devices == len(devices)
    assert [r[0] for r in records(flush)] == devices[::-1]
    assert len(batcher) == 0
    beat(batcher, "d7")
    assert drained_ids(batcher) == ["d7"]


# --- differential -------------------------------------------------------------------------

DEVICE_IDS = ["a", "b", "c", "d", "e"]
# Enough more to grow the compiled twin's table (64 slots, at most half full) in one window.
_device_id = st.one_of(
    st.sampled_from(DEVICE_IDS), st.sampled_from([f"more-{i}" for i in range(48)])
)
GROUPS = [("rpi", "1.0"), ("rpi", "1.1"), ("x86", "")]

_finite = st.floats(allow_nan=False, allow_infinity=False)
_seen_at = st.one_of(
    st.sampled_from([0.0, 1.0, 59.5, 60.0, 3599.0, 3600.0, MIN_SEEN_AT, MAX_SEEN_AT]),
    st.floats(MIN_SEEN_AT, MAX_SEEN_AT),
    st.floats(1.7e9, 1.7e9 + 7200),
)
_valid_add = st.fixed_dictionaries(
    {
        "device_id": _device_id,
        "group": st.integers(0, len(GROUPS) - 1),
        "seen_at": _seen_at,
        "state": st.one_of(st.integers(0, 3), st.integers(0, 2**31 - 1)),
        "cpu_percent": st.one_of(st.floats(0.0, 100.0), _finite, st.integers(-5, 500)),
        "memory_percent": st.one_of(st.floats(0.0, 100.0), _finite),
        "disk_percent": st.one_of(st.floats(0.0, 100.0), _finite),
        "uptime_seconds": st.integers(0, 2**63 - 1),
        "memory_used_mb": st.integers(0, 2**63 - 1),
        "memory_total_mb": st.integers(0, 2**40),
        "disk_used_gb": st.one_of(st.floats(0.0, 1e9), _finite),
        "disk_total_gb": _finite,
        "load_avg_1m": st.floats(0.0, 1e6),
        "load_avg_5m": _finite,
        "load_avg_15m": st.integers(0, 100),
        "temperature": st.one_of(st.just(NAN), st.floats(-273.15, 1000.0), _finite),
        "network_rx_bytes": st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 10**6)),
        "network_tx_bytes": st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 10**6)),
    }
)
_BAD_VALUES: dict[str, list[Any]] = {
    "device_id": ["", b"a", None, 7, StrSubclass("a")],
    "group": [-1, len(GROUPS), 2**64, 0.0, "0", None],
    "seen_at": [NAN, INF, -INF, "1", None, 10**400, MIN_SEEN_AT - 1, MAX_SEEN_AT + 1, 1e300],
    "state": [-1, 2**31, 2**64, 1.0, "1", None],
    "cpu_percent": [NAN, INF, "50", None, 10**400],
    "memory_percent": [NAN, -INF, None],
    "disk_percent": [INF, b"1", None],
    "uptime_seconds": [-1, 2**63, 2**80, 1.0, None],
    "memory_used_mb": [-1, 2**63, 1.5, None],
    "memory_total_mb": [-(2**70), "1"],
    "disk_used_gb": [NAN, INF, None],
    "disk_total_gb": [-INF, "1"],
    "load_avg_1m": [NAN, 10**400],
    "load_avg_5m": [INF],
    "load_avg_15m": [NAN, None],
    "temperature": [INF, -INF, None, "20"],
    "network_rx_bytes": [-1, 2**64, 2**80, 1.0, None],
    "network_tx_bytes": [-(2**64), 2**64, 0.0],
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
        st.tuples(st.just("add"), _valid_add),
        st.tuples(st.just("add"), _invalid_add),
        st.tuples(st.just("drain"), st.just({})),
        st.tuples(st.just("drain_copy_records"), st.just({})),
        st.tuples(st.just("oldest_pending_age"), st.fixed_dictionaries({"now": _finite})),
        st.tuples(st.just("forget"), st.fixed_dictionaries({"device_id": _device_id})),
    ),
    max_size=150,
)


def _apply(batcher: Batcher, operation: str, kwargs: dict[str, Any]) -> object:
    """Run one operation; return its result, or the type of the exception it raised."""
    try:
        if operation == "add":
            return batcher.add(**kwargs)
        if operation == "drain":
            return comparable(batcher.drain())
        if operation == "drain_copy_records":
            return batcher.drain_copy_records()
        if operation == "oldest_pending_age":
            return batcher.oldest_pending_age(**kwargs)
        batcher.forget(**kwargs)
    except Exception as exc:  # the exception type is the observable result
        return type(exc)
    return None


@settings(max_examples=500)
@given(
    max_pending=st.integers(1, 6),
    rollup_interval=st.sampled_from([1, 60, 3600, 86400]),
    sample_interval=st.sampled_from([0.0, 1.0, 30.0, 300.0, 1e9]),
    operations=_operations,
)
def test_compiled_and_reference_agree_on_any_sequence(
    max_pending: int,
    rollup_interval: int,
    sample_interval: float,
    operations: list[tuple[str, dict[str, Any]]],
) -> None:
    compiled = CompiledBatcher(
        max_pending, rollup_interval=rollup_interval, sample_interval=sample_interval
    )
    reference = ReferenceBatcher(
        max_pending, rollup_interval=rollup_interval, sample_interval=sample_interval
    )
    for batcher in (compiled, reference):
        for device_type, version in GROUPS:
            batcher.group_id(device_type, version)
    for operation, kwargs in operations:
        got = _apply(compiled, operation, kwargs)
        expected = _apply(reference, operation, kwargs)
        # repr() also tells 50 from 50.0 and -0.0 from 0.0, which == does not.
        assert repr(got) == repr(expected), (operation, kwargs)
        assert (len(compiled), compiled.added) == (len(reference), reference.added)
    assert repr(comparable(compiled.drain())) == repr(comparable(reference.drain()))
    assert repr(compiled.drain_copy_records()) == repr(reference.drain_copy_records())
