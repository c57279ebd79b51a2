"""The whole update path with nothing simulated: an operator uploads a binary, creates an
update (signed into TUF) and deploys it over the operator API; a real agent process
heartbeating over mTLS receives the assignment, downloads and verifies it with
python-tuf from the root it pinned at enrolment, swaps it in, probes it and reports; the
operator sees the device HEALTHY in GetDeploymentStatus. A second update follows, then a
rollback: the agent accepts the previous version (re-signed with a new release counter,
since it refuses older counters) and ends with the first file byte for byte."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest

from fleetd.storage.bearer_tokens import create_enrollment_token
from fleetd.v1 import binary_pb2, binary_pb2_grpc, update_pb2, update_pb2_grpc
from tests.support.deployment import Deployment, running_deployment
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "rpi-rollout"
V1 = b"detector weights, version one\n" * 2000
V2 = b"detector weights, version two\n" * 2500
DS = update_pb2.DeploymentStatus


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(
        database_url, redis_url, heartbeat_interval=1.0, rollout_tick=0.2
    ) as dep:
        yield dep


@dataclass
class Operator:
    deployment: Deployment
    channel: grpc.aio.Channel

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-api-key", self.deployment.admin_api_key),)

    async def upload(self, name: str, content: bytes) -> str:
        def messages() -> Iterator[binary_pb2.UploadBinaryRequest]:
            yield binary_pb2.UploadBinaryRequest(
                metadata=binary_pb2.BinaryMetadata(name=name, platform="raspberry-pi")
            )
            for offset in range(0, len(content), 16 * 1024):
                yield binary_pb2.UploadBinaryRequest(chunk=content[offset : offset + 16 * 1024])

        stub = binary_pb2_grpc.BinaryServiceStub(self.channel)
        response = await stub.UploadBinary(messages(), metadata=self.metadata, timeout=30)
        assert response.checksum == f"sha256:{hashlib.sha256(content).hexdigest()}"
        return str(response.binary_id)

    async def create_update(self, version: str, binary_id: str, dest: Path) -> str:
        artifact = update_pb2.Artifact(
            name="detector-model",
            platform="raspberry-pi",
            kind=update_pb2.Artifact.MODEL,
            binary_id=binary_id,
            config=update_pb2.ConfigSpec(destination_path=str(dest)),
            health_probe=update_pb2.HealthProbe(
                file=update_pb2.HealthProbe.File(path=str(dest)), attempts=1
            ),
        )
        stub = update_pb2_grpc.UpdateServiceStub(self.channel)
        response = await stub.CreateUpdate(
            update_pb2.CreateUpdateRequest(name="detector", version=version, artifacts=[artifact]),
            metadata=self.metadata,
            timeout=30,
        )
        return str(response.update_id)

    async def deploy(self, update_id: str) -> str:
        stub = update_pb2_grpc.UpdateServiceStub(self.channel)
        response = await stub.DeployUpdate(
            update_pb2.DeployUpdateRequest(
                update_id=update_id,
                device_ids=[DEVICE],
                config=update_pb2.DeploymentConfig(strategy=update_pb2.ALL_AT_ONCE),
            ),
            metadata=self.metadata,
            timeout=30,
        )
        assert response.target_device_count == 1
        return str(response.deployment_id)

    async def status(self, deployment_id: str) -> update_pb2.GetDeploymentStatusResponse:
        stub = update_pb2_grpc.UpdateServiceStub(self.channel)
        response: update_pb2.GetDeploymentStatusResponse = await stub.GetDeploymentStatus(
            update_pb2.GetDeploymentStatusRequest(
                deployment_id=deployment_id, include_device_details=True
            ),
            metadata=self.metadata,
            timeout=10,
        )
        return response

    async def reaches(
        self, deployment_id: str, state: int
    ) -> update_pb2.GetDeploymentStatusResponse:
        last: list[update_pb2.GetDeploymentStatusResponse] = []

        async def reached() -> bool:
            last[:] = [await self.status(deployment_id)]
            return last[0].status.state == state

        try:
            await until(reached, within=60)
        except AssertionError:
            name = DS.State.Name(state)
            raise AssertionError(f"deployment never reached {name}: {last}") from None
        return last[0]


@pytest.fixture
async def operator(deployment: Deployment) -> AsyncIterator[Operator]:
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
    channel = grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds)
    yield Operator(deployment, channel)
    await channel.close(None)


@pytest.fixture
async def agent(deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Path]:
    """The real agent (``python -m agent``, its own TUF client), enrolled with a token;
    yields the directory it may install into."""
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(minutes=5), max_uses=1
    )
    apps = tmp_path / "apps"
    apps.mkdir()
    argv = [
        sys.executable,
        "-m",
        "agent",
        "--api-endpoint",
        deployment.api_endpoint,
        "--ca-cert",
        str(deployment.settings.paths.ca_cert),
        "--data-dir",
        str(tmp_path / "data"),
        "--device-id",
        DEVICE,
        "--device-type",
        "raspberry-pi",
        "--allowed-dirs",
        str(apps),
        "--container-runtime",
        "none",
    ]
    env = {**os.environ, "FLEETD_ENROLLMENT_TOKEN": secret.token}
    out = os.open(tmp_path / "agent.out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=out, stderr=out
        )
    finally:
        os.close(out)
    try:

        async def registered() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT last_seen IS NOT NULL FROM devices WHERE device_id = $1", DEVICE
                )
            )

        await until(registered, within=30)
        yield apps
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        if process.returncode not in (0, -signal.SIGTERM):
            print((tmp_path / "agent.out").read_text()[-5000:])


async def test_a_deployment_reaches_a_real_agent_through_tuf_and_rolls_back(
    operator: Operator, agent: Path, pool: asyncpg.Pool
) -> None:
    dest = agent / "model.bin"
    v1_update = await operator.create_update(
        "1.0.0", await operator.upload("model-1.bin", V1), dest
    )
    first = await operator.deploy(v1_update)
    done = await operator.reaches(first, DS.COMPLETED)
    assert done.metrics.healthy_count == 1
    [device] = done.device_statuses
    assert (device.device_id, device.state) == (DEVICE, update_pb2.DeviceDeploymentStatus.HEALTHY)
    assert dest.read_bytes() == V1
    reports = await pool.fetch(
        """SELECT r.state FROM artifact_status_reports r JOIN assignments a USING (assignment_id)
           WHERE a.deployment_id = $1 ORDER BY r.sequence""",
        first,
    )
    assert [r["state"] for r in reports] == ["downloading", "verifying", "applying", "healthy"]

    v2_update = await operator.create_update(
        "2.0.0", await operator.upload("model-2.bin", V2), dest
    )
    second = await operator.deploy(v2_update)
    done = await operator.reaches(second, DS.COMPLETED)
    assert done.device_statuses[0].previous_version == "1.0.0"
    assert dest.read_bytes() == V2

    stub = update_pb2_grpc.UpdateServiceStub(operator.channel)
    rolled = await stub.RollbackDeployment(
        update_pb2.RollbackDeploymentRequest(deployment_id=second, reason="bad model", force=True),
        metadata=operator.metadata,
        timeout=30,
    )
    assert rolled.devices_rolled_back == 1
    await operator.reaches(second, DS.ROLLED_BACK)
    assert dest.read_bytes() == V1
    # The agent got version 1's content under a newly signed target whose release counter
    # is above version 2's (it refuses older counters), not version 1's original target.
    resigned = await pool.fetchrow(
        "SELECT from_path, to_path, release_counter FROM rollback_targets WHERE deployment_id = $1",
        second,
    )
    assert resigned is not None
    counters = await pool.fetch(
        "SELECT version, target_path, release_counter FROM update_artifacts ORDER BY version"
    )
    assert resigned["from_path"] == counters[0]["target_path"]
    assert resigned["release_counter"] > counters[1]["release_counter"]
    final = await pool.fetchrow(
        """SELECT state, version FROM assignments
           WHERE device_id = $1 AND active AND name = 'detector-model'""",
        DEVICE,
    )
    assert final is not None and (final["state"], final["version"]) == ("healthy", "1.0.0")
