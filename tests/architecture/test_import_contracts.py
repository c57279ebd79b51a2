"""The import-linter contracts in pyproject.toml (docs/architecture.md) are kept, and they
bite: the same contracts fail on a copy of the tree with one forbidden import added.

``make lint`` runs ``lint-imports`` on the tree itself; these tests run it on copies, with
Python's site processing off so that the editable install's finder cannot point the
analysis back at the real packages.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fleetd", "fleetd_cli", "gateway", "control_api", "agent", "core_ext")


def copy_tree(target: Path) -> Path:
    """The Python sources of every analysed package, and pyproject.toml, under ``target``."""
    for package in PACKAGES:
        for source in (REPO_ROOT / package).rglob("*.py"):
            relative = source.relative_to(REPO_ROOT)
            if "target" in relative.parts or "__pycache__" in relative.parts:
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    shutil.copy2(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # -S: no site processing, so no editable-install finder; site-packages is added by hand
    # after the copy so that import-linter and grimp import, and the copy's packages win.
    paths = [str(tree), *site.getsitepackages()]
    program = (
        "import sys; sys.path[:0] = sys.argv[1:]; "
        "from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True))"
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", program, *paths],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_tree(tmp_path_factory.mktemp("pristine"))


def test_the_tree_keeps_every_contract(pristine: Path) -> None:
    result = lint_imports(pristine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("fleetd/domain/lifecycle.py", "import asyncpg", "The domain does no IO"),
        ("fleetd/domain/lifecycle.py", "import fleetd.storage.devices", "Layers"),
        ("gateway/device_auth.py", "import redis.asyncio", "Only storage speaks"),
        ("control_api/pagination.py", "import asyncpg", "Only storage speaks"),
        ("fleetd/services/pki.py", "import asyncpg", "Only storage speaks"),
        ("fleetd/storage/devices.py", "import fleetd.services.pki", "Layers"),
        ("gateway/device_auth.py", "import control_api.errors", "Layers"),
        ("agent/targets.py", "import fleetd.storage.devices", "The agent runs alone"),
        ("agent/targets.py", "import orjson", "The agent runs alone"),
        ("fleetd/client.py", "import fleetd.settings", "The SDK"),
        ("fleetd/storage/migrate.py", "import fleetd.storage.postgres", "No import cycles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, pristine: Path, module: str, line: str, contract: str
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.rstrip().endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout
