"""``fleetd init`` with a threshold-2 TUF root, then ``fleetd tuf status|rotate-*`` as an
operator runs them (the CLI in-process, real PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from fleetd_cli.main import app


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_init_rotate_and_status(database_url: str, tmp_path: Path) -> None:
    env = {"FLEETD_DATA_DIR": str(tmp_path / "data"), "FLEETD_DATABASE_URL": database_url}
    code, output = _run(env, "init", "--tuf-root-keys", "2", "--tuf-root-threshold", "2")
    assert code == 0, output
    code, output = _run(env, "tuf", "status")
    assert code == 0, output
    assert "2 of 2" in output and "timestamp" in output

    # The offline keys moved to removable media, one of them missing: refused, nothing
    # published.
    usb = tmp_path / "usb"
    shutil.move(tmp_path / "data" / "tuf" / "offline", usb)
    one = sorted((usb / "root").glob("*.key"))[0]
    one.rename(tmp_path / one.name)
    code, output = _run(env, "tuf", "rotate-root", "--keys-dir", str(usb))
    assert code == 1 and "1 of the 2" in output
    one_back = usb / "root" / one.name
    (tmp_path / one.name).rename(one_back)

    code, output = _run(env, "tuf", "rotate-root", "--keys-dir", str(usb), "--threshold", "1")
    assert code == 0, output
    assert "published 2.root.json" in output and "retired root key" in output
    code, output = _run(env, "tuf", "rotate-targets", "--keys-dir", str(usb), "--keep-keys")
    assert code == 0, output
    assert "published 2.targets.json" in output and "3.root.json" not in output
    code, output = _run(env, "tuf", "status", "--keys-dir", str(usb))
    assert code == 0 and "1 of 2" in output
