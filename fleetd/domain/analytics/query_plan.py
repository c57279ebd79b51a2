"""GetMetrics without IO: which requests are answerable, and which table answers each metric.

docs/analytics.md, section 3. :func:`plan` turns a request (already decoded, its types
checked by the message rules) into a :class:`QueryPlan` or refuses it with
:class:`InvalidQuery`, whose message names the field and says what to send instead. The
edge turns that into INVALID_ARGUMENT; storage executes the plan.

Rules (3.1):

* ``metric_names``: 1 to 16 names of the catalogue (``metrics.py``); ``aggregation`` one of
  ``AVG`` (the default when empty), ``MIN``, ``MAX``, ``SUM``, ``COUNT``, ``P50``, ``P95``,
  ``P99``, case-sensitive.
* ``end_time`` defaults to now, ``start_time`` to ``end_time`` minus 24 h; start before end;
  the window at most 400 days.
* ``interval`` at least 60 s and a whole number of minutes; unset: the smallest of 60 s,
  5 min, 15 min, 1 h, 6 h, 1 d, 7 d giving at most 500 points. Buckets are aligned to the
  Unix epoch, so a bucket is ``[k * interval, (k + 1) * interval)`` seconds since 1970.
* Bounds: 1,440 points per series (window / interval), 200 series and 100,000 points per
  answer (series times the buckets the window touches). The points per series are known
  here; the series count only once storage has resolved the labels, which then calls
  :func:`check_answer_size` before reading any metric row.
* ``labels``: ``fleet``, ``type``, ``version``, ``device_id``, ``status``, ``tags``,
  ``metadata.<key>``; ``*`` groups, any other value restricts.

Tiers (3.2), per metric: device counts from the census; ``heartbeat_rate`` and rolled-up
resource metrics, when every label is a group label, from the group rollups (hourly rows
when the interval is a whole number of hours); everything else from the per-device tier
(raw samples when the window starts within the raw retention, else hourly rows).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from fleetd.domain.analytics import groups, metrics
from fleetd.domain.analytics.metrics import AGGREGATIONS, PERCENTILES, Kind, Metric

MAX_METRICS: Final = 16
MAX_WINDOW: Final = dt.timedelta(days=400)
DEFAULT_WINDOW: Final = dt.timedelta(hours=24)
MIN_INTERVAL_SECONDS: Final = 60
AUTO_INTERVALS: Final = (60, 300, 900, 3600, 21600, 86400, 604800)
"""Candidates for an unset interval, smallest first."""
AUTO_MAX_POINTS: Final = 500
MAX_POINTS_PER_SERIES: Final = 1440
MAX_SERIES: Final = 200
MAX_POINTS: Final = 100_000
MAX_DEVICES: Final = 10_000
"""Per-device questions read at most this many devices' samples."""

HOUR_SECONDS: Final = 3600
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

CENSUS_LABELS: Final = frozenset({"fleet", "type", "version", "status"})
DEVICE_LABELS: Final = frozenset({"device_id", "status", "tags"})
"""Label keys that only the per-device tier can answer (besides ``metadata.<key>``)."""
KNOWN_LABELS: Final = "fleet, type, version, device_id, status, tags, metadata.<key>"
METADATA_PREFIX: Final = "metadata."
GROUP_ALL: Final = "*"


class InvalidQuery(ValueError):
    """A GetMetrics request that cannot be answered as asked; the message is for the caller."""


class Tier(Enum):
    """The table a metric is read from."""

    ROLLUPS_1M = "metric_rollups_1m"
    ROLLUPS_1H = "metric_rollups_1h"
    CENSUS_1M = "fleet_census_1m"
    CENSUS_1H = "fleet_census_1h"
    SAMPLES = "device_samples"
    SAMPLES_1H = "device_samples_1h"

    @property
    def hourly(self) -> bool:
        return self in (Tier.ROLLUPS_1H, Tier.CENSUS_1H, Tier.SAMPLES_1H)


@dataclass(frozen=True, slots=True)
class Label:
    """One ``labels`` entry: ``value`` restricts, or groups when it is ``*``."""

    key: str
    value: str

    @property
    def grouped(self) -> bool:
        return self.value == GROUP_ALL


@dataclass(frozen=True, slots=True)
class Retentions:
    """How long each tier keeps data (``Settings``: FLEETD_RAW_RETENTION ...)."""

    raw: dt.timedelta = dt.timedelta(days=1)
    device_hourly: dt.timedelta = dt.timedelta(days=30)
    rollups: dt.timedelta = dt.timedelta(days=90)
    rollups_hourly: dt.timedelta = dt.timedelta(days=400)


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """A GetMetrics request as plain values (``None``: the field was not set)."""

    metric_names: Sequence[str]
    aggregation: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    interval: dt.timedelta | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricRead:
    """One requested metric and the table that answers it."""

    metric: Metric
    tier: Tier


