"""The real agent against a real deployment: enrol, register, heartbeat, outlive a gateway."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from tuf.api.metadata import Metadata

from agent.config import AgentConfig
from agent.credentials import KEY_FILE, TUF_ROOT_FILE, CredentialStore
from agent.runner import run_agent
from fleetd.storage.credentials import create_enrollment_token
from gateway.server import start_gateway
from tests.support.deployment import Deployment, running_deployment


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, heartbeat_interval=1.0) as dep:
        yield dep


async def _config(dep: Deployment, pool: asyncpg.Pool, data_dir: Path, **kw: object) -> AgentConfig:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(minutes=5), max_uses=1
    )
    config = AgentConfig(
        api_endpoint=dep.api_endpoint,
        gateway="",
        ca_cert=dep.settings.paths.ca_cert,
        data_dir=data_dir,
        device_id="rpi-001",
        device_type="raspberry-pi",
        tags=("lab",),
        enrollment_token=secret.token,
        once=True,
    )
    return replace(config, **kw)  # type: ignore[arg-type]


async def _last_seen(pool: asyncpg.Pool) -> dt.datetime | None:
    value: dt.datetime | None = await pool.fetchval(
        "SELECT last_seen FROM devices WHERE device_id = 'rpi-001'"
    )
    return value


async def _wait_for_heartbeat_after(pool: asyncpg.Pool, after: dt.datetime | None) -> dt.datetime:
    for _ in range(200):
        seen = await _last_seen(pool)
        if seen is not None and (after is None or seen > after):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError("no heartbeat arrived")


async def test_agent_enrols_registers_and_heartbeats_with_real_stats(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    config = await _config(deployment, pool, tmp_path / "agent")
    assert await run_agent(config) == 0
    await _wait_for_heartbeat_after(pool, None)
    row = await pool.fetchrow(
        "SELECT status, tags, agent_version, system_info, memory_usage FROM devices"
    )
    assert row is not None
    assert row["status"] == "online"
    assert row["tags"] == ["lab"]
    assert row["system_info"]["cpu_cores"] >= 1
    assert 0.0 < row["memory_usage"] <= 100.0
    key = (tmp_path / "agent" / KEY_FILE).stat()
    assert key.st_mode & 0o077 == 0
    # A second start reuses the enrolment: no token needed, no new device.
    again = replace(config, enrollment_token="")
    assert await run_agent(again) == 0
    assert await pool.fetchval("SELECT count(*) FROM device_certificates") == 1


async def test_enrolment_pins_the_fleet_tuf_root(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    config = await _config(deployment, pool, tmp_path / "agent")
    assert await run_agent(config) == 0
    pinned = CredentialStore(tmp_path / "agent").tuf_root()
    newest = await pool.fetchval(
        "SELECT body FROM tuf_metadata WHERE role = 'root' ORDER BY version DESC LIMIT 1"
    )
    assert pinned is not None and pinned == bytes(newest)
    assert Metadata.from_bytes(pinned).signed.type == "root"


async def test_agent_without_token_or_enrolment_exits_with_an_error(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    config = await _config(deployment, pool, tmp_path / "agent", enrollment_token="")
    assert await run_agent(config) == 2


async def test_agent_survives_a_gateway_restart(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    config = await _config(deployment, pool, tmp_path / "agent", once=False)
    task = asyncio.create_task(run_agent(config))
    try:
        first = await _wait_for_heartbeat_after(pool, None)
        port = deployment.gateway.port
        await deployment.gateway.stop(grace=0.5)
        await asyncio.sleep(1.5)  # the agent's heartbeats fail meanwhile
        assert not task.done()
        deployment.gateway = await start_gateway(
            replace(deployment.settings, gateway_port=port), port=port
        )
        await _wait_for_heartbeat_after(pool, first + dt.timedelta(seconds=1.5))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_offboarded_agent_wipes_its_keys_and_exits(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    config = await _config(deployment, pool, tmp_path / "agent")
    assert await run_agent(config) == 0
    await pool.execute("UPDATE devices SET offboarded_at = now()")
    await asyncio.sleep(5.5)  # the gateway caches a certificate's standing for 5 s
    assert await run_agent(replace(config, enrollment_token="")) == 0
    assert CredentialStore(tmp_path / "agent").enrollment() is None
    leftovers = {p.name for p in (tmp_path / "agent").iterdir()}
    assert leftovers <= {"ca.pem", TUF_ROOT_FILE}  # public trust anchors, no key material
