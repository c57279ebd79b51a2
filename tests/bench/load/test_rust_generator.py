"""bench/loadgen (driven by bench.load.rust_generator) against a real gateway over mTLS:
every heartbeat a new connection, resumed TLS sessions, refusals counted by status."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import redis.asyncio as aioredis

from bench.load.rust_generator import RustPlan, run
from fleetd.services.pki import CertificateAuthority
from fleetd.storage import redis_keys
from gateway.server import start_gateway
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
        plan = RustPlan(target=dep.gateway_target, rate=20.0, duration=1.5)
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
        assert sorted(s.decode() for s in seen if isinstance(s, bytes)) == ids


async def test_refusals_are_counted_by_status(
    database_url: str, redis_url: str, pool: asyncpg.Pool
) -> None:
    async with running_deployment(database_url, redis_url, with_api=False) as dep:
        ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
        # Signed by the fleet CA but never recorded: the gateway refuses it.
        stranger = await enrol_device(pool, ca, "loadgen-stranger", register=False)
        plan = RustPlan(target=dep.gateway_target, rate=4.0, duration=1.0)
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


async def test_agents_keep_their_connection_and_return_after_a_restart(
    database_url: str, redis_url: str, pool: asyncpg.Pool
) -> None:
    """Agent mode: one kept connection per device while the gateway runs; when it goes
    away, errors (UNAVAILABLE only), backoff, a new connection, and every device back."""
    async with running_deployment(
        database_url, redis_url, with_api=False, gateway_device_rate="off"
    ) as dep:
        ca = CertificateAuthority.load(dep.settings.paths, dep.settings.fleet)
        creds = [await enrol_device(pool, ca, f"agent-{i}") for i in range(3)]
        plan = RustPlan(
            target=dep.gateway_target,
            mode="agent",
            interval=0.25,
            connect_rate=30.0,
            duration=9.0,
            timeout=2.0,
        )
        devices = [(c.cert_pem, c.key_pem) for c in creds]
        loop = asyncio.get_running_loop()
        window_open = asyncio.Event()

        def opened() -> None:
            loop.call_soon_threadsafe(window_open.set)

        running = asyncio.ensure_future(
            asyncio.to_thread(run, plan, dep.ca_pem, devices, on_start=opened)
        )
        await window_open.wait()
        await asyncio.sleep(1.5)
        stopped_at = time.time()
        await dep.gateway.stop(grace=1.0)
        await asyncio.sleep(1.0)
        dep.gateway = await start_gateway(dep.settings, port=dep.gateway.port)
        listening_at = time.time()
        result = await running

    # Before the restart each device heartbeat on its first connection...
    before = [[t for t in times if t < stopped_at] for times in result["successes"]]
    assert all(len(times) >= 4 for times in before), before
    # ...and after it, each came back (the backoff caps at 1, 2, 4 s for the first tries).
    after = [[t for t in times if t >= listening_at] for times in result["successes"]]
    assert all(times for times in after), after
    # Errors only while the gateway was away: UNAVAILABLE (nothing listening), or
    # CANCELLED for a call that reached the old gateway as it shut down (grpc-core cancels
    # calls it queued but had not handed over); after the restart nothing else.
    assert result["errors"], "the restart went unnoticed"
    log = [(t, code.split(" (", 1)[0]) for t, code in result["error_log"]]
    assert all(stopped_at <= t for t, _ in log), log
    assert {code for t, code in log if t < listening_at} <= {"UNAVAILABLE", "CANCELLED"}, log
    assert {code for t, code in log if t >= listening_at} <= {"UNAVAILABLE"}, log
    # One connection per device, then a new one each after the restart (found dead
    # while idle, or after a failed try): not one per heartbeat.
    assert 6 <= result["connections"] <= 6 + sum(result["errors"].values())
    assert result["ok"] >= 3 * 8
