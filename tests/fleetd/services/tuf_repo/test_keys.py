"""Private key files: private permissions, named by key id, checked when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetd.services.tuf_repo.keys import KeyDirs, MissingKeys, signers_for
from fleetd.services.tuf_repo.roles import ROOT, TIMESTAMP


def test_generated_keys_are_private_files_named_by_key_id(tmp_path: Path) -> None:
    dirs = KeyDirs.under(tmp_path)
    signer = dirs.generate(ROOT)
    path = tmp_path / "tuf" / "offline" / "root" / f"{signer.public_key.keyid}.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    online = dirs.generate(TIMESTAMP)
    assert (tmp_path / "tuf" / "online" / "timestamp" / f"{online.public_key.keyid}.key").exists()
    [loaded] = dirs.load(ROOT)
    assert loaded.public_key == signer.public_key


def test_a_key_file_not_named_by_its_key_id_is_refused(tmp_path: Path) -> None:
    dirs = KeyDirs.under(tmp_path)
    signer = dirs.generate(ROOT)
    path = dirs.role_dir(ROOT) / f"{signer.public_key.keyid}.key"
    path.rename(dirs.role_dir(ROOT) / f"{'0' * 64}.key")
    with pytest.raises(ValueError, match="not the key's id"):
        dirs.load(ROOT)


def test_missing_keys_name_the_directory_to_look_in(tmp_path: Path) -> None:
    dirs = KeyDirs.under(tmp_path, offline=tmp_path / "usb")
    signer = dirs.generate(ROOT)
    with pytest.raises(MissingKeys, match="usb/root"):
        signers_for(dirs, ROOT, [signer.public_key.keyid, "f" * 64], 2)


def test_retired_keys_move_out_of_the_role_directory(tmp_path: Path) -> None:
    dirs = KeyDirs.under(tmp_path)
    signer = dirs.generate(ROOT)
    dirs.retire(ROOT, signer.public_key.keyid)
    assert dirs.load(ROOT) == []
    assert (dirs.retired / f"root-{signer.public_key.keyid}.key").exists()
