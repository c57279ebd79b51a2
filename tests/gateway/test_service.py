"""The device API over real mTLS against a real gateway, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from typing import cast

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from core_ext import Flush
from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.storage import redis_keys
from fleetd.storage.devices import offboard_device
from fleetd.v1.device_pb2 import ONLINE
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device
from tests.support.http import connect_json


def _stub(dep: Deployment, creds: DeviceCredentials | None) -> agent_pb2_grpc.AgentServiceStub:
    return agent_pb2_grpc.AgentServiceStub(device_channel(dep.gateway_target, dep.ca_pem, creds))


def _heartbeat(cpu: float = 12.5) -> agent_pb2.HeartbeatRequest:
    return agent_pb2.HeartbeatRequest(
        stats=agent_pb2.DeviceStats(
            cpu_percent=cpu, memory_percent=40.0, disk_percent=10.0, uptime_seconds=3600
        )
    )


async def _wait_for(predicate_query: str, pool: asyncpg.Pool, *args: object) -> object:
    for _ in range(100):
        value = await pool.fetchval(predicate_query, *args)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {predicate_query}")


async def test_heartbeat_reaches_redis_and_postgres(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    response = await _stub(deployment, creds).Heartbeat(_heartbeat(), timeout=5)
    assert response.unchanged
    assert not response.offboarded
    interval = response.next_heartbeat_interval.ToTimedelta().total_seconds()
    assert 0.9 <= interval <= 1.1  # 1 s configured, jittered +/- 10 %
    await _wait_for(
        "SELECT last_seen IS NOT NULL AND status = 'online' FROM devices WHERE device_id = $1",
        pool,
        "rpi-001",
    )
    assert await pool.fetchval("SELECT cpu_usage FROM devices") == pytest.approx(12.5)
    for _ in range(50):
        score = await redis.zscore(redis_keys.last_seen("default"), "rpi-001")
        if score is not None:
            break
        await asyncio.sleep(0.02)
    assert score is not None
    stats = await redis.hgetall(redis_keys.device_stats("rpi-001"))
    assert float(stats[b"cpu"]) == pytest.approx(12.5)


async def test_heartbeat_is_rolled_up_under_the_devices_type_and_version(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    flushes: list[Flush] = []
    deployment.gateway.pipeline.on_flush = flushes.append
    creds = await enrol_device(pool, ca, "rpi-001")  # raspberry-pi, version 1.0
    await _stub(deployment, creds).Heartbeat(_heartbeat(cpu=42.0), timeout=5)
    for _ in range(100):
        if flushes:
            break
        await asyncio.sleep(0.02)
    [flush] = flushes
    cpu = [r for r in flush.rollups if r[3] == "cpu_usage"]
    assert [r[1:8] for r in cpu] == [("raspberry-pi", "1.0", "cpu_usage", 1, 42.0, 42.0, 42.0)]
    assert flush.transitions == [("rpi-001", -1, ONLINE)]


async def test_client_without_certificate_cannot_reach_the_gateway(
    deployment: Deployment,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(deployment, None).Heartbeat(_heartbeat(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_certificate_from_another_ca_cannot_reach_the_gateway(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    rogue_ca = CertificateAuthority.create("default")
    creds = await enrol_device(pool, rogue_ca, "rpi-001", register=False)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(deployment, creds).Heartbeat(_heartbeat(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_certificate_never_recorded_by_fleetd_is_refused(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "ghost", register=False)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(deployment, creds).Heartbeat(_heartbeat(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_revoked_certificate_is_refused(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    await pool.execute("UPDATE device_certificates SET revoked_at = now()")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(deployment, creds).Heartbeat(_heartbeat(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (err.value.details() or "")


async def test_a_device_heartbeats_only_as_itself(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    alice = await enrol_device(pool, ca, "alice")
    await enrol_device(pool, ca, "bob")
    # The request carries no identity at all; metadata naming another device is ignored.
    await _stub(deployment, alice).Heartbeat(
        _heartbeat(cpu=77.0), metadata=(("x-device-id", "bob"),), timeout=5
    )
    await _wait_for("SELECT last_seen FROM devices WHERE device_id = 'alice'", pool)
    await asyncio.sleep(0.3)
    assert await pool.fetchval("SELECT last_seen FROM devices WHERE device_id = 'bob'") is None
    assert "device_id" not in agent_pb2.HeartbeatRequest.DESCRIPTOR.fields_by_name


async def test_register_is_idempotent_and_refreshes_profile(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = _stub(deployment, creds)
    first = await stub.Register(
        agent_pb2.RegisterRequest(agent_version="0.1.0", tags=["a"]), timeout=5
    )
    second = await stub.Register(
        agent_pb2.RegisterRequest(
            agent_version="0.2.0",
            tags=["b", "c"],
            hardware=agent_pb2.HardwareProfile(arch="aarch64", cpu_cores=4),
        ),
        timeout=5,
    )
    assert first.device_id == second.device_id == "rpi-001"
    assert first.registered_at == second.registered_at
    row = await pool.fetchrow("SELECT agent_version, tags, system_info FROM devices")
    assert row is not None
    assert row["agent_version"] == "0.2.0"
    assert row["tags"] == ["b", "c"]
    assert row["system_info"]["arch"] == "aarch64"
    assert await pool.fetchval("SELECT count(*) FROM devices") == 1


@pytest.mark.parametrize(
    "stats",
    [
        agent_pb2.DeviceStats(cpu_percent=float("nan")),
        agent_pb2.DeviceStats(cpu_percent=101.0),
        agent_pb2.DeviceStats(memory_percent=-1.0),
        agent_pb2.DeviceStats(uptime_seconds=-5),
    ],
)
async def test_out_of_range_stats_are_invalid_argument(
    deployment: Deployment,
    ca: CertificateAuthority,
    pool: asyncpg.Pool,
    stats: agent_pb2.DeviceStats,
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(deployment, creds).Heartbeat(agent_pb2.HeartbeatRequest(stats=stats), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_too_many_tags_are_invalid_argument(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(deployment, creds).Register(
            agent_pb2.RegisterRequest(tags=[f"t{i}" for i in range(100)]), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_offboarded_device_is_told_so_once_then_refused(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    # What DeleteDevice does: offboard, which also revokes the device's certificates.
    async with pool.acquire() as conn:
        assert await offboard_device(conn, "rpi-001", "deleted by operator") is not None
    stub = _stub(deployment, creds)
    response = await stub.Heartbeat(_heartbeat(), timeout=5)
    assert response.offboarded
    for call in (
        stub.Heartbeat(_heartbeat(), timeout=5),
        stub.Register(agent_pb2.RegisterRequest(), timeout=5),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "offboarded" in (err.value.details() or "")


async def test_heartbeats_too_fast_are_pushed_back(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    creds = await enrol_device(pool, ca, "rpi-001")
    stub = _stub(deployment, creds)
    rate, burst = deployment.settings.gateway_device_limit() or (0.0, 0)
    assert burst == 10
    refused = None
    for _ in range(burst + 5):
        try:
            await stub.Heartbeat(_heartbeat(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            refused = exc
            break
    assert refused is not None
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # (key, value) pairs at run time, whatever the stubs say
    trailers = dict(cast("tuple[tuple[str, str], ...]", refused.trailing_metadata() or ()))
    pushback = trailers["grpc-retry-pushback-ms"]
    assert 0 < int(pushback) <= 1000 / rate + 1
    other = await enrol_device(pool, ca, "rpi-002")  # limits are per device
    assert (await _stub(deployment, other).Heartbeat(_heartbeat(), timeout=5)).unchanged


async def test_delete_over_the_api_reaches_a_cached_standing_at_once(
    database_url: str, redis_url: str, pool: asyncpg.Pool
) -> None:
    """The gateway caches a certificate's standing for minutes; DeleteDevice's revocation
    notice makes the very next heartbeat see the offboarding anyway."""
    async with running_deployment(database_url, redis_url) as dep:
        ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
        creds = await enrol_device(pool, ca, "rpi-001")
        stub = _stub(dep, creds)
        assert (await stub.Heartbeat(_heartbeat(), timeout=5)).unchanged  # standing cached
        assert dep.gateway.pushes.subscribed.is_set()
        reply = await connect_json(
            dep.api_endpoint,
            "fleetd.v1.DeviceService/DeleteDevice",
            {"device_id": "rpi-001"},
            ca_pem=dep.ca_pem,
            api_key=dep.admin_api_key,
        )
        assert reply.status == 200, reply.body
        for _ in range(50):  # the notice crosses Redis pub/sub
            response = await stub.Heartbeat(_heartbeat(), timeout=5)
            if response.offboarded:
                break
            await asyncio.sleep(0.05)
        assert response.offboarded
