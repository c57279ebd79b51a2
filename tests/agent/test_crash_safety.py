"""kill -9 at every step of apply and rollback: the next start ends on exactly the old or
the new version, with no temporary files, and the assignment concluded and reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.crashpoints import ENV, EXIT_CODE, FILE_POINTS
from agent.outbox import Outbox
from agent.state import StateStore
from fleetd.device.v1 import agent_pb2
from tests.support.converging import STATE_NAMES, file_assignment, file_probe, leftovers
from tests.support.target_dir import publish

ROOT = Path(__file__).resolve().parents[2]
OLD = b"old model " * 5000
NEW = b"new model " * 6000

HEALTHY_POINTS = [p for p in FILE_POINTS if not p.startswith("rollback:")]
ROLLBACK_POINTS = [p for p in FILE_POINTS if p != "healthy:reported"]


def _run(root: Path, crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash_at is not None:
        env[ENV] = crash_at
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.apply_child", str(root), str(root / "spec.pb")],
        cwd=ROOT,
        env=env,
        timeout=60,
        capture_output=True,
    )
    assert done.returncode in (0, EXIT_CODE), done.stderr.decode()
    return done.returncode


def _setup(root: Path, *, probe_passes: bool, first_install: bool = False) -> Path:
    (root / "apps").mkdir(parents=True)
    dest = root / "apps" / "model.onnx"
    if not first_install:
        dest.write_bytes(OLD)
    if probe_passes:
        (root / "apps" / "ready").write_bytes(b"1")
    pub = publish(root / "repo", "m/2/model.onnx", NEW, name="detector-model")
    spec = file_assignment(pub, dest, probe=file_probe(root / "apps" / "ready", attempts=1))
    (root / "spec.pb").write_bytes(spec.SerializeToString())
    return dest


def _outcome(root: Path) -> list[str]:
    assert StateStore(root / "data").load().operation is None
    return [STATE_NAMES[r.state] for r in Outbox(root / "data" / "outbox").pending()]


@pytest.mark.parametrize("point", HEALTHY_POINTS)
def test_crash_during_apply_resumes_to_the_new_version(tmp_path: Path, point: str) -> None:
    dest = _setup(tmp_path, probe_passes=True)
    assert _run(tmp_path, point) == EXIT_CODE, f"{point} was never reached"
    assert dest.read_bytes() in (OLD, NEW)  # at the moment of the crash
    assert _run(tmp_path, None) == 0
    assert dest.read_bytes() == NEW
    assert (tmp_path / "apps" / "model.onnx.fleetd-previous").read_bytes() == OLD
    assert leftovers(tmp_path / "apps") == []
    states = _outcome(tmp_path)
    assert states[-1] == "healthy"
    assert states[:3] == ["downloading", "verifying", "applying"]


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
def test_crash_during_a_failing_apply_or_its_rollback_ends_on_the_old_version(
    tmp_path: Path, point: str
) -> None:
    dest = _setup(tmp_path, probe_passes=False)
    assert _run(tmp_path, point) == EXIT_CODE, f"{point} was never reached"
    assert dest.read_bytes() in (OLD, NEW)
    assert _run(tmp_path, None) == 0
    assert dest.read_bytes() == OLD
    assert leftovers(tmp_path / "apps") == []
    assert _outcome(tmp_path)[-1] == "rolled_back"


@pytest.mark.parametrize("point", ["stage:written", "swap:renamed", "rollback:restored"])
def test_crash_during_a_failing_first_install_leaves_nothing(tmp_path: Path, point: str) -> None:
    dest = _setup(tmp_path, probe_passes=False, first_install=True)
    assert _run(tmp_path, point) == EXIT_CODE
    assert _run(tmp_path, None) == 0
    assert sorted(p.name for p in dest.parent.iterdir()) == []
    assert _outcome(tmp_path)[-1] == "rolled_back"


def test_repeated_crashes_after_the_swap_roll_the_new_version_back(tmp_path: Path) -> None:
    dest = _setup(tmp_path, probe_passes=True)
    assert _run(tmp_path, "probe:started") == EXIT_CODE
    assert _run(tmp_path, "probe:started") == EXIT_CODE  # the new version "crashes" again
    assert _run(tmp_path, None) == 0
    assert dest.read_bytes() == OLD
    reports = Outbox(tmp_path / "data" / "outbox").pending()
    assert reports[-1].state == agent_pb2.ARTIFACT_STATE_ROLLED_BACK
    assert reports[-1].reason == "INTERRUPTED"
