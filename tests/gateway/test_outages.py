"""Redis or PostgreSQL going away under load: no crash, nothing acknowledged lost, health
says NOT_SERVING, and the gateway recovers by itself when the store comes back."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.storage import redis_keys
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device
from tests.support.outage import (
    postgres_target,
    postgres_url_via,
    proxied,
    redis_target,
    redis_url_via,
)
from tests.support.waiting import until

LOAD_DEVICES = 8


def _stub(dep: Deployment, creds: DeviceCredentials) -> agent_pb2_grpc.AgentServiceStub:
    return agent_pb2_grpc.AgentServiceStub(device_channel(dep.gateway_target, dep.ca_pem, creds))


def _beat(cpu: float = 10.0) -> agent_pb2.HeartbeatRequest:
    return agent_pb2.HeartbeatRequest(stats=agent_pb2.DeviceStats(cpu_percent=cpu))


async def _health(dep: Deployment, creds: DeviceCredentials) -> int:
    channel = device_channel(dep.gateway_target, dep.ca_pem, creds)
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    await channel.close(None)
    return int(response.status)


@contextlib.asynccontextmanager
async def _background_load(
    dep: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> AsyncIterator[Counter[str]]:
    """Devices heartbeating twice a second each; yields the status codes seen so far."""
    codes: Counter[str] = Counter()
    stubs = [_stub(dep, await enrol_device(pool, ca, f"load-{n:02d}")) for n in range(LOAD_DEVICES)]

    async def run(stub: agent_pb2_grpc.AgentServiceStub) -> None:
        while True:
            try:
                await stub.Heartbeat(_beat(), timeout=5)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                codes[exc.code().name] += 1
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(run(stub)) for stub in stubs]
    try:
        yield codes
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_redis_outage_keeps_heartbeats_flowing_to_postgres(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with (
        proxied(redis_target(redis_url)) as cut_redis,
        running_deployment(
            database_url, redis_url_via(redis_url, cut_redis), with_api=False
        ) as dep,
    ):
        ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
        creds = await enrol_device(pool, ca, "rpi-001")
        stub = _stub(dep, creds)
        assert (await stub.Heartbeat(_beat(), timeout=5)).unchanged
        async with _background_load(dep, ca, pool) as codes:
            await asyncio.sleep(1)
            await cut_redis.cut()
            await until(lambda: _is(dep, creds, health_pb2.HealthCheckResponse.NOT_SERVING))
            # Desired state now comes from PostgreSQL; heartbeats still reach it.
            response = await stub.Heartbeat(_beat(cpu=55.0), timeout=5)
            assert response.unchanged
            await until(lambda: _cpu_is(pool, "rpi-001", 55.0))
            await asyncio.sleep(1)
            await cut_redis.restore()
            await until(lambda: _is(dep, creds, health_pb2.HealthCheckResponse.SERVING))
            await asyncio.sleep(1)
        assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
        assert codes["OK"] > 0
        # Back to normal without a restart: stats reach Redis again.
        await stub.Heartbeat(_beat(cpu=66.0), timeout=5)
        await until(lambda: _redis_cpu_is(redis, "rpi-001", 66.0))


async def test_postgres_outage_serves_known_devices_and_keeps_acknowledged_heartbeats(
    database_url: str, redis_url: str, pool: asyncpg.Pool
) -> None:
    async with (
        proxied(postgres_target(database_url)) as cut_postgres,
        running_deployment(
            postgres_url_via(database_url, cut_postgres), redis_url, with_api=False
        ) as dep,
    ):
        ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
        known = await enrol_device(pool, ca, "rpi-001")
        unseen = await enrol_device(pool, ca, "rpi-002")
        stub = _stub(dep, known)
        assert (await stub.Heartbeat(_beat(), timeout=5)).unchanged
        async with _background_load(dep, ca, pool) as codes:
            await asyncio.sleep(1)
            await cut_postgres.cut()
            await until(lambda: _is(dep, known, health_pb2.HealthCheckResponse.NOT_SERVING))
            # A device seen recently keeps heartbeating (standing and desired state cached).
            response = await stub.Heartbeat(_beat(cpu=77.0), timeout=5)
            assert response.unchanged
            # What needs PostgreSQL is UNAVAILABLE, not an internal error.
            for call in (
                _stub(dep, unseen).Heartbeat(_beat(), timeout=5),
                stub.Register(agent_pb2.RegisterRequest(), timeout=5),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
            await asyncio.sleep(1)
            await cut_postgres.restore()
            await until(lambda: _is(dep, known, health_pb2.HealthCheckResponse.SERVING))
            await asyncio.sleep(1)
        assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
        # The heartbeat acknowledged during the outage reached PostgreSQL afterwards.
        await until(lambda: _cpu_is(pool, "rpi-001", 77.0))
        assert (await _stub(dep, unseen).Heartbeat(_beat(), timeout=5)).unchanged


async def _is(dep: Deployment, creds: DeviceCredentials, status: int) -> bool:
    return await _health(dep, creds) == status


async def _cpu_is(pool: asyncpg.Pool, device_id: str, cpu: float) -> bool:
    value = await pool.fetchval("SELECT cpu_usage FROM devices WHERE device_id = $1", device_id)
    return bool(value == cpu)


async def _redis_cpu_is(redis: aioredis.Redis, device_id: str, cpu: float) -> bool:
    value = await redis.hget(redis_keys.device_stats(device_id), "cpu")
    return value is not None and float(value) == cpu
