"""GetMetrics: the request checked and planned by ``fleetd.domain.analytics.query_plan``, read
by ``fleetd.storage.analytics.metric_reads``, converted to messages here (docs/analytics.md,
section 3). A request the plan refuses, or whose labels give too many series or devices,
answers INVALID_ARGUMENT with the plan's words (the field, and what to send instead)."""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2, timestamp_pb2

from control_api.convert import timestamp
from control_api.errors import invalid
from control_api.resources import resources
from fleetd.domain.analytics.query_plan import (
    InvalidQuery,
    MetricsQuery,
    Retentions,
    plan,
)
from fleetd.settings import Settings
from fleetd.storage.analytics.metric_reads import Answer, Series, read_metrics
from fleetd.v1 import analytics_pb2, common_pb2


async def get_metrics(request: analytics_pb2.GetMetricsRequest) -> analytics_pb2.GetMetricsResponse:
    res = resources()
    now = dt.datetime.now(dt.UTC)
    try:
        query_plan = plan(_query(request), now=now, retentions=retentions(res.settings))
        answer = await read_metrics(res.pool, query_plan, now=now)
    except InvalidQuery as exc:
        raise invalid(str(exc)) from None
    return response(answer, query_plan.aggregation, query_plan.start, query_plan.end)


def retentions(settings: Settings) -> Retentions:
    """The tiers' retentions from the ``FLEETD_*_RETENTION`` settings."""
    return Retentions(
        raw=dt.timedelta(seconds=settings.raw_retention),
        device_hourly=dt.timedelta(seconds=settings.device_hourly_retention),
        rollups=dt.timedelta(seconds=settings.rollup_retention),
        rollups_hourly=dt.timedelta(seconds=settings.rollup_hourly_retention),
    )


def _query(request: analytics_pb2.GetMetricsRequest) -> MetricsQuery:
    return MetricsQuery(
        metric_names=list(request.metric_names),
        aggregation=request.aggregation,
        start=_moment(request.start_time) if request.HasField("start_time") else None,
        end=_moment(request.end_time) if request.HasField("end_time") else None,
        interval=_span(request.interval) if request.HasField("interval") else None,
        labels=dict(request.labels),
    )


def _moment(value: timestamp_pb2.Timestamp) -> dt.datetime:
    return value.ToDatetime(tzinfo=dt.UTC)


def _span(value: duration_pb2.Duration) -> dt.timedelta:
    # Keep a sub-microsecond remainder visible (the plan refuses anything but whole
    # minutes): 60 s + 1 ns must not round to an acceptable 60 s.
    micros = value.nanos // 1000 if value.nanos % 1000 == 0 else value.nanos // 1000 + 1
    return dt.timedelta(seconds=value.seconds, microseconds=micros)


def response(
    answer: Answer, aggregation: str, start: dt.datetime, end: dt.datetime
) -> analytics_pb2.GetMetricsResponse:
    """The message for ``answer``: one MetricSeries per series, and the summary."""
    summary = analytics_pb2.MetricSummary(
        start_time=timestamp(start),
        end_time=timestamp(end),
        device_count=answer.device_count,
        online_count=answer.online_count,
    )
    for name, stats in answer.statistics.items():
        summary.metrics[name].CopyFrom(
            analytics_pb2.MetricStatistics(
                min=stats.min,
                max=stats.max,
                avg=stats.avg,
                p50=stats.p50,
                p95=stats.p95,
                p99=stats.p99,
                sample_count=stats.sample_count,
            )
        )
    return analytics_pb2.GetMetricsResponse(
        series=[_series(s, aggregation) for s in answer.series], summary=summary
    )


def _series(series: Series, aggregation: str) -> common_pb2.MetricSeries:
    return common_pb2.MetricSeries(
        name=series.metric.name,
        labels=dict(series.labels),
        unit=series.metric.unit,
        aggregation=aggregation,
        points=[
            common_pb2.MetricPoint(
                timestamp=timestamp(p.start), value=p.value, sample_count=p.sample_count
            )
            for p in series.points
        ],
    )
