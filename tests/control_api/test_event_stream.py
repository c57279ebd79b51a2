"""DeviceService/StreamEvents over gRPC on the real API, events published to real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from control_api.event_stream import MAX_STREAMS_PER_CALLER
from fleetd.storage import events
from fleetd.storage.bearer_tokens import create_api_key
from fleetd.v1 import device_pb2, device_pb2_grpc, update_pb2
from tests.support.deployment import Deployment, running_deployment
from tests.support.http import connect_json

Stream = Any  # grpc.aio.UnaryStreamCall[StreamEventsRequest, StreamEventsResponse]


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


@pytest.fixture
async def stub(deployment: Deployment) -> AsyncIterator[device_pb2_grpc.DeviceServiceStub]:
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds) as channel:
        yield device_pb2_grpc.DeviceServiceStub(channel)


def _open(stub: device_pb2_grpc.DeviceServiceStub, api_key: str, **request: Any) -> Stream:
    return stub.StreamEvents(
        device_pb2.StreamEventsRequest(**request), metadata=(("x-api-key", api_key),), timeout=30
    )


async def _next(call: Stream) -> device_pb2.StreamEventsResponse:
    response: device_pb2.StreamEventsResponse = await asyncio.wait_for(call.read(), timeout=10)
    assert isinstance(response, device_pb2.StreamEventsResponse), "the stream ended"
    return response


async def _call(dep: Deployment, method: str, body: dict[str, Any]) -> None:
    response = await connect_json(
        dep.api_endpoint,
        f"fleetd.v1.DeviceService/{method}",
        body,
        ca_pem=dep.ca_pem,
        api_key=dep.admin_api_key,
    )
    assert response.status == 200, response.body


async def test_status_changes_are_streamed_with_their_payload_and_other_types_skipped(
    deployment: Deployment, stub: device_pb2_grpc.DeviceServiceStub, redis: aioredis.Redis
) -> None:
    await events.publish(
        redis,
        "default",
        [
            events.Event(events.REGISTERED, "rpi-001", 100.0),
            events.Event(
                events.OFFLINE, "rpi-001", 200.5, {"previous": "online", "last_seen": "110.0"}
            ),
            events.Event("device.rebooted", "rpi-001", 201.0),  # unknown: skipped
            events.Event(events.ONLINE, "rpi-002", 202.0),
        ],
    )
    call = _open(stub, deployment.admin_api_key, events=["status_change"], resume_after="0-0")
    offline, online = await _next(call), await _next(call)
    call.cancel()
    assert (offline.type, offline.device_id) == ("status_change", "rpi-001")
    assert offline.status_change.state == device_pb2.OFFLINE
    assert offline.status_change.previous_state == device_pb2.ONLINE
    assert offline.status_change.last_seen.seconds == 110
    assert offline.timestamp.ToNanoseconds() == 200_500_000_000
    assert (online.device_id, online.status_change.state) == ("rpi-002", device_pb2.ONLINE)
    assert offline.event_id < online.event_id


async def test_a_stream_without_resume_after_starts_at_now(
    deployment: Deployment, stub: device_pb2_grpc.DeviceServiceStub, redis: aioredis.Redis
) -> None:
    await events.publish(redis, "default", [events.Event(events.ONLINE, "old", 1.0)])
    call = _open(stub, deployment.admin_api_key)
    read = asyncio.ensure_future(_next(call))
    for _ in range(50):  # the stream starts at some point after the call: publish until seen
        await events.publish(redis, "default", [events.Event(events.ONLINE, "new", 2.0)])
        await asyncio.wait({read}, timeout=0.2)
        if read.done():
            break
    first = await read
    call.cancel()
    assert first.device_id == "new"


async def test_device_filter_selects_events_by_the_devices_fields(
    deployment: Deployment, stub: device_pb2_grpc.DeviceServiceStub, redis: aioredis.Redis
) -> None:
    await _call(deployment, "RegisterDevice", {"device_id": "pi", "device_type": "raspberry-pi"})
    await _call(deployment, "RegisterDevice", {"device_id": "esp", "device_type": "esp32"})
    call = _open(
        stub,
        deployment.admin_api_key,
        device_filter="type:raspberry-pi AND status:offline",
        events=["status_change"],
        resume_after="0-0",
    )
    await events.publish(
        redis,
        "default",
        [
            events.Event(events.OFFLINE, "esp", 1.0),
            events.Event(events.ONLINE, "pi", 2.0),  # status:online: no match
            events.Event(events.OFFLINE, "unknown-device", 3.0),
            events.Event(events.OFFLINE, "pi", 4.0),
        ],
    )
    only = await _next(call)
    call.cancel()
    assert (only.device_id, only.timestamp.seconds) == ("pi", 4)


async def test_the_apis_own_changes_are_streamed(
    deployment: Deployment, stub: device_pb2_grpc.DeviceServiceStub, pool: asyncpg.Pool
) -> None:
    call = _open(stub, deployment.admin_api_key, resume_after="0-0")
    await _call(deployment, "RegisterDevice", {"device_id": "rpi-001", "device_name": "Pi"})
    await _call(
        deployment,
        "UpdateDevice",
        {"device_id": "rpi-001", "update_mask": "name", "device": {"name": "Lab Pi"}},
    )
    await pool.execute(
        """INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version, spec,
                                    state)
           VALUES ('asg-1', 'rpi-001', 'deploy-001', 'firmware', '2.0.0', '', 'applying')"""
    )
    await _call(deployment, "DeleteDevice", {"device_id": "rpi-001", "force": True})
    received = [await _next(call) for _ in range(4)]
    call.cancel()
    assert [r.type for r in received] == ["registered", "updated", "deployment", "deleted"]
    assert {r.device_id for r in received} == {"rpi-001"}
    assert received[0].device.name == "Pi"
    assert received[1].device.name == "Lab Pi"
    deployment_event = received[2].deployment
    assert deployment_event.deployment_id == "deploy-001"
    assert deployment_event.status.assignment_id == "asg-1"
    assert deployment_event.status.state == update_pb2.DeviceDeploymentStatus.CANCELLED
    assert deployment_event.status.reason == "DEVICE_DELETED"


async def test_resume_after_continues_after_the_given_event(
    deployment: Deployment, stub: device_pb2_grpc.DeviceServiceStub, redis: aioredis.Redis
) -> None:
    await events.publish(
        redis, "default", [events.Event(events.ONLINE, f"d{i}", float(i)) for i in range(3)]
    )
    first = _open(stub, deployment.admin_api_key, resume_after="0-0")
    seen = await _next(first)
    first.cancel()
    resumed = _open(stub, deployment.admin_api_key, resume_after=seen.event_id)
    assert [(await _next(resumed)).device_id for _ in range(2)] == ["d1", "d2"]
    resumed.cancel()


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"events": ["status_change", "reboot"]}, "unknown type(s) 'reboot'"),
        ({"device_filter": "colour:red"}, "device_filter: unknown field"),
        ({"resume_after": "yesterday"}, "resume_after"),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_problem(
    deployment: Deployment,
    stub: device_pb2_grpc.DeviceServiceStub,
    request_fields: dict[str, Any],
    message: str,
) -> None:
    call = _open(stub, deployment.admin_api_key, **request_fields)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _next(call)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


async def test_viewers_may_stream_and_devices_may_not(
    deployment: Deployment,
    stub: device_pb2_grpc.DeviceServiceStub,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
) -> None:
    await events.publish(redis, "default", [events.Event(events.ONLINE, "rpi-001", 1.0)])
    viewer = await create_api_key(pool, "viewer", "viewer", created_by="test")
    call = _open(stub, viewer.token, resume_after="0-0")
    assert (await _next(call)).device_id == "rpi-001"
    call.cancel()
    await _call(deployment, "RegisterDevice", {"device_id": "rpi-001"})
    device_key = await create_api_key(
        pool, "device", "device", device_id="rpi-001", created_by="test"
    )
    denied = _open(stub, device_key.token, resume_after="0-0")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _next(denied)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_concurrent_streams_per_caller_are_bounded_and_cancelling_frees_a_slot(
    deployment: Deployment, stub: device_pb2_grpc.DeviceServiceStub, redis: aioredis.Redis
) -> None:
    await events.publish(redis, "default", [events.Event(events.ONLINE, "rpi-001", 1.0)])
    key = deployment.admin_api_key
    streams = [_open(stub, key, resume_after="0-0") for _ in range(MAX_STREAMS_PER_CALLER)]
    for call in streams:
        await _next(call)  # each stream is running (holds its slot)
    over = _open(stub, key, resume_after="0-0")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _next(over)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    streams.pop().cancel()
    for _ in range(50):  # the server sees the cancellation and releases the slot
        again = _open(stub, key, resume_after="0-0")
        try:
            await _next(again)
            break
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        if code != grpc.StatusCode.RESOURCE_EXHAUSTED:
            pytest.fail(f"expected RESOURCE_EXHAUSTED while the slot is held, got {code}")
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the cancelled stream's slot was never released")
    again.cancel()
    for call in streams:
        call.cancel()
