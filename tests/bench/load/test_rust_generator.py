"""bench/loadgen (driven by bench.load.rust_generator) against a real gateway over mTLS:
every heartbeat a new connection, resumed TLS sessions, refusals counted by status."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as aioredis

from bench.load.rust_generator import RustPlan, run
from fleetd.pki import CertificateAuthority
from fleetd.storage import redis_keys
from tests.support.deployment import running_deployment
from tests.support.devices import enrol_device


async def test_heartbeats_reach_the_gateway_on_new_resumed_connections(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with running_deployment(
        database_url, redis_url, with_api=False, gateway_device_rate="off"
    ) as dep:
        ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
        ids = [f"loadgen-{i}" for i in range(3)]
        creds = [await enrol_device(pool, ca, device_id) for device_id in ids]
        plan = RustPlan(target=dep.gateway_target, devices=3, rate=20.0, duration=1.5)
        devices = [(c.cert_pem, c.key_pem) for c in creds]
        # Blocking: in a thread, so that this loop keeps serving the gateway.
        result = await asyncio.to_thread(run, plan, dep.ca_pem, devices)

        assert result["errors"] == {}
        assert result["ok"] == 30  # 20/s for 1.5 s, every one answered
        # One full handshake per device, then its own session resumed.
        assert result["full_handshakes"] >= 3
        assert result["resumed"] >= 20
        assert result["generator_cpu_s"] >= 0
        seen = await redis.zrange(redis_keys.last_seen(dep.settings.fleet), 0, -1)
        assert sorted(s.decode() for s in seen) == ids


async def test_refusals_are_counted_by_status(
    database_url: str, redis_url: str, pool: asyncpg.Pool
) -> None:
    async with running_deployment(database_url, redis_url, with_api=False) as dep:
        ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
        # Signed by the fleet CA but never recorded: the gateway refuses it.
        stranger = await enrol_device(pool, ca, "loadgen-stranger", register=False)
        plan = RustPlan(target=dep.gateway_target, devices=1, rate=4.0, duration=1.0)
        devices = [(stranger.cert_pem, stranger.key_pem)]
        result = await asyncio.to_thread(run, plan, dep.ca_pem, devices)
        assert result["ok"] == 0
        assert result["errors"] == {
            "UNAUTHENTICATED (certificate was not issued to a registered device)": 4
        }

        # A certificate from another CA fails the handshake itself.
        other = CertificateAuthority.create("other-fleet")
        foreign = await enrol_device(pool, other, "loadgen-foreign", register=False)
        result = await asyncio.to_thread(
            run, plan, dep.ca_pem, [(foreign.cert_pem, foreign.key_pem)]
        )
        assert result["ok"] == 0
        assert sum(result["errors"].values()) == 4
        assert all(code.startswith("UNAVAILABLE") for code in result["errors"]), result
