"""Online/offline transitions: events from flushes and from the leased sweeper."""

from __future__ import annotations

import time

import asyncpg
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.domain.analytics import metrics
from fleetd.services.pki import CertificateAuthority
from fleetd.storage import redis_keys
from gateway.liveness import LivenessSweeper
from tests.support.deployment import Deployment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device
from tests.support.waiting import until

FLEET = "default"


async def _heartbeat(dep: Deployment, creds: DeviceCredentials) -> None:
    stub = agent_pb2_grpc.AgentServiceStub(device_channel(dep.gateway_target, dep.ca_pem, creds))
    await stub.Heartbeat(agent_pb2.HeartbeatRequest(), timeout=5)


async def _events(redis: aioredis.Redis) -> list[tuple[str, str]]:
    entries = await redis.xrange(redis_keys.events(FLEET))
    return [(_text(f, b"type"), _text(f, b"device_id")) for _, f in entries or ()]


def _text(fields: dict[bytes | str, bytes | str] | None, name: bytes) -> str:
    assert fields is not None
    value = fields[name]
    return value.decode() if isinstance(value, bytes) else value


async def test_first_heartbeat_announces_the_device_online_once(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    await _heartbeat(deployment, creds)
    await until(lambda: _has_events(redis, 1), within=5.0)
    await _heartbeat(deployment, creds)
    await _settle(deployment)
    assert await _events(redis) == [("device.online", "rpi-001")]


async def _settle(dep: Deployment) -> None:
    """Stop the pipeline's background flushes (a flush in flight could land after the
    test's own writes) and flush what is pending: from here on the test flushes."""
    await dep.gateway.pipeline.close()


async def _has_events(redis: aioredis.Redis, count: int) -> bool:
    return len(await _events(redis)) >= count


async def test_silent_device_goes_offline_then_online_again(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    quiet = await enrol_device(pool, ca, "rpi-002")
    await _heartbeat(deployment, creds)
    await _heartbeat(deployment, quiet)
    await _settle(deployment)
    sweeper = LivenessSweeper(FLEET, redis, pool, offline_after=30.0)
    assert (await sweeper.sweep()).offline == []

    # rpi-001 heartbeats "later"; 31 s after both, only rpi-002 has been silent too long.
    await redis.zadd(redis_keys.last_seen(FLEET), {"rpi-001": time.time() + 20})
    result = await sweeper.sweep(now=time.time() + 31)
    assert result.offline == ["rpi-002"]
    statuses = {r["device_id"]: r["status"] for r in await pool.fetch("SELECT * FROM devices")}
    assert statuses == {"rpi-001": "online", "rpi-002": "offline"}
    assert await redis.zscore(redis_keys.last_seen(FLEET), "rpi-002") is None
    assert (await _events(redis))[-1] == ("device.offline", "rpi-002")

    await _heartbeat(deployment, quiet)
    await _settle(deployment)
    assert (await _events(redis))[-1] == ("device.online", "rpi-002")
    status = await pool.fetchval("SELECT status FROM devices WHERE device_id = 'rpi-002'")
    assert status == "online"


async def test_one_sweeper_holds_the_lease_at_a_time(
    pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    first = LivenessSweeper(FLEET, redis, pool, offline_after=30.0)
    second = LivenessSweeper(FLEET, redis, pool, offline_after=30.0)
    assert await first.hold_lease()
    assert not await second.hold_lease()
    assert await first.hold_lease()  # renewal
    await first.close()  # releases
    assert await second.hold_lease()
    await second.close()


async def test_backstop_catches_devices_redis_forgot(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    await _heartbeat(deployment, creds)
    await _settle(deployment)
    await redis.flushdb()  # Redis lost its data
    sweeper = LivenessSweeper(FLEET, redis, pool, offline_after=30.0)
    assert (await sweeper.sweep(now=time.time() + 60)).offline == []
    assert await sweeper.backstop(now=time.time() + 60) == ["rpi-001"]
    assert await _events(redis) == [("device.offline", "rpi-001")]
    assert await pool.fetchval("SELECT status FROM devices") == "offline"


async def test_rollups_reach_postgres_per_minute_and_group(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    for n, cpu in ((1, 20.0), (2, 60.0)):
        creds = await enrol_device(pool, ca, f"rpi-00{n}")
        stub = agent_pb2_grpc.AgentServiceStub(
            device_channel(deployment.gateway_target, deployment.ca_pem, creds)
        )
        await stub.Heartbeat(
            agent_pb2.HeartbeatRequest(stats=agent_pb2.DeviceStats(cpu_percent=cpu)), timeout=5
        )
    await _settle(deployment)
    row = await pool.fetchrow(
        """SELECT sum(count) AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
                  count(DISTINCT fleet) AS fleets, min(fleet) AS fleet
           FROM metric_rollup_partials
           WHERE device_type = 'raspberry-pi' AND version = '1.0' AND metric = $1""",
        metrics.BY_NAME["cpu_usage"].metric_id,
    )
    assert row is not None
    assert (row["count"], row["sum"], row["min"], row["max"]) == (2, 80.0, 20.0, 60.0)
    assert (row["fleets"], row["fleet"]) == (1, FLEET)
