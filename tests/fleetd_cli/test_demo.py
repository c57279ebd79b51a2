"""The README's first command, end to end: `fleetd demo`, then the README's curl line."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.storage import StorageServers
from tests.support.waiting import free_port


def _demo_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    return env


@pytest.fixture
def demo(servers: StorageServers) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    data_dir = Path(tempfile.mkdtemp(prefix="fleetd-demo-", dir="/tmp"))
    env = {
        **os.environ,
        "FLEETD_DATA_DIR": str(data_dir),
        "FLEETD_API_ADDR": f"127.0.0.1:{free_port()}",
        "FLEETD_GATEWAY_ADDR": f"127.0.0.1:{free_port()}",
    }
    # The demo's own embedded storage, as a fresh machine would run it.
    env.pop("FLEETD_DATABASE_URL", None)
    env.pop("FLEETD_REDIS_URL", None)
    with open(data_dir / "demo.log", "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetd_cli.main",
                "demo",
                "--devices",
                "3",
                "--heartbeat-interval",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, data_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_demo_lists_every_simulated_device_with_recent_last_seen(
    demo: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, data_dir = demo
    env_file = data_dir / "demo.env"
    deadline = time.monotonic() + 60
    devices: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        assert process.poll() is None, (data_dir / "demo.log").read_text()
        if env_file.exists():
            env = _demo_env(env_file)
            # The README's curl line, verbatim but for the variables it reads.
            reply = subprocess.run(
                [
                    "curl",
                    "-s",
                    "--cacert",
                    env["FLEETD_CA_CERT"],
                    "-H",
                    f"X-API-Key: {env['FLEETD_API_KEY']}",
                    "-H",
                    "content-type: application/json",
                    "-d",
                    '{"page_size": 20}',
                    f"{env['FLEETD_ENDPOINT']}/fleetd.v1.DeviceService/ListDevices",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if reply.returncode == 0 and reply.stdout:
                devices = json.loads(reply.stdout).get("devices", [])
                if len(devices) == 3 and all("lastSeen" in d for d in devices):
                    break
        time.sleep(0.5)
    assert sorted(str(d["id"]) for d in devices) == ["demo-001", "demo-002", "demo-003"]
    assert all(d["status"] == "ONLINE" for d in devices)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