@dataclass(frozen=True, slots=True)
class QueryPlan:
    start: dt.datetime
    end: dt.datetime
    interval: dt.timedelta
    aggregation: str
    labels: tuple[Label, ...]
    """Sorted by key."""
    reads: tuple[MetricRead, ...]
    """In request order."""
    points_per_series: int
    """Buckets the window spans (an upper bound: empty buckets are omitted)."""

    @property
    def interval_seconds(self) -> int:
        return int(self.interval.total_seconds())

    @property
    def grouped_keys(self) -> tuple[str, ...]:
        """The keys of ``*`` labels: each distinct combination of their values is a series."""
        return tuple(label.key for label in self.labels if label.grouped)

    @property
    def restrictions(self) -> dict[str, str]:
        return {label.key: label.value for label in self.labels if not label.grouped}

    @property
    def percentile(self) -> float | None:
        return PERCENTILES.get(self.aggregation)


def plan(query: MetricsQuery, *, now: dt.datetime, retentions: Retentions) -> QueryPlan:
    """The plan for ``query``, or :class:`InvalidQuery` naming the field at fault."""
    chosen = _metrics(query.metric_names)
    aggregation = _aggregation(query.aggregation)
    start, end = _window(query.start, query.end, now)
    labels = _labels(query.labels)
    interval = _interval(query.interval, start, end)
    # The bound is the doc's arithmetic (window / interval, so a day at 60 s is allowed);
    # an unaligned window may touch one bucket more.
    spanned = math.ceil((end - start) / interval)
    if spanned > MAX_POINTS_PER_SERIES:
        raise InvalidQuery(_too_many_points(start, end, interval, spanned))
    points = bucket_count(start, end, interval)
    reads = tuple(
        MetricRead(metric, _tier(metric, aggregation, labels, interval, start, now, retentions))
        for metric in chosen
    )
    return QueryPlan(start, end, interval, aggregation, labels, reads, points)


def check_answer_size(plan: QueryPlan, series: int) -> None:
    """Refuse an answer of ``series`` series (across all metrics) that passes the bounds."""
    if series > MAX_SERIES:
        raise InvalidQuery(
            f"labels {_describe_labels(plan.labels)} give {series} series; at most "
            f"{MAX_SERIES} are allowed: restrict the labels"
        )
    points = series * plan.points_per_series
    if points > MAX_POINTS:
        raise InvalidQuery(
            f"{series} series of up to {plan.points_per_series} points give {points} points; "
            f"at most {MAX_POINTS} are allowed: use a larger interval, a shorter window or "
            "restrict the labels"
        )


def check_device_count(labels: Sequence[Label], devices: int) -> None:
    """Refuse a per-device question over more than :data:`MAX_DEVICES` devices."""
    if devices > MAX_DEVICES:
        raise InvalidQuery(
            f"labels {_describe_labels(labels)} match {devices} devices; per-device metrics "
            f"are limited to {MAX_DEVICES} devices: add device_id, or use fleet/type/version, "
            "which come from rollups"
        )


def bucket_start(moment: dt.datetime, interval: dt.timedelta) -> dt.datetime:
    """The start of the epoch-aligned bucket holding ``moment`` (``date_bin``'s answer)."""
    step = _micros(interval)
    offset = _micros(moment - EPOCH)
    return EPOCH + dt.timedelta(microseconds=offset - offset % step)


def bucket_count(start: dt.datetime, end: dt.datetime, interval: dt.timedelta) -> int:
    """How many aligned buckets ``[start, end)`` touches."""
    step = _micros(interval)
    first = _micros(start - EPOCH) // step
    last = (_micros(end - EPOCH) - 1) // step
    return last - first + 1


def quantile_disc(values: Sequence[float], q: float) -> float:
    """``percentile_disc(q)`` of sorted ``values``: the first value whose cumulative share
    reaches ``q``, as PostgreSQL computes it."""
    index = max(math.ceil(q * len(values)) - 1, 0)
    return values[index]


# --- the rules ----------------------------------------------------------------------------


def _metrics(names: Sequence[str]) -> list[Metric]:
    if not names:
        raise InvalidQuery(f"metric_names: name at least one metric; known: {metrics.names()}")
    if len(names) > MAX_METRICS:
        raise InvalidQuery(
            f"metric_names: at most {MAX_METRICS} metrics per request, not {len(names)}"
        )
    chosen: list[Metric] = []
    for i, name in enumerate(names):
        metric = metrics.BY_NAME.get(name)
        if metric is None:
            raise InvalidQuery(
                f'metric_names[{i}]: unknown metric "{name}"; known: {metrics.names()}'
            )
        if metric in chosen:
            raise InvalidQuery(f'metric_names[{i}]: "{name}" is named twice; name it once')
        chosen.append(metric)
    return chosen


def _aggregation(aggregation: str) -> str:
    if not aggregation:
        return "AVG"
    if aggregation not in AGGREGATIONS:
        raise InvalidQuery(
            f'aggregation: unknown aggregation "{aggregation}"; use one of '
            f"{', '.join(AGGREGATIONS)} (upper case), or leave it empty for AVG"
        )
    return aggregation


