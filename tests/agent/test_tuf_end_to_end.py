"""The shipped agent (``python -m agent``, its real TUF client) against a real deployment:
it enrols, pins the served root, and downloads its assigned target from the control API's
``/tuf/`` presenting its device certificate, which is how fleetd serves artifacts only
to their devices (docs/tuf.md, "Who may download"). tests/agent/test_end_to_end.py runs
the same agent with a directory double for everything else converge does."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from agent.credentials import CERT_FILE, KEY_FILE
from fleetd.services.tuf_repo import KeyDirs, TufRepository
from fleetd.storage.bearer_tokens import create_enrollment_token
from fleetd.storage.blobs import FilesystemBlobStore
from tests.support.converging import file_assignment
from tests.support.deployment import Deployment, running_deployment
from tests.support.desired import assign
from tests.support.target_dir import Published
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "rpi-tuf-e2e"
MODEL = b"detector weights over TUF " * 2000


async def _publish(dep: Deployment, pool: asyncpg.Pool, path: str, content: bytes) -> Published:
    """Sign ``path`` into the deployment's repository and store its content."""
    sha256 = hashlib.sha256(content).hexdigest()
    repo = TufRepository(pool, KeyDirs.under(dep.settings.paths.root))
    custom = {"hardware": "*", "release_counter": 1, "kind": "model", "name": "detector-model"}
    await repo.add_target(path, len(content), {"sha256": sha256}, custom)
    store = FilesystemBlobStore(dep.settings.paths.blobs)
    async with store.writer(max_bytes=len(content)) as writer:
        await writer.write(content)
        await writer.commit()
    return Published(path, sha256, len(content))


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, heartbeat_interval=1.0) as dep:
        yield dep


@pytest.fixture
async def agent_dir(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[Path]:
    """A running ``python -m agent`` (default fetcher: agent.main.tuf_fetcher), enrolled;
    its root directory (``apps`` is where it may install, ``data`` its data dir)."""
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(minutes=5), max_uses=1
    )
    (tmp_path / "apps").mkdir()
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
        str(tmp_path / "apps"),
        "--container-runtime",
        "none",
        "--log-file",
        str(tmp_path / "agent.log"),
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
            seen = await pool.fetchval(
                "SELECT last_seen IS NOT NULL FROM devices WHERE device_id = $1", DEVICE
            )
            return bool(seen)

        await until(registered, within=30)
        yield tmp_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _outcome(pool: asyncpg.Pool, assignment_id: str) -> asyncpg.Record:
    async def concluded() -> bool:
        state = await pool.fetchval(
            "SELECT state FROM assignments WHERE assignment_id = $1", assignment_id
        )
        return state in ("healthy", "failed", "rolled_back")

    await until(concluded, within=60)
    row = await pool.fetchrow(
        "SELECT state, reason, message FROM assignments WHERE assignment_id = $1",
        assignment_id,
    )
    assert row is not None
    return row


async def test_agent_downloads_its_assigned_target_presenting_its_certificate(
    deployment: Deployment, pool: asyncpg.Pool, redis: aioredis.Redis, agent_dir: Path
) -> None:
    assert (agent_dir / "data" / CERT_FILE).exists() and (agent_dir / "data" / KEY_FILE).exists()
    published = await _publish(deployment, pool, "detector-model/2.0.0/any/r2/model.onnx", MODEL)
    dest = agent_dir / "apps" / "model.onnx"
    await assign(pool, redis, DEVICE, file_assignment(published, dest, assignment_id="as-tuf"))
    row = await _outcome(pool, "as-tuf")
    assert row["state"] == "healthy", (dict(row), (agent_dir / "agent.log").read_text()[-3000:])
    assert dest.read_bytes() == MODEL
