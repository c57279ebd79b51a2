"""The rollout engine in this process against real PostgreSQL, Redis and the gateway:
targeting at creation, timeouts, the report hook's counters, one active engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout.policy import effective_config
from fleetd.services.pki import CertificateAuthority
from fleetd.services.rollout.engine import Engine, EngineRunner
from fleetd.storage import deployments as store
from fleetd.storage.assignments import TransitionRefused, record_status_report
from fleetd.v1 import update_pb2 as U
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import enrol_device
from tests.support.simulator import Simulator
from tests.support.updates import create_update
from tests.support.waiting import until


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, with_api=False) as dep:
        yield dep


@pytest.fixture
def ca(deployment: Deployment) -> CertificateAuthority:
    return CertificateAuthority.load(deployment.settings.paths, deployment.settings.fleet)


def engine(pool: asyncpg.Pool, redis: aioredis.Redis) -> Engine:
    return Engine(pool, redis, "default", heartbeat_interval=1.0, offline_after=3.0)


async def deploy(
    pool: asyncpg.Pool,
    update_id: str,
    *,
    device_ids: list[str] | None = None,
    config: U.DeploymentConfig | None = None,
    deployment_id: str = "dep-test",
) -> store.Created:
    effective = effective_config(config or U.DeploymentConfig(), U.UpdateStrategy())
    artifacts = await store.update_artifacts(pool, update_id)
    assert artifacts
    async with pool.acquire() as conn:
        return await store.create_deployment(
            conn,
            store.NewDeployment(
                deployment_id,
                update_id,
                effective.SerializeToString(),
                [w.cumulative_percentage for w in effective.waves],
                "",
                None,
                device_ids,
                "test",
            ),
            artifacts,
        )


async def state_of(pool: asyncpg.Pool, deployment_id: str = "dep-test") -> str:
    state: str = await pool.fetchval(
        "SELECT state FROM deployments WHERE deployment_id = $1", deployment_id
    )
    return state


async def test_targets_are_classified_and_waves_cut_deterministically(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority
) -> None:
    for i in range(20):
        await enrol_device(pool, ca, f"rpi-{i:02d}")
    await pool.execute("UPDATE devices SET device_type = 'jetson' WHERE device_id = 'rpi-00'")
    update_id = await create_update(pool, platforms=["raspberry-pi"])
    config = U.DeploymentConfig(
        waves=[U.Wave(cumulative_percentage=25), U.Wave(cumulative_percentage=100)]
    )
    created = await deploy(pool, update_id, config=config)
    assert created.target_device_count == 20 and created.to_update == 19
    assert created.skipped == {"NO_ARTIFACT_FOR_TYPE": 1}
    rows = await pool.fetch(
        "SELECT device_id, wave, state, reason FROM deployment_targets ORDER BY device_id"
    )
    assert (rows[0]["state"], rows[0]["reason"]) == ("skipped", "NO_ARTIFACT_FOR_TYPE")
    waves = [r["wave"] for r in rows[1:]]
    assert waves.count(0) == 5 and waves.count(1) == 14  # ceil(25% of 19)
    ends = await pool.fetchval("SELECT wave_ends FROM deployments")
    assert ends == [5, 19]
    # Same deployment id, same membership (the hash is of deployment id and device id).
    await pool.execute("DELETE FROM deployment_targets")
    await pool.execute("DELETE FROM deployments")
    await deploy(pool, update_id, config=config)
    again = await pool.fetch("SELECT wave FROM deployment_targets ORDER BY device_id")
    assert [r["wave"] for r in again[1:]] == waves


async def test_devices_already_running_the_version_are_skipped(
    deployment: Deployment,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    ca: CertificateAuthority,
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    async with Simulator.running(deployment, pool, ca, ["rpi-1", "rpi-2"]):
        await deploy(pool, update_id, deployment_id="dep-first")
        eng = engine(pool, redis)

        async def completed() -> bool:
            await eng.tick()
            return await state_of(pool, "dep-first") == "completed"

        await until(completed)
    await enrol_device(pool, ca, "rpi-3")
    created = await deploy(pool, update_id, deployment_id="dep-again")
    assert created.skipped == {"ALREADY_RUNNING": 2} and created.to_update == 1
    with pytest.raises(store.NoTargets, match="already run this version"):
        await deploy(pool, update_id, device_ids=["rpi-1", "rpi-2"], deployment_id="dep-x")
    with pytest.raises(store.UnknownDevices):
        await deploy(pool, update_id, device_ids=["rpi-1", "nope"], deployment_id="dep-y")


async def test_device_timeout_fails_the_device_and_withdraws_its_assignment(
    deployment: Deployment,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    ca: CertificateAuthority,
) -> None:
    await enrol_device(pool, ca, "rpi-silent")  # never heartbeats: never starts
    update_id = await create_update(pool)
    await deploy(pool, update_id, config=U.DeploymentConfig(device_timeout={"seconds": 1}))
    eng = engine(pool, redis)

    async def halted() -> bool:
        await eng.tick()
        return await state_of(pool) == "failed"

    await until(halted, within=10)
    target = await pool.fetchrow("SELECT state, reason, assignment_ids FROM deployment_targets")
    assert target is not None
    assert (target["state"], target["reason"]) == ("failed", "TIMEOUT")
    assignment = await pool.fetchrow(
        "SELECT state, active FROM assignments WHERE assignment_id = $1",
        target["assignment_ids"][0],
    )
    assert assignment is not None
    assert (assignment["state"], assignment["active"]) == ("cancelled", False)
    # A late report cannot move the count.
    async with pool.acquire() as conn:
        with pytest.raises(TransitionRefused):
            await record_status_report(
                conn,
                "rpi-silent",
                agent_pb2.ReportArtifactStatusRequest(
                    assignment_id=target["assignment_ids"][0],
                    sequence=1,
                    state=agent_pb2.ARTIFACT_STATE_HEALTHY,
                ),
            )
    counts = await store.counts(pool, "dep-test")
    assert counts.get("failed") == 1 and counts.get("healthy") == 0


async def test_each_report_moves_one_count_in_one_shard(
    deployment: Deployment,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    ca: CertificateAuthority,
) -> None:
    await enrol_device(pool, ca, "rpi-1")
    update_id = await create_update(pool)
    await deploy(pool, update_id)
    eng = engine(pool, redis)
    await eng.tick()  # starts, assigns
    assignment_id = await pool.fetchval("SELECT assignment_ids[1] FROM deployment_targets")
    assert assignment_id
    before = await pool.fetchval("SELECT count(*) FROM deployment_counters")
    for sequence, state in enumerate(
        (agent_pb2.ARTIFACT_STATE_DOWNLOADING, agent_pb2.ARTIFACT_STATE_HEALTHY), start=1
    ):
        async with pool.acquire() as conn:
            await record_status_report(
                conn,
                "rpi-1",
                agent_pb2.ReportArtifactStatusRequest(
                    assignment_id=assignment_id,
                    sequence=sequence,
                    state=state,
                    installed_version="2.0.0",
                ),
            )
    counts = await store.counts(pool, "dep-test")
    assert counts.get("healthy") == 1 and counts.get("pending") == 0
    assert counts.get("downloading") == 0
    rows = await pool.fetch("SELECT shard FROM deployment_counters WHERE shard <> 0")
    assert len({r["shard"] for r in rows}) == 1  # the device's shard, three state rows
    assert await pool.fetchval("SELECT count(*) FROM deployment_counters") - before == 3
    target = await pool.fetchrow("SELECT state, installed_version FROM deployment_targets")
    assert target is not None
    assert tuple(target) == ("healthy", "2.0.0")


async def test_only_one_engine_runs_across_replicas_and_another_takes_over(
    deployment: Deployment, pool: asyncpg.Pool, redis: aioredis.Redis, database_url: str
) -> None:
    runners = [
        EngineRunner(engine(pool, redis), database_url, tick=0.05, lock_retry=0.05)
        for _ in range(3)
    ]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        await until(lambda: _count_active(runners, 1))
        await asyncio.sleep(0.3)
        assert sum(r.active for r in runners) == 1
        holder = next(i for i, r in enumerate(runners) if r.active)
        tasks[holder].cancel()
        await asyncio.gather(tasks[holder], return_exceptions=True)
        await until(lambda: _count_active(runners, 1))
        assert not runners[holder].active
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _count_active(runners: list[EngineRunner], n: int) -> bool:
    return sum(r.active for r in runners) == n
