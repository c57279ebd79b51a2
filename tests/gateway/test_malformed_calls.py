"""Malformed calls to the device gateway (issue #14): refused INVALID_ARGUMENT naming the
field before any store sees them, never reported as an outage (which an agent retries for
ever) or answered UNKNOWN with an exception's text; and an unexpected failure is INTERNAL
with a request id. Real mTLS gRPC against the running gateway."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import grpc
import pytest

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.storage.errors import DATA_REFUSED
from tests.support.deployment import Deployment
from tests.support.devices import device_channel, enrol_device

AGENT = "/fleetd.device.v1.AgentService"
INTERNALS = re.compile(r"[A-Z]\w*(?:Error|Exception)\b|asyncpg|Traceback|Unexpected <class")


@pytest.fixture
async def device(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> AsyncIterator[grpc.aio.Channel]:
    """An mTLS channel as the enrolled device rpi-001."""
    creds = await enrol_device(pool, ca, "rpi-001")
    async with device_channel(deployment.gateway_target, deployment.ca_pem, creds) as channel:
        yield channel


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    error = refused.value
    assert not INTERNALS.search(error.details() or ""), error.details()
    return error


async def _raw(channel: grpc.aio.Channel, method: str, body: bytes) -> grpc.aio.AioRpcError:
    call = channel.unary_unary(
        f"{AGENT}/{method}",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    return await _refused(call(body, timeout=10))


def _invalid(error: grpc.aio.AioRpcError, details: str) -> None:
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, details)


# --- Register ---------------------------------------------------------------------------


async def test_nul_in_register_metadata_is_invalid_argument_not_unavailable(
    device: grpc.aio.Channel, pool: asyncpg.Pool
) -> None:
    stub = agent_pb2_grpc.AgentServiceStub(device)
    key = await _refused(stub.Register(agent_pb2.RegisterRequest(metadata={"k\x00": "v"})))
    _invalid(key, "metadata key 'k\\x00' must not contain NUL characters")
    value = await _refused(stub.Register(agent_pb2.RegisterRequest(metadata={"k": "v\x00"})))
    _invalid(value, "metadata['k'] must not contain NUL characters")
    stored = await pool.fetchval("SELECT metadata::text FROM devices WHERE device_id = 'rpi-001'")
    assert stored == "{}"


@pytest.mark.parametrize(
    ("request_fields", "details"),
    [
        ({"device_type": "pi\x00"}, "device_type must not contain NUL characters"),
        ({"tags": ["ok", "t\x00"]}, "tags[1] must not contain NUL characters"),
        (
            {"hardware": agent_pb2.HardwareProfile(hostname="h\x00")},
            "hardware.hostname must not contain NUL characters",
        ),
        (
            {"hardware": agent_pb2.HardwareProfile(disk_gb=float("nan"))},
            "hardware.disk_gb must be a finite number",
        ),
        (
            {"hardware": agent_pb2.HardwareProfile(memory_mb=-1)},
            "hardware.memory_mb must be between 0 and 1099511627776",
        ),
    ],
)
async def test_bad_register_fields_are_invalid_argument_not_unavailable(
    device: grpc.aio.Channel, request_fields: dict[str, Any], details: str
) -> None:
    stub = agent_pb2_grpc.AgentServiceStub(device)
    _invalid(await _refused(stub.Register(agent_pb2.RegisterRequest(**request_fields))), details)


# --- undecodable messages ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["Register", "Heartbeat", "ReportArtifactStatus"])
async def test_undecodable_protobuf_is_invalid_argument_not_unknown(
    device: grpc.aio.Channel, method: str
) -> None:
    refused = await _raw(device, method, b"\xff\xff\xff\xff")
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details() == (
        f"the request is not a valid fleetd.device.v1.{method}Request: "
        "its protobuf wire format is corrupt"
    )


async def test_invalid_utf8_is_invalid_argument(device: grpc.aio.Channel) -> None:
    # RegisterRequest field 2 (device_type), two bytes that are not UTF-8.
    refused = await _raw(device, "Register", b"\x12\x02\xff\xfe")
    _invalid(
        refused,
        "the request is not a valid fleetd.device.v1.RegisterRequest: "
        "a string in it is not valid UTF-8",
    )


# --- heartbeats -------------------------------------------------------------------------


async def test_nan_in_heartbeat_stats_is_invalid_argument(device: grpc.aio.Channel) -> None:
    stub = agent_pb2_grpc.AgentServiceStub(device)
    beat = agent_pb2.HeartbeatRequest(stats=agent_pb2.DeviceStats(cpu_percent=float("inf")))
    _invalid(await _refused(stub.Heartbeat(beat)), "stats.cpu_percent must be a finite number")
    # The device is not broken for it: a valid beat is answered.
    assert (await stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)).server_time.seconds


async def test_malformed_message_in_heartbeat_stream_ends_it_invalid_argument(
    device: grpc.aio.Channel,
) -> None:
    good = agent_pb2.HeartbeatStreamRequest(heartbeat=agent_pb2.HeartbeatRequest())
    bad = agent_pb2.HeartbeatStreamRequest(heartbeat=agent_pb2.HeartbeatRequest(boot_id="b\x00"))
    stub = agent_pb2_grpc.AgentServiceStub(device)
    stream = stub.HeartbeatStream(iter([good, bad]), timeout=10)
    answers: list[agent_pb2.HeartbeatStreamResponse] = []

    async def read() -> None:
        async for answer in stream:
            answers.append(answer)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await read()
    assert len(answers) == 1  # the good beat was answered, then the stream refused
    _invalid(refused.value, "heartbeat.boot_id must not contain NUL characters")


# --- UploadLogs -------------------------------------------------------------------------


def _upload(channel: grpc.aio.Channel, messages: Sequence[agent_pb2.UploadLogsRequest]) -> Any:
    return agent_pb2_grpc.AgentServiceStub(channel).UploadLogs(iter(messages), timeout=10)


async def test_nul_in_upload_logs_request_id_is_invalid_argument_not_unknown(
    device: grpc.aio.Channel,
) -> None:
    header = agent_pb2.UploadLogsRequest(
        header=agent_pb2.LogBundleHeader(log_request_id="lr\x00", content_encoding="gzip")
    )
    refused = await _refused(_upload(device, [header]))
    _invalid(refused, "header.log_request_id must not contain NUL characters")


# --- errors the request did not cause ---------------------------------------------------


async def test_a_value_the_database_refuses_is_invalid_argument_not_unavailable(
    device: grpc.aio.Channel, pool: asyncpg.Pool
) -> None:
    await pool.execute(
        """CREATE FUNCTION devices_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'secret detail of devices_refuse'
                     USING ERRCODE = '22023'; END; $$;
           CREATE TRIGGER devices_refuse BEFORE UPDATE ON devices
               FOR EACH ROW EXECUTE FUNCTION devices_refuse();"""
    )
    stub = agent_pb2_grpc.AgentServiceStub(device)
    refused = await _refused(stub.Register(agent_pb2.RegisterRequest(device_type="pi")))
    _invalid(refused, DATA_REFUSED)


async def test_unexpected_error_is_internal_with_request_id_and_no_exception_text(
    device: grpc.aio.Channel, pool: asyncpg.Pool
) -> None:
    await pool.execute("ALTER TABLE log_requests RENAME TO log_requests_hidden")
    header = agent_pb2.UploadLogsRequest(
        header=agent_pb2.LogBundleHeader(log_request_id="lr-1", content_encoding="gzip")
    )
    failed = await _refused(_upload(device, [header]))
    assert failed.code() == grpc.StatusCode.INTERNAL
    assert re.fullmatch(
        r"internal error \(request id [0-9a-f]{16}\); quote it to the operator",
        failed.details() or "",
    ), failed.details()
