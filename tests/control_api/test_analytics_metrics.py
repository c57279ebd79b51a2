"""GetMetrics over the real control API (gRPC, TLS, API keys): answers equal the readings
written, bad requests are INVALID_ARGUMENT naming the field, analytics:view is required."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from fleetd.storage.bearer_tokens import create_api_key
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.postgres import connect
from fleetd.v1 import analytics_pb2
from tests.fleetd.storage.analytics.test_metric_reads import (
    FULLS,
    HOUR,
    MINUTE,
    T0,
    generate,
    partitions,
    write_rollups,
)
from tests.support.deployment import Deployment, running_deployment

METHOD = "/fleetd.v1.AnalyticsService/GetMetrics"


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect(database_url, run_migrations=False)
    yield pool
    await pool.close()


def moment(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


async def call(
    dep: Deployment, request: analytics_pb2.GetMetricsRequest, key: str
) -> analytics_pb2.GetMetricsResponse:
    creds = grpc.ssl_channel_credentials(root_certificates=dep.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{dep.api_port}", creds) as channel:
        method = channel.unary_unary(
            METHOD,
            request_serializer=analytics_pb2.GetMetricsRequest.SerializeToString,
            response_deserializer=analytics_pb2.GetMetricsResponse.FromString,
        )
        response: analytics_pb2.GetMetricsResponse = await method(
            request, metadata=(("x-api-key", key),), timeout=30
        )
        return response


async def test_fleet_wide_average_per_bucket_equals_the_readings(
    deployment: Deployment, db: asyncpg.Pool
) -> None:
    await partitions(db)
    readings = generate(FULLS, [T0 + i * MINUTE for i in range(120)], (1, 2), seed=21)
    await write_rollups(db, readings)
    request = analytics_pb2.GetMetricsRequest(
        start_time=moment(T0),
        end_time=moment(T0 + 2 * HOUR),
        metric_names=["cpu_usage", "memory_usage"],
        aggregation="AVG",
        interval=duration_pb2.Duration(seconds=1800),
        labels={"fleet": "*"},
    )
    answer = await call(deployment, request, deployment.admin_api_key)
    assert [(s.name, dict(s.labels), s.unit, s.aggregation) for s in answer.series] == [
        ("cpu_usage", {"fleet": "a"}, "percent", "AVG"),
        ("cpu_usage", {"fleet": "b"}, "percent", "AVG"),
        ("memory_usage", {"fleet": "a"}, "percent", "AVG"),
        ("memory_usage", {"fleet": "b"}, "percent", "AVG"),
    ]
    for series in answer.series:
        metric_id = 1 if series.name == "cpu_usage" else 2
        for point in series.points:
            start = point.timestamp.ToDatetime(tzinfo=dt.UTC)
            values = [
                v
                for (full, minute, mid), vs in readings.items()
                if mid == metric_id
                and full[0] == series.labels["fleet"]
                and start <= minute < start + 30 * MINUTE
                for v in vs
            ]
            assert point.sample_count == len(values)
            assert point.value == pytest.approx(math.fsum(values) / len(values), rel=1e-12)
        assert len(series.points) == 4
    everything = [v for (_, _, mid), vs in readings.items() if mid == 1 for v in vs]
    stats = answer.summary.metrics["cpu_usage"]
    assert stats.sample_count == len(everything)
    assert stats.avg == pytest.approx(math.fsum(everything) / len(everything), rel=1e-12)
    assert answer.summary.start_time == moment(T0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric_names": ["cpu"]}, 'metric_names[0]: unknown metric "cpu"; known: cpu_usage'),
        ({"aggregation": "MEAN"}, 'aggregation: unknown aggregation "MEAN"'),
        ({"interval": duration_pb2.Duration(seconds=30)}, "interval: 30s is not allowed"),
        (
            {"interval": duration_pb2.Duration(seconds=60, nanos=1)},
            "interval: 60.000001s is not allowed",
        ),
        ({"start_time": moment(T0 + HOUR)}, "must be before end_time"),
        (
            {"start_time": moment(T0 + HOUR - dt.timedelta(days=30))},
            "interval 60s over 30 days gives 43200 points per series; at most 1440 are "
            "allowed: use an interval of at least 1800s or a shorter window",
        ),
        ({"labels": {"colour": "red"}}, 'labels: unknown key "colour"'),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field(
    deployment: Deployment, fields: dict[str, object], message: str
) -> None:
    request = analytics_pb2.GetMetricsRequest(
        start_time=moment(T0),
        end_time=moment(T0 + HOUR),
        metric_names=["cpu_usage"],
        interval=duration_pb2.Duration(seconds=60),
    )
    for name, value in fields.items():
        if isinstance(value, list):
            del getattr(request, name)[:]
            getattr(request, name).extend(value)
        elif isinstance(value, dict):
            getattr(request, name).update(value)
        elif isinstance(value, str):
            setattr(request, name, value)
        else:
            getattr(request, name).CopyFrom(value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(deployment, request, deployment.admin_api_key)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (refused.value.details() or "")


async def test_a_principal_without_analytics_view_is_refused(
    deployment: Deployment, db: asyncpg.Pool
) -> None:
    async with db.acquire() as conn:
        await insert_device(conn, NewDevice("dev-1", "default", "d", "pi", "1", {}, {}))
    # A device's key: device:heartbeat and device:view, not analytics:view.
    device_key = (await create_api_key(db, "device", "device", device_id="dev-1")).token
    viewer_key = (await create_api_key(db, "viewer", "viewer")).token
    request = analytics_pb2.GetMetricsRequest(metric_names=["cpu_usage"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(deployment, request, device_key)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    answer = await call(deployment, request, viewer_key)
    # No data: no series, and the live counts of ``devices`` at end_time (now).
    assert list(answer.series) == []
    assert (answer.summary.device_count, answer.summary.online_count) == (1, 0)
