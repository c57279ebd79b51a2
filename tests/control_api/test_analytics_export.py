"""ExportData over real gRPC against a running control API: the job and its signed URL,
refusals of bad requests (naming the field), RBAC, the per-caller queue limit, the audit."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from control_api.analytics_export import EXPORT_URL_SECRET
from fleetd.storage.bearer_tokens import create_api_key
from fleetd.storage.postgres import connect
from fleetd.v1 import analytics_pb2, analytics_pb2_grpc
from tests.support.deployment import Deployment, running_deployment
from tests.support.storage import StorageServers, drop_database, fresh_database

URL = re.compile(
    r"^https://127\.0\.0\.1:(\d+)/exports/([0-9a-f-]{36})\?expires=(\d+)&sig=([A-Za-z0-9_-]{43})$"
)


def _stamp(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def seed_request(**changes: object) -> analytics_pb2.ExportDataRequest:
    request = analytics_pb2.ExportDataRequest(
        format=analytics_pb2.CSV,
        data_type=analytics_pb2.DEVICE_METRICS,
        start_time=_stamp("2024-01-01T00:00:00Z"),
        end_time=_stamp("2024-01-31T23:59:59Z"),
        fields=["device_id", "timestamp", "cpu_usage", "memory_usage"],
    )
    for name, value in changes.items():
        if value is None:
            request.ClearField(name)
        elif name == "fields":
            del request.fields[:]
            request.fields.extend(value)  # type: ignore[arg-type]
        elif isinstance(value, Timestamp):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


@pytest.fixture(scope="module")
async def api(servers: StorageServers) -> AsyncIterator[tuple[Deployment, asyncpg.Pool]]:
    url = await fresh_database(servers)
    async with running_deployment(url, servers.redis_url) as dep:
        pool = await connect(url, run_migrations=False)
        try:
            yield dep, pool
        finally:
            await pool.close()
    await drop_database(servers, url)


async def _export(
    dep: Deployment, key: str, request: analytics_pb2.ExportDataRequest
) -> analytics_pb2.ExportDataResponse:
    creds = grpc.ssl_channel_credentials(root_certificates=dep.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{dep.api_port}", creds) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        response: analytics_pb2.ExportDataResponse = await stub.ExportData(
            request, metadata=(("x-api-key", key),), timeout=10
        )
        return response


async def _refusal(
    dep: Deployment, key: str, request: analytics_pb2.ExportDataRequest
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _export(dep, key, request)
    return refused.value


async def test_export_data_queues_a_job_and_answers_a_signed_url(
    api: tuple[Deployment, asyncpg.Pool],
) -> None:
    dep, pool = api
    before = dt.datetime.now(dt.UTC)
    response = await _export(dep, dep.admin_api_key, seed_request())
    match = URL.match(response.export_url)
    assert match is not None, response.export_url
    port, export_id, expires, sig = match.groups()
    # The URL names the host and port the caller reached (its :authority), not the
    # configured default (the test's server was started on port 0).
    assert int(port) == dep.api_port
    assert response.size_bytes == 0
    expires_at = response.expires_at.ToDatetime(tzinfo=dt.UTC)
    assert (
        dt.timedelta(hours=23, minutes=59) < expires_at - before < dt.timedelta(hours=24, minutes=1)
    )
    assert int(expires) == int(expires_at.timestamp())
    key = await pool.fetchval(
        "SELECT secret FROM server_secrets WHERE name = $1", EXPORT_URL_SECRET
    )
    mac = hmac.new(key, f"{export_id}.{expires}".encode(), hashlib.sha256).digest()
    assert sig == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    row = await pool.fetchrow(
        "SELECT state, request FROM export_jobs WHERE export_id = $1", uuid.UUID(export_id)
    )
    assert row is not None and row["state"] == "queued"
    assert row["request"] == {
        "format": "CSV",
        "data_type": "DEVICE_METRICS",
        "fields": ["device_id", "timestamp", "cpu_usage", "memory_usage"],
        "start_time": "2024-01-01T00:00:00+00:00",
        "end_time": "2024-01-31T23:59:59+00:00",
    }
    audited = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE method = $1 AND target = $2",
        "fleetd.v1.AnalyticsService/ExportData",
        export_id,
    )
    assert audited == 1  # the outcome entry names the export (STARTED has no target yet)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"format": analytics_pb2.EXPORT_FORMAT_UNSPECIFIED},
            "format: required; one of CSV, JSONL",
        ),
        ({"data_type": analytics_pb2.DATA_TYPE_UNSPECIFIED}, "data_type: required"),
        (
            {"fields": ["device_id", "cpu", "bogus"]},
            "fields: unknown for DEVICE_METRICS: 'cpu', 'bogus'",
        ),
        ({"start_time": None}, "start_time: required for DEVICE_METRICS"),
        ({"end_time": None}, "end_time: required"),
        ({"end_time": _stamp("2023-12-31T00:00:00Z")}, "end_time: must be after start_time"),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field(
    api: tuple[Deployment, asyncpg.Pool], changes: dict[str, object], says: str
) -> None:
    dep, pool = api
    queued = await pool.fetchval("SELECT count(*) FROM export_jobs")
    refused = await _refusal(dep, dep.admin_api_key, seed_request(**changes))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in (refused.details() or "")
    assert await pool.fetchval("SELECT count(*) FROM export_jobs") == queued


async def test_inventory_needs_no_time_range(api: tuple[Deployment, asyncpg.Pool]) -> None:
    dep, _ = api
    request = seed_request(
        data_type=analytics_pb2.DEVICE_INVENTORY, start_time=None, end_time=None, fields=[]
    )
    assert URL.match((await _export(dep, dep.admin_api_key, request)).export_url)


async def test_a_viewer_may_not_export(api: tuple[Deployment, asyncpg.Pool]) -> None:
    dep, pool = api
    viewer = (await create_api_key(pool, "viewer", "viewer")).token
    refused = await _refusal(dep, viewer, seed_request())
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "analytics:export" in (refused.details() or "")


async def test_a_caller_with_ten_waiting_exports_is_told_to_wait(
    api: tuple[Deployment, asyncpg.Pool],
) -> None:
    dep, _ = api
    operator = (await create_api_key(api[1], "operator", "exporter")).token
    for _ in range(10):
        await _export(dep, operator, seed_request())
    refused = await _refusal(dep, operator, seed_request())
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 10 exports may wait" in (refused.details() or "")
    other = (await create_api_key(api[1], "operator", "other")).token
    assert URL.match((await _export(dep, other, seed_request())).export_url)
