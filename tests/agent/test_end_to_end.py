"""A real agent process against a real gateway and control API: an assignment created
server-side is downloaded (through the TUF fetcher's test double), verified, swapped in,
probed and reported; a failing probe of each kind rolls back to the identical file."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from fleetd.storage.bearer_tokens import create_enrollment_token
from fleetd.storage.desired import mark_changed
from fleetd.storage.log_requests import issue_log_request
from tests.support.converging import exec_probe, file_assignment, file_probe, http_probe
from tests.support.deployment import Deployment, running_deployment
from tests.support.desired import assign
from tests.support.target_dir import publish
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "rpi-e2e"
V1 = b"weights v1 " * 3000
V2 = b"weights v2 " * 3500


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, heartbeat_interval=1.0) as dep:
        yield dep


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 500)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_health() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Device:
    root: Path
    process: asyncio.subprocess.Process

    @property
    def apps(self) -> Path:
        return self.root / "apps"

    @property
    def repo(self) -> Path:
        return self.root / "repo"


@pytest.fixture
async def device(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[Device]:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(minutes=5), max_uses=1
    )
    (tmp_path / "apps").mkdir()
    (tmp_path / "repo").mkdir()
    failing = tmp_path / "probe-fails.sh"
    failing.write_text("#!/bin/sh\necho unhealthy\nexit 1\n")
    failing.chmod(0o755)
    argv = [
        sys.executable,
        "-m",
        "tests.support.agent_process",
        "--targets",
        str(tmp_path / "repo"),
        "--tuf-cache",
        str(tmp_path / "tuf-cache"),
        "--",
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
        "--exec-probes",
        str(failing),
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
        yield Device(tmp_path, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _state_of(pool: asyncpg.Pool, assignment_id: str, *states: str) -> asyncpg.Record:
    async def reached() -> bool:
        row = await pool.fetchrow(
            "SELECT state FROM assignments WHERE assignment_id = $1", assignment_id
        )
        return row is not None and row["state"] in states

    await until(reached, within=30)
    row = await pool.fetchrow(
        """SELECT state, reason, message, installed_version FROM assignments
           WHERE assignment_id = $1""",
        assignment_id,
    )
    assert row is not None
    return row


async def test_agent_converges_on_an_assignment_and_reports_every_step(
    device: Device, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    dest = device.apps / "model.onnx"
    pub = publish(device.repo, "detector-model/2.0.0/model.onnx", V2, name="detector-model")
    await assign(pool, redis, DEVICE, file_assignment(pub, dest, assignment_id="as-e2e-1"))
    row = await _state_of(pool, "as-e2e-1", "healthy", "failed", "rolled_back")
    assert (row["state"], row["installed_version"]) == ("healthy", "2.0.0")
    assert dest.read_bytes() == V2
    states = await pool.fetch(
        """SELECT state FROM artifact_status_reports WHERE assignment_id = 'as-e2e-1'
           ORDER BY sequence"""
    )
    assert [r["state"] for r in states] == ["downloading", "verifying", "applying", "healthy"]

    # The outbox is empty once everything is acknowledged.
    async def outbox_empty() -> bool:
        return not list((device.root / "data" / "outbox").glob("*.report"))

    await until(outbox_empty)


@pytest.mark.parametrize("kind", ["file", "exec", "http"])
async def test_failing_probe_rolls_back_to_the_identical_previous_file(
    device: Device, pool: asyncpg.Pool, redis: aioredis.Redis, http_health: str, kind: str
) -> None:
    dest = device.apps / "model.onnx"
    v1 = publish(device.repo, "m/1.0.0/model.onnx", V1, name="detector-model")
    await assign(
        pool, redis, DEVICE, file_assignment(v1, dest, version="1.0.0", assignment_id="as-v1")
    )
    assert (await _state_of(pool, "as-v1", "healthy"))["state"] == "healthy"
    before = dest.read_bytes()
    probes = {
        "file": file_probe(device.apps / "never-ready"),
        "exec": exec_probe(device.root / "probe-fails.sh"),
        "http": http_probe(f"{http_health}/broken"),
    }
    v2 = publish(device.repo, "m/2.0.0/model.onnx", V2, name="detector-model", release_counter=2)
    spec = file_assignment(v2, dest, assignment_id="as-v2", probe=probes[kind])
    await assign(pool, redis, DEVICE, spec)
    row = await _state_of(pool, "as-v2", "rolled_back", "failed", "healthy")
    assert (row["state"], row["reason"], row["installed_version"]) == (
        "rolled_back",
        "PROBE_FAILED",
        "1.0.0",
    )
    assert dest.read_bytes() == before == V1
    assert sorted(p.name for p in device.apps.iterdir()) == ["model.onnx"]


async def test_a_passing_http_probe_is_healthy(
    device: Device, pool: asyncpg.Pool, redis: aioredis.Redis, http_health: str
) -> None:
    pub = publish(device.repo, "m/3/model.onnx", V2, name="detector-model")
    spec = file_assignment(
        pub, device.apps / "m", assignment_id="as-http", probe=http_probe(f"{http_health}/healthz")
    )
    await assign(pool, redis, DEVICE, spec)
    assert (await _state_of(pool, "as-http", "healthy", "rolled_back", "failed"))[
        "state"
    ] == "healthy"


async def test_log_request_is_answered_from_the_agents_own_log_file(
    device: Device, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    async with pool.acquire() as conn:
        issued = await issue_log_request(conn, DEVICE, source="agent_log_file", max_bytes=4096)
    await mark_changed(redis, issued.revisions)

    async def fulfilled() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT bundle_id IS NOT NULL FROM log_requests WHERE log_request_id = $1",
                issued.request.log_request_id,
            )
        )

    await until(fulfilled, within=30)
    size = await pool.fetchval("SELECT size_bytes FROM log_bundles")
    assert 0 < size <= 4096
