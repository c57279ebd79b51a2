"""The heartbeat's answer: unchanged from Redis, the desired state when it changed."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.storage import redis_keys
from fleetd.storage.desired import bump_revisions, mark_changed
from gateway.desired_state import DesiredStateLookup
from tests.support.deployment import Deployment
from tests.support.desired import assign, model_assignment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device


def _stub(dep: Deployment, creds: DeviceCredentials) -> agent_pb2_grpc.AgentServiceStub:
    return agent_pb2_grpc.AgentServiceStub(device_channel(dep.gateway_target, dep.ca_pem, creds))


async def test_new_device_at_revision_zero_is_unchanged(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    response = await _stub(deployment, creds).Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)
    assert response.unchanged
    assert not response.HasField("desired_state")
    assert response.next_heartbeat_interval.ToNanoseconds() > 0


async def test_assignment_reaches_the_device_then_unchanged_without_postgres(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = _stub(deployment, creds)
    await stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)
    revision = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))

    changed = await stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)
    assert not changed.unchanged
    assert changed.desired_state.revision == revision
    assert [a.version for a in changed.desired_state.assignments] == ["2.0.0"]

    loads = deployment.gateway.desired.postgres_loads
    for _ in range(3):
        same = await stub.Heartbeat(
            agent_pb2.HeartbeatRequest(desired_state_revision=revision), timeout=5
        )
        assert same.unchanged and not same.HasField("desired_state")
    assert deployment.gateway.desired.postgres_loads == loads  # answered from Redis


async def test_a_newer_assignment_supersedes_and_bumps_the_revision(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = _stub(deployment, creds)
    first = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))
    await assign(pool, redis, "rpi-001", model_assignment("labels", "1.0.0"))
    second = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.1.0"))
    assert second == first + 2
    response = await stub.Heartbeat(
        agent_pb2.HeartbeatRequest(desired_state_revision=first), timeout=5
    )
    assert response.desired_state.revision == second
    assert sorted((a.name, a.version) for a in response.desired_state.assignments) == [
        ("detector", "2.1.0"),
        ("labels", "1.0.0"),
    ]


async def test_cache_lost_in_redis_is_rebuilt_from_postgres(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = _stub(deployment, creds)
    revision = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))
    await redis.flushdb()
    response = await stub.Heartbeat(
        agent_pb2.HeartbeatRequest(desired_state_revision=revision), timeout=5
    )
    assert response.unchanged
    assert await redis.hget(redis_keys.desired_state("rpi-001"), "rev") == str(revision).encode()


async def test_a_stale_fill_never_overwrites_a_newer_revision(
    pool: asyncpg.Pool, redis: aioredis.Redis, ca: CertificateAuthority
) -> None:
    await enrol_device(pool, ca, "rpi-001")
    lookup = DesiredStateLookup(redis, pool)
    await lookup.answer("rpi-001", 0)  # fills revision 0
    # A writer bumps to 1 and marks it, then a slow reader that loaded revision 0 fills.
    revisions = await bump_revisions(pool, ["rpi-001"])
    await mark_changed(redis, revisions)
    await lookup._fill_cache([("rpi-001", 0, b"")])
    assert await redis.hget(redis_keys.desired_state("rpi-001"), "rev") == b"1"
    answer = await lookup.answer("rpi-001", 0)
    assert not answer.unchanged


async def test_lookups_in_one_loop_iteration_share_one_batch(
    pool: asyncpg.Pool, redis: aioredis.Redis, ca: CertificateAuthority
) -> None:
    for n in range(20):
        await enrol_device(pool, ca, f"rpi-{n:03d}")
    lookup = DesiredStateLookup(redis, pool)
    answers = await asyncio.gather(*(lookup.answer(f"rpi-{n:03d}", 0) for n in range(20)))
    assert all(a.unchanged for a in answers)
    assert lookup.postgres_loads == 20
    answers = await asyncio.gather(*(lookup.answer(f"rpi-{n:03d}", 0) for n in range(20)))
    assert lookup.redis_hits == 20


async def test_pending_log_requests_are_carried_until_fulfilled(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO log_requests (log_request_id, device_id, source, max_bytes, expires_at)
               VALUES ('lr-1', 'rpi-001', 'agent_journal', 65536, now() + interval '1 hour')"""
        )
        revisions = await bump_revisions(conn, ["rpi-001"])
    await mark_changed(redis, revisions)
    response = await _stub(deployment, creds).Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)
    assert [r.log_request_id for r in response.log_requests] == ["lr-1"]
    assert response.log_requests[0].source == agent_pb2.LOG_SOURCE_AGENT_JOURNAL
    assert response.log_requests[0].max_bytes == 65536


async def test_unchanged_answers_skip_redis_until_a_change_is_announced(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    await asyncio.wait_for(deployment.gateway.pushes.subscribed.wait(), 5)
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = _stub(deployment, creds)
    lookup = deployment.gateway.desired
    await stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)  # verified once
    asked = lookup.redis_hits + lookup.postgres_loads
    for _ in range(3):
        assert (await stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)).unchanged
    assert lookup.redis_hits + lookup.postgres_loads == asked
    revision = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))
    for _ in range(100):  # the notice crosses Redis pub/sub
        response = await stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)
        if not response.unchanged:
            break
        await asyncio.sleep(0.02)
    assert response.desired_state.revision == revision
