"""The seed's UpdateService deployment examples (DeployUpdate, GetDeploymentStatus,
RollbackDeployment) over grpcurl as written: only the host, the credential header and the
server-assigned ids (the seed's "update-001", "deploy-001") are the deployment's own."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fleetd.services.pki import CertificateAuthority
from tests.support.deployment import Deployment, running_deployment
from tests.support.simulator import Simulator
from tests.support.updates import create_update
from tests.support.waiting import until

DEPLOY = {
    "update_id": "update-001",
    "device_filter": "type:raspberry-pi AND status:online",
    "config": {
        "strategy": "CANARY",
        "canary_percentage": 10,
        "validation_duration": "3600s",
        "auto_promote": True,
    },
}
STATUS = {"deployment_id": "deploy-001", "include_device_details": True}
ROLLBACK = {"deployment_id": "deploy-001", "reason": "High error rate detected", "force": False}


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, rollout_tick=0.1) as dep:
        yield dep


def _grpcurl(dep: Deployment, method: str, body: dict[str, Any]) -> dict[str, Any]:
    tool = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    out = subprocess.run(
        [
            tool,
            "-cacert",
            str(dep.settings.paths.ca_cert),
            "-H",
            f"X-API-Key: {dep.admin_api_key}",
            "-d",
            json.dumps(body),
            f"127.0.0.1:{dep.api_port}",
            f"fleetd.v1.UpdateService/{method}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


async def test_the_seeds_deployment_examples_work_as_written(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    ca = CertificateAuthority.load(deployment.settings.paths, deployment.settings.fleet)
    update_id = await create_update(pool, version="2.0.0")

    async def run(method: str, body: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(_grpcurl, deployment, method, body)

    device_ids = [f"rpi-{i:03d}" for i in range(10)]
    async with Simulator.running(deployment, pool, ca, device_ids):

        async def online() -> bool:
            return bool(
                await pool.fetchval("SELECT count(*) = 10 FROM devices WHERE status = 'online'")
            )

        await until(online, within=30)
        created = await run("DeployUpdate", {**DEPLOY, "update_id": update_id})
        assert created["target_device_count"] == 10
        assert created["started_at"]
        deployment_id = created["deployment_id"]
        ids = {"deployment_id": deployment_id}

        async def canary_validating() -> bool:
            status = await run("GetDeploymentStatus", {**STATUS, **ids})
            return int(status["metrics"].get("healthy_count", 0)) == 1

        await until(canary_validating, within=30)  # 10%: one device; then 3600 s to validate
        status = await run("GetDeploymentStatus", {**STATUS, **ids})
        assert status["status"]["state"] == "RUNNING"
        assert status["status"]["config"]["strategy"] == "CANARY"
        assert len(status["device_statuses"]) == 10
        assert sorted(d.get("state") for d in status["device_statuses"]).count("HEALTHY") == 1
        # Without force, a rollback needs a halted or paused deployment: pause, then the
        # seed's example as written.
        await run("PauseDeployment", {**ids, "reason": "error rate"})
        rolled = await run("RollbackDeployment", {**ROLLBACK, **ids})
        assert rolled["success"] is True
        assert rolled["rolled_back_at"]
