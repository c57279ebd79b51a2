"""HeartbeatStream: Heartbeat's answers on one stream, plus pushes when the state changes."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from gateway.server import start_gateway
from tests.support.deployment import Deployment
from tests.support.desired import assign, model_assignment
from tests.support.devices import device_channel, enrol_device


def _beat(revision: int = 0) -> agent_pb2.HeartbeatStreamRequest:
    return agent_pb2.HeartbeatStreamRequest(
        heartbeat=agent_pb2.HeartbeatRequest(
            desired_state_revision=revision, stats=agent_pb2.DeviceStats(cpu_percent=5.0)
        )
    )


async def _read(call: object) -> agent_pb2.HeartbeatStreamResponse:
    message = await call.read()  # type: ignore[attr-defined]
    assert isinstance(message, agent_pb2.HeartbeatStreamResponse), message
    return message


async def test_each_beat_is_answered_on_the_stream(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = agent_pb2_grpc.AgentServiceStub(
        device_channel(deployment.gateway_target, deployment.ca_pem, creds)
    )
    call = stub.HeartbeatStream(timeout=30)
    for _ in range(3):
        await call.write(_beat())
        answer = await _read(call)
        assert not answer.pushed
        assert answer.heartbeat.unchanged
        assert answer.heartbeat.next_heartbeat_interval.ToNanoseconds() > 0
    revision = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))
    # The change is pushed without a beat...
    pushed = await asyncio.wait_for(_read(call), 10)
    assert pushed.pushed
    assert pushed.heartbeat.desired_state.revision == revision
    assert [a.name for a in pushed.heartbeat.desired_state.assignments] == ["detector"]
    # ...and a beat holding it is unchanged.
    await call.write(_beat(revision))
    assert (await _read(call)).heartbeat.unchanged
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK
    await _until_stored(pool)


async def _until_stored(pool: asyncpg.Pool) -> None:
    for _ in range(100):
        if await pool.fetchval("SELECT cpu_usage FROM devices WHERE device_id = 'rpi-001'"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("stream heartbeats never reached PostgreSQL")


async def test_a_stream_from_an_unknown_certificate_is_refused(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-009", register=False)
    stub = agent_pb2_grpc.AgentServiceStub(
        device_channel(deployment.gateway_target, deployment.ca_pem, creds)
    )
    call = stub.HeartbeatStream(timeout=10)
    await call.write(_beat())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_newest_stream_of_a_device_gets_the_pushes(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    calls = []
    for _ in range(2):
        stub = agent_pb2_grpc.AgentServiceStub(
            device_channel(deployment.gateway_target, deployment.ca_pem, creds)
        )
        call = stub.HeartbeatStream(timeout=30)
        await call.write(_beat())
        assert (await _read(call)).heartbeat.unchanged
        calls.append(call)
    assert deployment.gateway.pushes.subscribed.is_set()
    await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))
    pushed = await asyncio.wait_for(_read(calls[1]), 10)
    assert pushed.pushed and pushed.heartbeat.HasField("desired_state")
    assert deployment.gateway.pushes.notices == 1
    for call in calls:
        call.cancel()


async def test_a_stream_answers_unchanged_without_redis_until_a_notice(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    await asyncio.wait_for(deployment.gateway.pushes.subscribed.wait(), 5)
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = agent_pb2_grpc.AgentServiceStub(
        device_channel(deployment.gateway_target, deployment.ca_pem, creds)
    )
    desired = deployment.gateway.desired

    def lookups() -> int:
        return desired.redis_hits + desired.postgres_loads

    call = stub.HeartbeatStream(timeout=30)
    await call.write(_beat())
    assert (await _read(call)).heartbeat.unchanged  # verified in Redis (or PostgreSQL)
    before = lookups()
    for _ in range(3):
        await call.write(_beat())
        assert (await _read(call)).heartbeat.unchanged
    assert lookups() == before  # answered from the stream's own verification
    # A change is published: the notice invalidates, the push carries the new state...
    revision = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))
    pushed = await asyncio.wait_for(_read(call), 10)
    assert pushed.pushed and pushed.heartbeat.desired_state.revision == revision
    # ...a beat still holding the old revision is asked about again, never told unchanged.
    await call.write(_beat(0))
    stale = await _read(call)
    assert not stale.heartbeat.unchanged
    assert stale.heartbeat.desired_state.revision == revision
    call.cancel()


async def test_a_draining_gateway_ends_open_streams_with_unavailable(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    """SIGTERM's drain ends streams with a status agents retry, not CANCELLED (which a
    reconnect storm would otherwise count as errors)."""
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = agent_pb2_grpc.AgentServiceStub(
        device_channel(deployment.gateway_target, deployment.ca_pem, creds)
    )
    idle = stub.HeartbeatStream(timeout=30)
    await idle.write(_beat())
    await _read(idle)
    await deployment.gateway.stop(grace=5.0)
    assert await idle.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in (await idle.details() or "")
    deployment.gateway = await start_gateway(deployment.settings, port=deployment.gateway.port)
