"""GetMetrics planning: request checks with messages naming the field, bounds, tier choice."""

from __future__ import annotations

import datetime as dt

import pytest

from fleetd.domain.analytics.query_plan import (
    InvalidQuery,
    Label,
    MetricsQuery,
    Retentions,
    Tier,
    bucket_count,
    bucket_start,
    check_answer_size,
    check_device_count,
    plan,
    quantile_disc,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 7, 12, 30, 15, tzinfo=UTC)
RETENTIONS = Retentions()
DAY = dt.timedelta(days=1)


def at(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def seconds(count: int) -> dt.timedelta:
    return dt.timedelta(seconds=count)


def query(**fields: object) -> MetricsQuery:
    base: dict[str, object] = {"metric_names": ["cpu_usage"]}
    base.update(fields)
    return MetricsQuery(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric_names": []}, "metric_names: name at least one metric; known: cpu_usage, "),
        (
            {"metric_names": ["cpu_usage", "memory_usage", "cpu"]},
            'metric_names[2]: unknown metric "cpu"; known: cpu_usage, memory_usage,',
        ),
        ({"metric_names": ["cpu_usage"] * 17}, "metric_names: at most 16 metrics"),
        ({"metric_names": ["cpu_usage", "cpu_usage"]}, 'metric_names[1]: "cpu_usage" is named'),
        ({"aggregation": "avg"}, 'aggregation: unknown aggregation "avg"; use one of AVG, MIN'),
        ({"aggregation": "MEDIAN"}, 'aggregation: unknown aggregation "MEDIAN"'),
        ({"interval": seconds(30)}, "interval: 30s is not allowed; use at least 60s and a whole"),
        ({"interval": seconds(90)}, "interval: 90s is not allowed"),
        (
            {"interval": dt.timedelta(seconds=60, microseconds=1)},
            "interval: 60.000001s is not allowed",
        ),
        ({"start": at(2), "end": at(2)}, "start_time (2026-12-02T00:00:00Z) must be before end"),
        ({"start": at(3), "end": at(2)}, "start_time (2026-12-03T00:00:00Z) must be before"),
        ({"start": at(2) - dt.timedelta(days=401), "end": at(2)}, "longer than 400 days"),
        ({"labels": {"region": "eu"}}, 'labels: unknown key "region"; known: fleet, type,'),
        ({"labels": {"metadata.": "x"}}, 'labels: unknown key "metadata."'),
        ({"labels": {"fleet": ""}}, 'labels["fleet"]: empty value; give a value to restrict'),
        (
            {"start": NOW - 30 * DAY, "end": NOW, "interval": seconds(60)},
            "interval 60s over 30 days gives 43200 points per series; at most 1440 are allowed:"
            " use an interval of at least 1800s or a shorter window",
        ),
        (
            {"metric_names": ["device_count"], "labels": {"device_id": "d-1"}},
            "labels: device counts are kept per fleet, type, version and status; use ListDevices",
        ),
        (
            {"metric_names": ["heartbeat_rate"], "labels": {"tags": "lab"}},
            "labels: heartbeat_rate is kept per fleet, type and version",
        ),
        (
            {"metric_names": ["heartbeat_rate"], "aggregation": "P95"},
            "aggregation: heartbeat_rate is heartbeats per second",
        ),
        (
            {
                "labels": {"device_id": "d-1"},
                "aggregation": "P95",
                "start": NOW - 3 * DAY,
                "end": NOW,
                "interval": seconds(3600),
            },
            "aggregation: per-device percentiles are kept for 24h; use AVG, MIN or MAX",
        ),
        (
            {
                "labels": {"device_id": "d-1"},
                "start": NOW - 3 * DAY,
                "end": NOW,
                "interval": seconds(900),
            },
            "interval: per-device samples are kept for 24h, then per hour",
        ),
    ],
)
def test_bad_requests_are_refused_naming_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        plan(query(**fields), now=NOW, retentions=RETENTIONS)
    assert message in str(refused.value)


def test_the_seed_example_plans_hourly_rollups_and_hourly_census() -> None:
    planned = plan(
        MetricsQuery(
            ["cpu_usage", "memory_usage", "device_online_count"],
            "AVG",
            at(1) - dt.timedelta(days=1),
            at(1),
            seconds(3600),
        ),
        now=NOW,
        retentions=RETENTIONS,
    )
    assert [(r.metric.name, r.tier) for r in planned.reads] == [
        ("cpu_usage", Tier.ROLLUPS_1H),
        ("memory_usage", Tier.ROLLUPS_1H),
        ("device_online_count", Tier.CENSUS_1H),
    ]
    assert planned.points_per_series == 24
    assert planned.labels == ()


def test_defaults_are_avg_and_the_day_before_now_with_an_auto_interval() -> None:
    planned = plan(query(), now=NOW, retentions=RETENTIONS)
    assert planned.aggregation == "AVG"
    assert (planned.start, planned.end) == (NOW - DAY, NOW)
    # 1,441 one-minute buckets, 289 five-minute ones: the smallest under 500 points.
    assert planned.interval == seconds(300)
    assert planned.points_per_series == 289


