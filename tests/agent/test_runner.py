"""The real agent against a real deployment: enrol, register, heartbeat, outlive a gateway."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from tuf.api.metadata import Metadata

from agent.config import AgentConfig
from agent.credentials import KEY_FILE, TUF_ROOT_FILE, CredentialStore
from agent.runner import Agent, run_agent
from fleetd.device.v1 import agent_pb2_grpc
from fleetd.storage.bearer_tokens import create_enrollment_token
from gateway.server import server_credentials, start_gateway
from tests.support.deployment import Deployment, running_deployment
from tests.support.desired import assign, model_assignment
from tests.support.http import connect_json


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
    # The operator deletes the device: offboarded, certificates revoked, gateways told.
    reply = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/DeleteDevice",
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert reply.status == 200
    await asyncio.sleep(0.5)  # the revocation notice crosses Redis pub/sub
    key = (tmp_path / "agent" / KEY_FILE).read_bytes()
    assert await run_agent(replace(config, enrollment_token="")) == 0
    assert CredentialStore(tmp_path / "agent").enrollment() is None
    leftovers = {p.name for p in (tmp_path / "agent").iterdir()}
    # Public trust anchors and the agent's (secret-free) state and outbox only.
    assert leftovers <= {"ca.pem", TUF_ROOT_FILE, "state.json", "outbox"}
    for path in (tmp_path / "agent").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"PRIVATE KEY" not in content and key not in content, path


async def test_agent_on_the_stream_gets_a_pushed_desired_state_at_once(
    database_url: str, redis_url: str, pool: asyncpg.Pool, redis: aioredis.Redis, tmp_path: Path
) -> None:
    # A 60 s interval: a change seen within seconds was pushed, not fetched by a beat.
    async with running_deployment(database_url, redis_url, heartbeat_interval=60.0) as dep:
        config = await _config(dep, pool, tmp_path / "agent")
        assert await run_agent(config) == 0  # enrolled
        store = CredentialStore(tmp_path / "agent")
        enrollment = store.enrollment()
        assert enrollment is not None
        agent = Agent(replace(config, once=False, enrollment_token=""), store, enrollment)
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.sleep(1.0)  # registered, first beat answered
            revision = await assign(pool, redis, "rpi-001", model_assignment("detector", "2.0.0"))
            for _ in range(250):
                if agent.revision == revision:
                    break
                await asyncio.sleep(0.02)
            assert agent.revision == revision
            assert dep.gateway.service.pushed == 1
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_agent_falls_back_to_unary_heartbeats_on_an_older_gateway(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """A gateway without HeartbeatStream answers UNIMPLEMENTED; the agent uses Heartbeat."""
    service = deployment.gateway.service
    old = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(_WithoutStream(service), old)
    port = old.add_secure_port("127.0.0.1:0", server_credentials(deployment.settings))
    await old.start()
    try:
        config = await _config(deployment, pool, tmp_path / "agent")
        config = replace(config, gateway=f"127.0.0.1:{port}")
        assert await run_agent(config) == 0
        await _wait_for_heartbeat_after(pool, None)
    finally:
        await old.stop(None)


class _WithoutStream(agent_pb2_grpc.AgentServiceServicer):
    """The current service minus HeartbeatStream, as a gateway before it would be."""

    def __init__(self, service: agent_pb2_grpc.AgentServiceServicer) -> None:
        self.Register = service.Register  # type: ignore[method-assign]
        self.Heartbeat = service.Heartbeat  # type: ignore[method-assign]
