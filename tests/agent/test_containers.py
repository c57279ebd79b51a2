"""Container artifacts through the runtime CLI (a recording fake of podman/docker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.containers import ContainerRuntime, resolve_runtime
from agent.crashpoints import CONTAINER_POINTS, ENV, EXIT_CODE
from fleetd.device.v1 import agent_pb2
from tests.support import fake_container_runtime
from tests.support.converging import file_probe, make_converger
from tests.support.target_dir import publish

ROOT = Path(__file__).resolve().parents[2]
OLD_DIGEST = "sha256:" + "1" * 64
NEW_DIGEST = "sha256:" + "2" * 64
IMAGE = "registry.example.com/detector"
OLD_REF, NEW_REF = f"{IMAGE}@{OLD_DIGEST}", f"{IMAGE}@{NEW_DIGEST}"


def _spec(
    root: Path, *, signed_digest: str = NEW_DIGEST, probe: agent_pb2.HealthProbe | None = None
) -> agent_pb2.ArtifactAssignment:
    reference = json.dumps({"image": IMAGE, "digest": signed_digest}).encode()
    pub = publish(
        root / "repo", "detector/2.0.0/image.json", reference, name="detector", kind="container"
    )
    spec = agent_pb2.ArtifactAssignment(
        assignment_id="as-detector-2",
        name="detector",
        version="2.0.0",
        kind=agent_pb2.ARTIFACT_KIND_CONTAINER,
        target_path=pub.target_path,
        sha256=pub.sha256,
        length=pub.length,
        container=agent_pb2.ContainerSpec(
            image=IMAGE, digest=NEW_DIGEST, container_name="detector"
        ),
    )
    if probe is not None:
        spec.health_probe.CopyFrom(probe)
    return spec


def _runtime_with_old_version(root: Path) -> Path:
    exe = fake_container_runtime.install(root / "runtime")
    for args in (["pull", OLD_REF], ["run", "--detach", "--name", "detector", OLD_REF]):
        subprocess.run([exe, *args], check=True)
    return exe


def _containers(root: Path) -> dict[str, dict[str, object]]:
    containers: dict[str, dict[str, object]] = fake_container_runtime.load(root / "runtime")[
        "containers"
    ]
    return containers


async def test_new_image_runs_pinned_by_digest_and_the_old_container_is_kept(
    tmp_path: Path,
) -> None:
    exe = _runtime_with_old_version(tmp_path)
    rig = make_converger(tmp_path, runtime=ContainerRuntime(str(exe)))
    await rig.converger.converge(_spec(tmp_path))
    assert rig.states() == ["downloading", "verifying", "applying", "healthy"]
    assert _containers(tmp_path) == {
        "detector": {"image": NEW_REF, "running": True},
        "detector-fleetd-previous": {"image": OLD_REF, "running": False},
    }
    installed = rig.converger.state.installed["detector"]
    assert installed.previous is not None and installed.previous.sha256 == "1" * 64


async def test_failing_probe_restores_the_previous_container(tmp_path: Path) -> None:
    exe = _runtime_with_old_version(tmp_path)
    rig = make_converger(tmp_path, runtime=ContainerRuntime(str(exe)))
    await rig.converger.converge(_spec(tmp_path, probe=file_probe(rig.apps / "ready")))
    assert rig.states()[-1] == "rolled_back"
    assert _containers(tmp_path) == {"detector": {"image": OLD_REF, "running": True}}


async def test_a_reference_the_release_keys_did_not_sign_is_refused(tmp_path: Path) -> None:
    exe = _runtime_with_old_version(tmp_path)
    rig = make_converger(tmp_path, runtime=ContainerRuntime(str(exe)))
    await rig.converger.converge(_spec(tmp_path, signed_digest="sha256:" + "3" * 64))
    assert rig.reports()[-1].reason == "REFERENCE_MISMATCH"
    calls = (tmp_path / "runtime" / "calls.log").read_text()
    assert "pull " + NEW_REF not in calls
    assert _containers(tmp_path) == {"detector": {"image": OLD_REF, "running": True}}


async def test_without_a_runtime_containers_fail_clearly(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    await rig.converger.converge(_spec(tmp_path))
    assert [r.reason for r in rig.reports()] == ["NO_CONTAINER_RUNTIME"]


def test_runtime_setting_resolves_none_and_paths(tmp_path: Path) -> None:
    exe = fake_container_runtime.install(tmp_path)
    assert resolve_runtime("none") is None
    assert resolve_runtime(str(exe)) == str(exe)
    with pytest.raises(ValueError, match="absolute path"):
        resolve_runtime("relative/podman")


def _child(root: Path, exe: Path, crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash_at:
        env[ENV] = crash_at
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.apply_child",
            str(root),
            str(root / "spec.pb"),
            "--runtime",
            str(exe),
        ],
        cwd=ROOT,
        env=env,
        timeout=60,
        capture_output=True,
    )
    assert done.returncode in (0, EXIT_CODE), done.stderr.decode()
    return done.returncode


_ROLLBACK_ONLY = ("container:new-removed", "container:previous-restored")
_CASES = [(p, True) for p in CONTAINER_POINTS if p not in _ROLLBACK_ONLY] + [
    (p, False) for p in CONTAINER_POINTS
]


@pytest.mark.parametrize(("point", "probe_passes"), _CASES)
def test_crash_at_every_container_step_ends_on_one_version(
    tmp_path: Path, point: str, probe_passes: bool
) -> None:
    exe = _runtime_with_old_version(tmp_path)
    (tmp_path / "apps").mkdir(exist_ok=True)
    if probe_passes:
        (tmp_path / "apps" / "ready").write_text("1")
    spec = _spec(tmp_path, probe=file_probe(tmp_path / "apps" / "ready", attempts=1))
    (tmp_path / "spec.pb").write_bytes(spec.SerializeToString())
    assert _child(tmp_path, exe, point) == EXIT_CODE, f"{point} was never reached"
    assert _child(tmp_path, exe, None) == 0
    expected = NEW_REF if probe_passes else OLD_REF
    containers = _containers(tmp_path)
    assert containers["detector"] == {"image": expected, "running": True}
    others = {name for name in containers if name != "detector"}
    assert others <= {"detector-fleetd-previous"}
