"""``fleetd logs`` as an operator runs it (a subprocess) against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
import typer

from fleetd.storage import redis_keys
from fleetd.storage.blobs import FilesystemBlobStore
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.log_requests import fulfil
from fleetd_cli.common import parse_time
from fleetd_cli.logs import parse_size

BUNDLE = gzip.compress(b"Jan 01 agent[42]: hello\n" * 1000)


@dataclass
class Result:
    code: int
    raw_stdout: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        return self.raw_stdout.decode()


@pytest.fixture
async def device(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        await insert_device(
            conn, NewDevice("rpi-001", "default", "rpi", "raspberry-pi", "1", {}, {})
        )
    return "rpi-001"


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLEETD_DATA_DIR": str(tmp_path / "data"),
        "FLEETD_DATABASE_URL": database_url,
        "FLEETD_REDIS_URL": redis_url,
        "COLUMNS": "200",
    }


async def _fleetd(env: dict[str, str], *args: str) -> Result:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetd_cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, stdout, stderr.decode())


async def _answer(env: dict[str, str], pool: asyncpg.Pool, request_id: str) -> str:
    """What the gateway does on an upload: blob into the store, then fulfil."""
    store = FilesystemBlobStore(Path(env["FLEETD_DATA_DIR"]) / "blobs")
    async with store.writer(max_bytes=len(BUNDLE)) as writer:
        await writer.write(BUNDLE)
        blob = await writer.commit()
    async with pool.acquire() as conn:
        done = await fulfil(
            conn, "rpi-001", request_id, blob, content_encoding="gzip", uncompressed_size=24000
        )
    return done.bundle.bundle_id


async def test_request_list_and_get_a_bundle(
    env: dict[str, str], pool: asyncpg.Pool, redis: aioredis.Redis, device: str, tmp_path: Path
) -> None:
    requested = await _fleetd(
        env,
        "logs",
        "request",
        device,
        "--source",
        "agent_log_file",
        "--since",
        "2h",
        "--max-bytes",
        "1MiB",
    )
    assert requested.code == 0, requested.stderr
    request_id = requested.stdout.strip()
    assert request_id.startswith("lr_")
    assert "next heartbeat" in requested.stderr
    row = await pool.fetchrow("SELECT source, max_bytes, since, requested_by FROM log_requests")
    assert row is not None
    assert (row["source"], row["max_bytes"]) == ("agent_log_file", 1 << 20)
    assert row["requested_by"].startswith("cli")
    age = dt.datetime.now(dt.UTC) - row["since"]
    assert dt.timedelta(hours=2) <= age < dt.timedelta(hours=2, minutes=5)
    # The gateways' cache learnt of the new revision.
    assert await redis.hget(redis_keys.desired_state(device), "rev") == b"1"

    listed = await _fleetd(env, "logs", "list", device)
    assert listed.code == 0, listed.stderr
    assert request_id in listed.stdout
    assert "pending" in listed.stdout

    bundle_id = await _answer(env, pool, request_id)
    listed = await _fleetd(env, "logs", "list", device)
    assert "fulfilled" in listed.stdout
    assert bundle_id in listed.stdout

    output = tmp_path / "bundle.gz"
    fetched = await _fleetd(env, "logs", "get", bundle_id, "-o", str(output))
    assert fetched.code == 0, fetched.stderr
    assert output.read_bytes() == BUNDLE
    assert gzip.decompress(output.read_bytes()).startswith(b"Jan 01 agent[42]")
    to_stdout = await _fleetd(env, "logs", "get", bundle_id, "-o", "-")
    assert to_stdout.code == 0
    assert to_stdout.raw_stdout == BUNDLE
    assert "rpi-001" in to_stdout.stderr


async def test_request_for_an_unknown_device_fails_with_a_message(env: dict[str, str]) -> None:
    result = await _fleetd(env, "logs", "request", "ghost")
    assert result.code == 1
    assert "no active device 'ghost'" in result.stderr
    assert "Traceback" not in result.stderr


async def test_request_with_a_bad_source_fails_with_a_message(
    env: dict[str, str], device: str
) -> None:
    result = await _fleetd(env, "logs", "request", device, "--source", "/etc/shadow")
    assert result.code == 2
    assert "log source must be one of agent_journal, agent_log_file" in result.stderr


async def test_get_of_an_unknown_bundle_fails_with_a_message(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = await _fleetd(env, "logs", "get", "lb_nothing", "-o", str(tmp_path / "x.gz"))
    assert result.code == 1
    assert "no log bundle 'lb_nothing'" in result.stderr
    assert not (tmp_path / "x.gz").exists()


async def test_get_of_a_corrupt_bundle_writes_nothing(
    env: dict[str, str], pool: asyncpg.Pool, device: str, tmp_path: Path
) -> None:
    requested = await _fleetd(env, "logs", "request", device)
    bundle_id = await _answer(env, pool, requested.stdout.strip())
    sha256 = await pool.fetchval("SELECT sha256 FROM log_bundles")
    FilesystemBlobStore(Path(env["FLEETD_DATA_DIR"]) / "blobs").path(sha256).write_bytes(b"bad")
    output = tmp_path / "bundle.gz"
    result = await _fleetd(env, "logs", "get", bundle_id, "-o", str(output))
    assert result.code == 1
    assert "corrupt" in result.stderr
    assert not output.exists()
    assert not (tmp_path / ".bundle.gz.partial").exists()


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1 << 20),
        ("512KiB", 512 << 10),
        ("4MiB", 4 << 20),
        ("16M", 16 << 20),
        ("2k", 2048),
    ],
)
def test_sizes_parse_in_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_size_is_a_bad_parameter() -> None:
    with pytest.raises(typer.BadParameter, match="4MiB"):
        parse_size("4 gigs")


def test_times_are_iso_or_a_duration_ago() -> None:
    now = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_time("2h", now) == dt.datetime(2025, 6, 1, 10, 0, tzinfo=dt.UTC)
    assert parse_time("2025-05-31T08:00:00", now) == dt.datetime(2025, 5, 31, 8, tzinfo=dt.UTC)
    assert parse_time("2025-05-31T08:00:00+02:00", now) == dt.datetime(
        2025, 5, 31, 6, tzinfo=dt.UTC
    )
    with pytest.raises(typer.BadParameter, match="ISO 8601"):
        parse_time("yesterday", now)
