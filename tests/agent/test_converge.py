"""The converge loop on files: apply, probe, roll back, refuse, retry."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.instructions import Policy
from fleetd.device.v1 import agent_pb2
from tests.support.converging import (
    exec_probe,
    file_assignment,
    file_probe,
    leftovers,
    make_converger,
)
from tests.support.target_dir import DirectoryFetcher, publish

OLD = b"model v1 " * 1000
NEW = b"model v2 " * 1200


async def test_new_file_is_installed_reported_healthy_and_recorded(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    pub = publish(rig.repo, "detector-model/2.0.0/model.onnx", NEW, name="detector-model")
    dest = rig.apps / "model.onnx"
    spec = file_assignment(pub, dest, mode=0o640)
    await rig.converger.converge(spec)
    assert dest.read_bytes() == NEW
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert rig.states() == ["downloading", "verifying", "applying", "healthy"]
    assert [r.sequence for r in rig.reports()] == [1, 2, 3, 4]
    assert rig.reports()[-1].installed_version == "2.0.0"
    installed = rig.converger.state.installed["detector-model"]
    assert (installed.version, installed.sha256, installed.previous) == ("2.0.0", pub.sha256, None)
    assert rig.converger.state.operation is None
    assert leftovers(rig.apps) == []
    # A restarted agent remembers it: the same assignment is not applied again.
    again = rig.reload_state()
    again.offer(agent_pb2.DesiredState(revision=2, assignments=[spec]))
    await again.converge_all()
    assert rig.fetcher.fetched == [pub.target_path]


async def test_update_keeps_the_previous_version_beside(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    dest = rig.apps / "model.onnx"
    dest.write_bytes(OLD)
    pub = publish(rig.repo, "m/2/model.onnx", NEW, name="detector-model")
    await rig.converger.converge(file_assignment(pub, dest))
    assert dest.read_bytes() == NEW
    kept = rig.apps / "model.onnx.fleetd-previous"
    assert kept.read_bytes() == OLD
    previous = rig.converger.state.installed["detector-model"].previous
    assert previous is not None and previous.location == str(kept)


async def test_failing_file_probe_rolls_back_to_the_identical_previous_file(
    tmp_path: Path,
) -> None:
    rig = make_converger(tmp_path)
    dest = rig.apps / "model.onnx"
    dest.write_bytes(OLD)
    os.chmod(dest, 0o600)
    before = dest.stat()
    pub = publish(rig.repo, "m/2/model.onnx", NEW, name="detector-model")
    spec = file_assignment(pub, dest, probe=file_probe(rig.apps / "ready"))
    await rig.converger.converge(spec)
    assert dest.read_bytes() == OLD
    after = dest.stat()
    assert (after.st_ino, stat.S_IMODE(after.st_mode)) == (before.st_ino, 0o600)
    assert rig.states() == ["downloading", "verifying", "applying", "rolled_back"]
    last = rig.reports()[-1]
    assert last.reason == "PROBE_FAILED" and "ready" in last.message
    assert leftovers(rig.apps) == []
    assert "detector-model" not in rig.converger.state.installed
    assert rig.converger.state.finished[spec.assignment_id] == "rolled_back"


async def test_failed_first_install_is_removed(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    dest = rig.apps / "model.onnx"
    pub = publish(rig.repo, "m/2/model.onnx", NEW, name="detector-model")
    await rig.converger.converge(file_assignment(pub, dest, probe=file_probe(rig.apps / "no")))
    assert not dest.exists()
    assert rig.states()[-1] == "rolled_back"


async def test_passing_exec_probe_and_reload_command_run_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    reload_script = tmp_path / "reload.sh"
    reload_script.write_text(f'#!/bin/sh\necho "$@" >> {marker}\n')
    probe_script = tmp_path / "check.sh"
    probe_script.write_text('#!/bin/sh\ntest "$1" = "--ready"\n')
    for script in (reload_script, probe_script):
        script.chmod(0o755)
    policy_dirs = (tmp_path / "apps",)
    rig = make_converger(
        tmp_path,
        policy=Policy(
            allowed_dirs=policy_dirs,
            exec_probes=(str(probe_script),),
            reload_commands=(str(reload_script),),
        ),
    )
    pub = publish(rig.repo, "c/1/app.conf", b"threshold = 0.7\n", name="app-config", kind="config")
    spec = file_assignment(
        pub,
        rig.apps / "app.conf",
        name="app-config",
        kind=agent_pb2.ARTIFACT_KIND_CONFIG,
        probe=exec_probe(probe_script, "--ready"),
        reload_command=agent_pb2.ExecAction(path=str(reload_script), args=["a b", "$HOME;x"]),
    )
    await rig.converger.converge(spec)
    assert rig.states()[-1] == "healthy"
    assert marker.read_text() == "a b $HOME;x\n"  # arguments passed as is, no expansion


async def test_failing_exec_probe_rolls_back_and_reloads_the_old_version(tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    reload_script = tmp_path / "reload.sh"
    reload_script.write_text(f"#!/bin/sh\ncat {tmp_path}/apps/app.conf >> {marker}\n")
    probe_script = tmp_path / "check.sh"
    probe_script.write_text("#!/bin/sh\necho not ready\nexit 3\n")
    for script in (reload_script, probe_script):
        script.chmod(0o755)
    rig = make_converger(
        tmp_path,
        policy=Policy(
            allowed_dirs=(tmp_path / "apps",),
            exec_probes=(str(probe_script),),
            reload_commands=(str(reload_script),),
        ),
    )
    dest = rig.apps / "app.conf"
    dest.write_bytes(b"old\n")
    pub = publish(rig.repo, "c/2/app.conf", b"new\n", name="app-config", kind="config")
    spec = file_assignment(
        pub,
        dest,
        name="app-config",
        kind=agent_pb2.ARTIFACT_KIND_CONFIG,
        probe=exec_probe(probe_script),
        reload_command=agent_pb2.ExecAction(path=str(reload_script)),
    )
    await rig.converger.converge(spec)
    assert dest.read_bytes() == b"old\n"
    assert marker.read_text() == "new\nold\n"  # reloaded after the swap and after the restore
    last = rig.reports()[-1]
    assert last.reason == "PROBE_FAILED" and "exited 3: not ready" in last.message


async def test_destination_outside_the_allowlist_is_refused_before_any_download(
    tmp_path: Path,
) -> None:
    rig = make_converger(tmp_path)
    pub = publish(rig.repo, "m/2/model.onnx", NEW, name="detector-model")
    for dest in (tmp_path / "elsewhere" / "x", rig.apps / ".." / "x", rig.apps):
        spec = file_assignment(pub, dest, assignment_id=f"as-{len(rig.reports())}")
        await rig.converger.converge(spec)
    assert rig.states() == ["failed", "failed", "failed"]
    assert {r.reason for r in rig.reports()} == {"NOT_ALLOWLISTED"}
    assert rig.fetcher.fetched == []


async def test_symlink_escape_from_an_allowlisted_directory_is_refused(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (rig.apps / "link").symlink_to(outside)
    (rig.apps / "target").symlink_to(outside / "file")
    pub = publish(rig.repo, "m/2/model.onnx", NEW, name="detector-model")
    await rig.converger.converge(file_assignment(pub, rig.apps / "link" / "m", assignment_id="a"))
    await rig.converger.converge(file_assignment(pub, rig.apps / "target", assignment_id="b"))
    assert rig.states() == ["downloading", "verifying", "failed"] * 2
    assert {r.reason for r in rig.reports() if r.reason} == {"NOT_ALLOWLISTED"}
    assert list(outside.iterdir()) == []
    assert (rig.apps / "target").is_symlink()


async def test_exec_probe_off_the_allowlist_is_refused(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    pub = publish(rig.repo, "m/2/model.onnx", NEW, name="detector-model")
    spec = file_assignment(pub, rig.apps / "m", probe=exec_probe(Path("/bin/true")))
    await rig.converger.converge(spec)
    assert rig.states() == ["failed"]
    assert rig.reports()[0].reason == "NOT_ALLOWLISTED"
    assert not (rig.apps / "m").exists()


async def test_refused_targets_are_never_applied(tmp_path: Path) -> None:
    rig = make_converger(tmp_path, device_type="jetson")
    dest = rig.apps / "model.onnx"
    dest.write_bytes(OLD)
    wrong_hw = publish(rig.repo, "m/2/a", NEW, name="detector-model", hardware="raspberry-pi")
    await rig.converger.converge(file_assignment(wrong_hw, dest, assignment_id="hw"))
    tampered = publish(rig.repo, "m/2/b", NEW, name="detector-model")
    (rig.repo / "m/2/b").write_bytes(NEW[:-1] + b"X")  # served content differs from metadata
    await rig.converger.converge(file_assignment(tampered, dest, assignment_id="digest"))
    other = publish(rig.repo, "m/2/c", NEW, name="another-artifact")
    await rig.converger.converge(file_assignment(other, dest, assignment_id="name"))
    reasons = [r.reason for r in rig.reports() if r.state == agent_pb2.ARTIFACT_STATE_FAILED]
    assert reasons == ["WRONG_HARDWARE", "DIGEST_MISMATCH", "TARGET_MISMATCH"]
    assert dest.read_bytes() == OLD
    assert sorted(p.name for p in rig.apps.iterdir()) == ["model.onnx"]


async def test_release_counter_rollback_is_refused(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    dest = rig.apps / "model.onnx"
    v2 = publish(rig.repo, "m/2", NEW, name="detector-model", release_counter=5)
    await rig.converger.converge(file_assignment(v2, dest))
    v1 = publish(rig.repo, "m/1", OLD, name="detector-model", release_counter=4)
    await rig.converger.converge(file_assignment(v1, dest, version="1.0.0"))
    assert rig.reports()[-1].reason == "RELEASE_COUNTER_ROLLBACK"
    assert dest.read_bytes() == NEW


async def test_transient_download_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    fetcher = DirectoryFetcher(tmp_path / "repo", tmp_path / "cache", failures=3)
    rig = make_converger(tmp_path, fetcher)
    pub = publish(rig.repo, "m/2", NEW, name="detector-model")
    await rig.converger.converge(file_assignment(pub, rig.apps / "m"))
    assert rig.states() == ["downloading", "verifying", "applying", "healthy"]
    assert len(rig.slept) == 3


async def test_a_download_abandoned_when_the_assignment_is_superseded(tmp_path: Path) -> None:
    fetcher = DirectoryFetcher(tmp_path / "repo", tmp_path / "cache", failures=1000)
    rig = make_converger(tmp_path, fetcher)
    pub = publish(rig.repo, "m/2", NEW, name="detector-model")
    rig.converger.offer(agent_pb2.DesiredState(revision=7))
    await rig.converger.converge(file_assignment(pub, rig.apps / "m"))
    assert rig.states() == ["downloading", "failed"]
    assert rig.reports()[-1].reason == "SUPERSEDED"


async def test_content_already_installed_is_reported_healthy_without_download(
    tmp_path: Path,
) -> None:
    rig = make_converger(tmp_path)
    pub = publish(rig.repo, "m/2", NEW, name="detector-model")
    await rig.converger.converge(file_assignment(pub, rig.apps / "m"))
    await rig.converger.converge(file_assignment(pub, rig.apps / "m", assignment_id="again"))
    assert rig.states("again") == ["healthy"]
    assert rig.fetcher.fetched == ["m/2"]


async def test_setuid_mode_and_bad_probe_bounds_are_refused(tmp_path: Path) -> None:
    rig = make_converger(tmp_path)
    pub = publish(rig.repo, "m/2", NEW, name="detector-model")
    await rig.converger.converge(file_assignment(pub, rig.apps / "m", mode=0o4755))
    probe = file_probe(rig.apps / "ready", attempts=11)
    await rig.converger.converge(file_assignment(pub, rig.apps / "m", probe=probe, version="3"))
    assert [r.reason for r in rig.reports()] == ["INVALID_INSTRUCTION"] * 2