@pytest.mark.parametrize(
    ("window", "interval"),
    [
        (dt.timedelta(hours=6), 60),
        (dt.timedelta(days=3), 900),
        (dt.timedelta(days=20), 3600),
        (dt.timedelta(days=100), 21600),
        (dt.timedelta(days=400), 86400),
    ],
)
def test_unset_interval_is_the_smallest_giving_at_most_500_points(
    window: dt.timedelta, interval: int
) -> None:
    planned = plan(query(start=at(7) - window, end=at(7)), now=NOW, retentions=RETENTIONS)
    assert planned.interval == seconds(interval)
    assert planned.points_per_series <= 500


@pytest.mark.parametrize(
    ("metric", "labels", "interval", "start", "aggregation", "tier"),
    [
        ("cpu_usage", {}, 60, NOW - DAY, "AVG", Tier.ROLLUPS_1M),
        ("cpu_usage", {}, 5400, NOW - DAY, "AVG", Tier.ROLLUPS_1M),
        ("cpu_usage", {"fleet": "*", "type": "pi"}, 7200, NOW - DAY, "P95", Tier.ROLLUPS_1H),
        ("heartbeat_rate", {"version": "*"}, 300, NOW - DAY, "AVG", Tier.ROLLUPS_1M),
        ("device_count", {"status": "*"}, 3600, NOW - DAY, "MAX", Tier.CENSUS_1H),
        ("device_count", {}, 3600, NOW - DAY, "P95", Tier.CENSUS_1M),
        ("device_offline_count", {"fleet": "a"}, 600, NOW - DAY, "AVG", Tier.CENSUS_1M),
        ("cpu_usage", {"device_id": "d-1"}, 300, NOW - DAY, "P99", Tier.SAMPLES),
        ("cpu_usage", {"status": "online"}, 300, NOW - DAY, "AVG", Tier.SAMPLES),
        ("cpu_usage", {"metadata.site": "*"}, 3600, NOW - 3 * DAY, "MAX", Tier.SAMPLES_1H),
        ("uptime_seconds", {}, 300, NOW - DAY, "MAX", Tier.SAMPLES),
    ],
)
def test_tier_choice(
    metric: str,
    labels: dict[str, str],
    interval: int,
    start: dt.datetime,
    aggregation: str,
    tier: Tier,
) -> None:
    planned = plan(
        MetricsQuery([metric], aggregation, start, NOW, seconds(interval), labels),
        now=NOW,
        retentions=RETENTIONS,
    )
    assert planned.reads[0].tier is tier


def test_labels_are_sorted_and_split_into_groups_and_restrictions() -> None:
    planned = plan(
        query(labels={"type": "*", "fleet": "prod", "version": "*"}), now=NOW, retentions=RETENTIONS
    )
    assert planned.labels == (Label("fleet", "prod"), Label("type", "*"), Label("version", "*"))
    assert planned.grouped_keys == ("type", "version")
    assert planned.restrictions == {"fleet": "prod"}


def test_answer_size_bounds_say_what_to_narrow() -> None:
    planned = plan(
        query(labels={"device_id": "*"}, interval=seconds(300)), now=NOW, retentions=RETENTIONS
    )
    check_answer_size(planned, 200)  # 200 x 289 = 57,800 points: allowed
    with pytest.raises(InvalidQuery) as refused:
        check_answer_size(planned, 1520)
    assert str(refused.value) == (
        'labels device_id="*" give 1520 series; at most 200 are allowed: restrict the labels'
    )
    # A day at 60 s is allowed; unaligned, it touches 1,441 buckets.
    wide = plan(query(interval=seconds(60)), now=NOW, retentions=RETENTIONS)
    assert wide.points_per_series == 1441
    check_answer_size(wide, 69)
    with pytest.raises(InvalidQuery) as refused:
        check_answer_size(wide, 70)
    assert "70 series of up to 1441 points give 100870 points; at most 100000" in str(refused.value)


def test_device_bound() -> None:
    check_device_count([Label("tags", "lab")], 10_000)
    with pytest.raises(InvalidQuery) as refused:
        check_device_count([Label("tags", "lab")], 41_230)
    assert str(refused.value) == (
        'labels tags="lab" match 41230 devices; per-device metrics are limited to 10000 '
        "devices: add device_id, or use fleet/type/version, which come from rollups"
    )


@pytest.mark.parametrize(
    ("moment", "interval", "start"),
    [
        (at(7, 12, 30), 3600, at(7, 12)),
        (at(7, 12), 3600, at(7, 12)),  # a moment on a boundary starts its bucket
        (at(7, 23, 59), 86400, at(7)),
        (at(7, 12, 44), 900, at(7, 12, 30)),
        # 7-day buckets are aligned to the epoch (a Thursday), not to Mondays.
        (at(7), 604800, dt.datetime(2026, 12, 3, tzinfo=UTC)),
    ],
)
def test_buckets_are_epoch_aligned(moment: dt.datetime, interval: int, start: dt.datetime) -> None:
    assert bucket_start(moment, seconds(interval)) == start


def test_bucket_count_counts_touched_buckets_with_an_exclusive_end() -> None:
    assert bucket_count(at(1), at(2), seconds(3600)) == 24
    assert bucket_count(at(1, 0, 30), at(2), seconds(3600)) == 24
    assert bucket_count(at(1, 0, 30), at(2, 0, 1), seconds(3600)) == 25


def test_quantile_disc_matches_postgres_definition() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert [quantile_disc(values, q) for q in (0.0, 0.25, 0.26, 0.5, 0.95, 1.0)] == [
        1.0,
        1.0,
        2.0,
        2.0,
        4.0,
        4.0,
    ]
