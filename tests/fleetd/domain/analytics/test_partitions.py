"""Partition planning: aligned bounds, deterministic names, made ahead, dropped after retention."""

from __future__ import annotations

import datetime as dt

import pytest

from fleetd.domain.analytics import partitions
from fleetd.domain.analytics.partitions import (
    DAY,
    MONTH,
    Partition,
    Width,
    hours,
    partition_of,
    plan,
)

UTC = dt.UTC


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "width", "name", "start", "end"),
    [
        (
            at(2026, 12, 7, 13, 5),
            hours(6),
            "t_p2026120712",
            at(2026, 12, 7, 12),
            at(2026, 12, 7, 18),
        ),
        (
            at(2026, 12, 7, 23, 59, 59),
            hours(6),
            "t_p2026120718",
            at(2026, 12, 7, 18),
            at(2026, 12, 8),
        ),
        (at(2026, 12, 7, 0, 0), hours(1), "t_p2026120700", at(2026, 12, 7, 0), at(2026, 12, 7, 1)),
        (at(2026, 12, 7, 13, 5), DAY, "t_p20261207", at(2026, 12, 7), at(2026, 12, 8)),
        (at(2024, 2, 28, 23), DAY, "t_p20240228", at(2024, 2, 28), at(2024, 2, 29)),
        (at(2026, 12, 7, 13, 5), MONTH, "t_p202612", at(2026, 12, 1), at(2027, 1, 1)),
        (at(2024, 2, 29, 12), MONTH, "t_p202402", at(2024, 2, 1), at(2024, 3, 1)),
    ],
)
def test_partition_of_a_moment_is_aligned_and_named_by_its_start(
    moment: dt.datetime, width: Width, name: str, start: dt.datetime, end: dt.datetime
) -> None:
    assert partition_of("t", moment, width) == Partition(name, start, end)


def test_a_moment_in_another_timezone_is_placed_by_its_utc_time() -> None:
    oslo_morning = dt.datetime(2026, 12, 8, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert partition_of("t", oslo_morning, DAY).name == "t_p20261207"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        partition_of("t", dt.datetime(2026, 12, 7), DAY)


@pytest.mark.parametrize("count", [0, 5, 7, 25, -6])
def test_hour_widths_that_do_not_divide_a_day_are_refused(count: int) -> None:
    with pytest.raises(ValueError, match="does not divide a day"):
        hours(count)


@pytest.mark.parametrize("parent", ["Device_Samples", "samples;drop", "", "x" * 52])
def test_parent_names_that_are_not_plain_short_identifiers_are_refused(parent: str) -> None:
    with pytest.raises(ValueError, match="parent table name"):
        partition_of(parent, at(2026, 12, 7), hours(6))


def test_the_longest_allowed_parent_still_gives_a_63_byte_name() -> None:
    name = partition_of("x" * 51, at(2026, 12, 7), hours(6)).name
    assert len(name) == 63


def names(parts: tuple[Partition, ...]) -> list[str]:
    return [p.name for p in parts]


@pytest.mark.parametrize(
    ("now", "width", "ahead", "retention", "existing", "create", "drop"),
    [
        pytest.param(
            at(2026, 12, 7, 13),
            hours(6),
            3,
            dt.timedelta(hours=24),
            [],
            ["s_p2026120712", "s_p2026120718", "s_p2026120800", "s_p2026120806"],
            [],
            id="first run: the current partition and three ahead",
        ),
        pytest.param(
            at(2026, 12, 7, 13),
            hours(6),
            1,
            dt.timedelta(hours=24),
            ["s_p2026120712", "s_p2026120718"],
            [],
            [],
            id="nothing to do when everything is there",
        ),
        pytest.param(
            at(2026, 12, 7, 13),
            hours(6),
            1,
            dt.timedelta(hours=24),
            ["s_p2026120606", "s_p2026120612", "s_p2026120618", "s_p2026120712"],
            ["s_p2026120718"],
            ["s_p2026120606"],
            id="a partition ending exactly at now - retention goes, the next stays",
        ),
        pytest.param(
            at(2026, 12, 7, 12),
            DAY,
            2,
            dt.timedelta(days=1),
            ["s_p20261205", "s_p20261206", "s_p20261207"],
            ["s_p20261208", "s_p20261209"],
            ["s_p20261205"],
            id="daily: yesterday stays until its rows are all older than a day",
        ),
        pytest.param(
            at(2027, 1, 15),
            MONTH,
            2,
            dt.timedelta(days=400),
            ["s_p202511", "s_p202512", "s_p202601", "s_p202701"],
            ["s_p202702", "s_p202703"],
            ["s_p202511"],
            id="monthly across a year boundary",
        ),
        pytest.param(
            at(2026, 12, 7, 13),
            DAY,
            0,
            dt.timedelta(days=30),
            [],
            ["s_p20261207"],
            [],
            id="ahead 0 still makes the current partition",
        ),
        pytest.param(
            at(2026, 12, 7, 13),
            DAY,
            1,
            dt.timedelta(days=1),
            ["s_p20261207", "s_p20261207", "s_p20261201", "s_p20261201"],
            ["s_p20261208"],
            ["s_p20261201"],
            id="duplicate names count once",
        ),
    ],
)
def test_plan_creates_ahead_and_drops_past_retention(
    now: dt.datetime,
    width: Width,
    ahead: int,
    retention: dt.timedelta,
    existing: list[str],
    create: list[str],
    drop: list[str],
) -> None:
    result = plan("s", now=now, width=width, ahead=ahead, retention=retention, existing=existing)
    assert names(result.create) == create
    assert names(result.drop) == drop
    assert result.unknown == ()


def test_planned_partitions_are_contiguous() -> None:
    result = plan(
        "s",
        now=at(2026, 2, 27, 23),
        width=DAY,
        ahead=5,
        retention=dt.timedelta(days=1),
        existing=[],
    )
    for earlier, later in zip(result.create, result.create[1:], strict=False):
        assert earlier.end == later.start
    assert result.create[-1].name == "s_p20260304"


def test_an_expired_partition_not_yet_consumed_is_kept() -> None:
    existing = ["s_p2026120500", "s_p2026120506", "s_p2026120512", "s_p2026120712"]

    def dropped(keep_from: dt.datetime) -> list[str]:
        result = plan(
            "s",
            now=at(2026, 12, 7, 13),
            width=hours(6),
            ahead=0,
            retention=dt.timedelta(hours=24),
            existing=existing,
            keep_from=keep_from,
        )
        return names(result.drop)

    assert dropped(at(2026, 12, 5, 6)) == ["s_p2026120500"]
    assert dropped(at(2026, 12, 7, 12)) == ["s_p2026120500", "s_p2026120506", "s_p2026120512"]


@pytest.mark.parametrize(
    "name",
    [
        "s_p20261201",  # a daily name under an hourly width
        "s_p2026120107",  # 07 is off the 6-hour grid
        "s_p2026120724",  # not an hour
        "s_p202612010",  # not the canonical spelling
        "s_default",
        "other_p2026120100",
        "s_p2026120100_old",
    ],
)
def test_names_this_width_would_not_make_are_reported_and_never_dropped(name: str) -> None:
    result = plan(
        "s",
        now=at(2027, 6, 1),
        width=hours(6),
        ahead=0,
        retention=dt.timedelta(hours=1),
        existing=[name],
    )
    assert result.unknown == (name,)
    assert result.drop == ()


@pytest.mark.parametrize(
    ("ahead", "retention", "message"),
    [(-1, dt.timedelta(days=1), "ahead"), (1, dt.timedelta(0), "retention")],
)
def test_nonsense_settings_are_refused(ahead: int, retention: dt.timedelta, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan("s", now=at(2026, 1, 1), width=DAY, ahead=ahead, retention=retention, existing=[])


def test_the_module_exports_what_storage_needs() -> None:
    assert set(partitions.__all__) >= {"plan", "partition_of", "hours", "DAY", "MONTH"}
