"""The agent's credential files: the pinned TUF root is written with the enrolment."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.credentials import KEY_FILE, TUF_ROOT_FILE, CredentialStore, Enrollment

ENROLLMENT = Enrollment("rpi-001", "default", "127.0.0.1:9443")


def test_enrolment_saves_the_tuf_root_it_was_given(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.ensure_dir()
    store.save_enrollment(ENROLLMENT, b"cert", b"ca", tuf_root=b'{"signed": {}}')
    assert store.tuf_root() == b'{"signed": {}}'
    assert (tmp_path / TUF_ROOT_FILE).stat().st_mode & 0o777 == 0o644


def test_a_server_without_a_tuf_root_leaves_none_pinned(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.ensure_dir()
    store.save_enrollment(ENROLLMENT, b"cert", b"ca")
    assert store.tuf_root() is None


def test_offboarding_wipe_keeps_the_public_root(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.ensure_dir()
    store.save_enrollment(ENROLLMENT, b"cert", b"ca", tuf_root=b"root")
    store.wipe()
    assert store.enrollment() is None and store.tuf_root() == b"root"


def test_offboarding_wipe_goes_on_past_a_file_it_cannot_wipe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CredentialStore(tmp_path / "data")
    store.ensure_dir()
    store.save_enrollment(ENROLLMENT, b"cert", b"ca")
    (tmp_path / "data" / KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----")
    unwipeable = tmp_path / "token-is-a-directory"
    unwipeable.mkdir()
    store.wipe(extra=[unwipeable, tmp_path / "missing-token"])
    assert not (tmp_path / "data" / KEY_FILE).exists()
    assert store.enrollment() is None
    assert "could not wipe" in caplog.text and str(unwipeable) in caplog.text
