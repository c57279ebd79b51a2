"""``fleetd metrics``, ``health`` and ``export`` as an operator runs them (subprocesses)
against a running deployment, with the environment ``source .fleetd/demo.env`` sets."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from fleetd.storage.devices import NewDevice, insert_device
from tests.support.deployment import Deployment, running_deployment


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


@pytest.fixture
async def env(deployment: Deployment, pool: asyncpg.Pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        for index, device_type in enumerate(["raspberry-pi", "raspberry-pi", "jetson"]):
            await insert_device(
                conn,
                NewDevice(f"dev-{index}", "default", f"d{index}", device_type, "1.0", {}, {}),
            )
    return {
        **os.environ,
        "FLEETD_ENDPOINT": deployment.api_endpoint,
        "FLEETD_API_KEY": deployment.admin_api_key,
        "FLEETD_CA_CERT": str(deployment.settings.paths.ca_cert),
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
    return Result(process.returncode, stdout.decode(), stderr.decode())


async def test_health_counts_every_matching_device(env: dict[str, str]) -> None:
    result = await _fleetd(env, "health", "--filter", "type:raspberry-pi", "--output", "json")
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["summary"]["totalDevices"] == 2
    assert set(answer["deviceHealth"]) == {"dev-0", "dev-1"}
    table = await _fleetd(env, "health")
    assert table.code == 0, table.stderr
    assert "3 devices:" in table.stdout


async def test_a_bad_filter_exits_1_with_the_servers_message(env: dict[str, str]) -> None:
    result = await _fleetd(env, "health", "--filter", "type:(")
    assert result.code == 1
    assert "invalid_argument" in result.stderr
    assert "Traceback" not in result.stderr


async def test_metrics_asks_get_metrics(env: dict[str, str]) -> None:
    result = await _fleetd(
        env, "metrics", "cpu_usage", "device_count", "--since", "2h", "--output", "json"
    )
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert "summary" in answer
    unknown = await _fleetd(env, "metrics", "cpu")
    assert unknown.code == 1
    assert "unknown metric" in unknown.stderr


async def test_export_waits_for_the_job_and_downloads_the_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "inventory.csv"
    result = await _fleetd(
        env,
        "export",
        "--data-type",
        "DEVICE_INVENTORY",
        "--field",
        "device_id",
        "--field",
        "device_type",
        "-f",
        str(target),
    )
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == str(target)
    with target.open(newline="") as data:
        rows = list(csv.DictReader(data))
    assert sorted((r["device_id"], r["device_type"]) for r in rows) == [
        ("dev-0", "raspberry-pi"),
        ("dev-1", "raspberry-pi"),
        ("dev-2", "jetson"),
    ]
    assert sorted(await asyncio.to_thread(os.listdir, tmp_path)) == ["inventory.csv"]


async def test_without_credentials_the_cli_says_so(env: dict[str, str]) -> None:
    result = await _fleetd({**env, "FLEETD_API_KEY": ""}, "health")
    assert result.code == 1
    assert "unauthenticated" in result.stderr
