"""`fleetd gateway --workers N` as an operator runs it: processes sharing one port and the
stores, one sweeper among them, and a SIGTERM that drains pending heartbeats to disk."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.settings import Settings
from fleetd.storage import redis_keys
from fleetd_cli.initialize import initialize
from tests.support.devices import device_channel, enrol_device
from tests.support.waiting import free_port

DEVICES = 12


def _spawn_gateway(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetd_cli.main", "gateway", "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "fleetd gateway exited early"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return
    raise AssertionError("the gateway did not listen")


async def test_workers_share_the_port_and_drain_on_sigterm(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="fleetd-gw-", dir="/tmp"))
    port = free_port()
    settings = Settings(data_dir=data_dir, database_url=database_url, redis_url=redis_url)
    await initialize(settings)
    env = {
        **os.environ,
        **settings.to_env(),
        "FLEETD_GATEWAY_ADDR": f"127.0.0.1:{port}",
        # Only the drain at SIGTERM can write heartbeats to PostgreSQL in this test.
        "FLEETD_POSTGRES_FLUSH_INTERVAL": "3600",
    }
    process = _spawn_gateway(env, data_dir / "gateway.log")
    try:
        await _wait_listening(port, process)
        ca = CertificateAuthority.load(settings.paths, settings.fleet)
        ca_pem = settings.paths.ca_cert.read_bytes()
        for n in range(DEVICES):
            creds = await enrol_device(pool, ca, f"rpi-{n:03d}")
            channel = device_channel(f"127.0.0.1:{port}", ca_pem, creds)
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            response = await stub.Heartbeat(
                agent_pb2.HeartbeatRequest(stats=agent_pb2.DeviceStats(cpu_percent=n)),
                timeout=10,
            )
            assert response.unchanged
            await channel.close(None)
        # Redis has them all within a flush; PostgreSQL none yet (flush interval 1 h).
        deadline = time.monotonic() + 10
        while await redis.zcard(redis_keys.last_seen(settings.fleet)) < DEVICES:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT count(*) FROM devices WHERE last_seen IS NOT NULL") == 0
        assert await redis.exists(redis_keys.sweeper_lease(settings.fleet))

        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
        seen = await pool.fetch("SELECT device_id, cpu_usage FROM devices ORDER BY device_id")
        assert [(r["device_id"], r["cpu_usage"]) for r in seen] == [
            (f"rpi-{n:03d}", float(n)) for n in range(DEVICES)
        ]
        # The sweeper released its lease on the way out.
        assert not await redis.exists(redis_keys.sweeper_lease(settings.fleet))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