def _window(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    end = now if end is None else end
    start = end - DEFAULT_WINDOW if start is None else start
    if start >= end:
        raise InvalidQuery(
            f"start_time ({_iso(start)}) must be before end_time ({_iso(end)}): "
            "send an earlier start_time, or leave it unset for the 24 hours before end_time"
        )
    if end - start > MAX_WINDOW:
        raise InvalidQuery(
            f"start_time: the window from {_iso(start)} to {_iso(end)} is longer than "
            f"{MAX_WINDOW.days} days; send a later start_time"
        )
    return start, end


def _interval(interval: dt.timedelta | None, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    if interval is None:
        for seconds in AUTO_INTERVALS:
            candidate = dt.timedelta(seconds=seconds)
            if bucket_count(start, end, candidate) <= AUTO_MAX_POINTS:
                return candidate
        return dt.timedelta(seconds=AUTO_INTERVALS[-1])
    micros = _micros(interval)
    if micros < MIN_INTERVAL_SECONDS * 1_000_000 or micros % 60_000_000:
        raise InvalidQuery(
            f"interval: {_seconds_text(interval)} is not allowed; use at least 60s and a "
            "whole number of minutes (e.g. 60s, 300s, 3600s), or leave it unset to pick one"
        )
    return interval


def _labels(labels: Mapping[str, str]) -> tuple[Label, ...]:
    out: list[Label] = []
    for key in sorted(labels):
        value = labels[key]
        known = key in groups.LABELS or key in DEVICE_LABELS
        if key.startswith(METADATA_PREFIX):
            known = len(key) > len(METADATA_PREFIX)
        if not known:
            raise InvalidQuery(f'labels: unknown key "{key}"; known: {KNOWN_LABELS}')
        if not value:
            raise InvalidQuery(
                f'labels["{key}"]: empty value; give a value to restrict to, or "*" for '
                "one series per distinct value"
            )
        out.append(Label(key, value))
    return tuple(out)


def _tier(
    metric: Metric,
    aggregation: str,
    labels: tuple[Label, ...],
    interval: dt.timedelta,
    start: dt.datetime,
    now: dt.datetime,
    retentions: Retentions,
) -> Tier:
    keys = {label.key for label in labels}
    whole_hours = _micros(interval) % (HOUR_SECONDS * 1_000_000) == 0
    if metric.kind is Kind.CENSUS:
        if not keys <= CENSUS_LABELS:
            raise InvalidQuery(
                "labels: device counts are kept per fleet, type, version and status; use "
                "ListDevices with a filter for other selections"
            )
        # The hourly census keeps sums and extremes, not the minutes: no percentiles.
        if whole_hours and aggregation not in PERCENTILES:
            return Tier.CENSUS_1H
        return Tier.CENSUS_1M
    group_labels_only = keys <= groups.FULL
    if metric.kind is Kind.HEARTBEAT_RATE:
        if not group_labels_only:
            raise InvalidQuery(
                "labels: heartbeat_rate is kept per fleet, type and version; drop the other labels"
            )
        if aggregation not in ("AVG", "SUM", "COUNT"):
            raise InvalidQuery(
                f"aggregation: heartbeat_rate is heartbeats per second over each bucket; use "
                f"AVG (or SUM/COUNT for heartbeats per bucket), not {aggregation}"
            )
        return Tier.ROLLUPS_1H if whole_hours else Tier.ROLLUPS_1M
    if group_labels_only and metric.metric_id is not None:
        return Tier.ROLLUPS_1H if whole_hours else Tier.ROLLUPS_1M
    if start >= now - retentions.raw:
        return Tier.SAMPLES
    retention = _duration_text(retentions.raw)
    if aggregation in PERCENTILES:
        raise InvalidQuery(
            f"aggregation: per-device percentiles are kept for {retention}; use AVG, MIN or "
            "MAX for older windows"
        )
    if not whole_hours:
        raise InvalidQuery(
            f"interval: per-device samples are kept for {retention}, then per hour; for a "
            "window starting earlier use a whole number of hours (e.g. 3600s)"
        )
    return Tier.SAMPLES_1H


# --- words --------------------------------------------------------------------------------


def _too_many_points(
    start: dt.datetime, end: dt.datetime, interval: dt.timedelta, points: int
) -> str:
    minutes = max(math.ceil((end - start).total_seconds() / 60 / MAX_POINTS_PER_SERIES), 1)
    return (
        f"interval {_seconds_text(interval)} over {_duration_text(end - start)} gives {points} "
        f"points per series; at most {MAX_POINTS_PER_SERIES} are allowed: use an interval of "
        f"at least {minutes * 60}s or a shorter window"
    )


def _describe_labels(labels: Sequence[Label]) -> str:
    return " ".join(f'{label.key}="{label.value}"' for label in labels) or "(none)"


def _seconds_text(interval: dt.timedelta) -> str:
    seconds = interval.total_seconds()
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"


def _duration_text(span: dt.timedelta) -> str:
    seconds = span.total_seconds()
    if seconds % 3600 == 0 and seconds <= 48 * 3600:
        return f"{int(seconds // 3600)}h"
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)} days"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return _seconds_text(span)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _micros(span: dt.timedelta) -> int:
    return (span.days * 86400 + span.seconds) * 1_000_000 + span.microseconds
