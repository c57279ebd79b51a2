#!/usr/bin/env python3
"""Build the ``fleetd-agent`` wheel: the device agent alone, pure Python, py3-none-any.

Usage (from anywhere; paths are relative to the repository root)::

    python scripts/build_agent_wheel.py                # -> build/agent-wheel/*.whl
    python scripts/build_agent_wheel.py --out DIR

What ships is computed, not listed: the ``agent`` package tree, plus the generated protobuf
modules it imports (``fleetd.device.v1.agent_pb2``...) and, transitively, the generated modules
those import (``fleetd.v1.device_pb2`` needs ``common_pb2`` and ``update_pb2``). The files are
the ones ``make proto`` wrote, copied byte for byte: there is no second code generation.

The same walk refuses a build whose code would not run alone on a device:

* an import of a hand-written ``fleetd`` module (``fleetd.client``, ``fleetd.storage``...) or
  of a generated Connect module (``*_connect``, which needs connectrpc): server code. The
  exceptions are the server/device contracts in ``SHARED_CONTRACTS``
  (``fleetd.domain.signed_target``), standard-library-only modules shipped as they are;
* an import of a third-party package outside the agent's dependencies (grpcio, protobuf,
  cryptography, tuf and what tuf brings: securesystemslib, urllib3).

Imports under ``if TYPE_CHECKING:`` are not followed (they never run). Every other import
counts, including ones inside functions.

``fleetd`` is shipped without ``__init__.py``: on a device it is a namespace package holding
only ``fleetd.v1`` and ``fleetd.device``; the server's own distribution has the regular
package with the same generated files (see docs/agent.md, "The fleetd name").

The tree is staged under ``build/agent-dist/`` with ``agent/packaging/pyproject.toml`` and
built by pip with the setuptools of the running environment (no build isolation: no download).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENT_PACKAGE = "agent"
DEFAULT_OUT = REPO_ROOT / "build" / "agent-wheel"
STAGE_DIR = REPO_ROOT / "build" / "agent-dist"

# Generated packages (scripts/gen_proto.py writes them) the agent may take modules from.
GENERATED_PACKAGES = ("fleetd.v1", "fleetd.device", "fleetd.device.v1")
GENERATED_SUFFIXES = ("_pb2", "_pb2_grpc")

# Hand-written fleetd modules that are contracts between the server and the device, shipped
# byte for byte so both sides check the same rules. Each must import the standard library
# only (the walk below enforces it like any agent module), and its package's __init__.py
# must import nothing.
SHARED_CONTRACTS = ("fleetd.domain.signed_target",)

# Third-party imports the agent may use: its declared dependencies (agent/packaging/pyproject.toml)
# and tuf's own, which a TUF fetcher may touch. Matched as a module name or its prefix.
ALLOWED_THIRD_PARTY = (
    "grpc",
    "google.protobuf",
    "cryptography",
    "tuf",
    "securesystemslib",
    "urllib3",
)

SHIPPED_SUFFIXES = (".py", ".pyi")


class DistributionError(RuntimeError):
    """The agent imports something it cannot have on a device, or the build failed."""


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    path: Path


def module_path(name: str, root: Path = REPO_ROOT) -> Path | None:
    """The source file of module ``name`` in the source tree at ``root``, or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def agent_modules(root: Path = REPO_ROOT) -> list[Module]:
    """Every module of the ``agent`` package tree (directories with an ``__init__.py``)."""
    found: list[Module] = []

    def walk(directory: Path, package: str) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.is_dir() and (entry / "__init__.py").is_file():
                walk(entry, f"{package}.{entry.name}")
            elif entry.is_file() and entry.suffix == ".py":
                stem = package if entry.name == "__init__.py" else f"{package}.{entry.stem}"
                found.append(Module(stem, entry))

    walk(root / AGENT_PACKAGE, AGENT_PACKAGE)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST) -> Iterator[ast.AST]:
    """All nodes, except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: Module, root: Path = REPO_ROOT) -> set[str]:
    """The absolute module names ``module`` imports. ``from P import n`` yields ``P`` and,
    when ``P.n`` is a module of the repository, ``P.n`` too."""
    tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
    is_package = module.path.name == "__init__.py"
    package_parts = module.name.split(".") if is_package else module.name.split(".")[:-1]
    names: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                parent = ".".join([*base, *([node.module] if node.module else [])])
            else:
                parent = node.module or ""
            names.add(parent)
            for alias in node.names:
                if module_path(f"{parent}.{alias.name}", root) is not None:
                    names.add(f"{parent}.{alias.name}")
    return names


def _is_generated(name: str) -> bool:
    if name in GENERATED_PACKAGES:
        return True
    package, _, leaf = name.rpartition(".")
    return package in GENERATED_PACKAGES and leaf.endswith(GENERATED_SUFFIXES)


def _is_allowed_third_party(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in ALLOWED_THIRD_PARTY)


def shipped_modules(root: Path = REPO_ROOT) -> list[Module]:
    """The agent's modules and the generated ones they need, transitively, in the source
    tree at ``root``; raises DistributionError on any import a device could not satisfy."""
    pending = agent_modules(root)
    shipped = {m.name: m for m in pending}
    problems: list[str] = []
    while pending:
        module = pending.pop()
        for name in sorted(imports_of(module, root)):
            top = name.partition(".")[0]
            if top == AGENT_PACKAGE or name in shipped:
                continue
            if top == "fleetd":
                if name in SHARED_CONTRACTS:
                    path = module_path(name, root)
                    if path is None:
                        problems.append(f"{module.name} imports {name}: missing")
                        continue
                    shipped[name] = Module(name, path)
                    pending.append(shipped[name])
                    continue
                if not _is_generated(name):
                    problems.append(f"{module.name} imports {name}: server code, not for devices")
                    continue
                path = module_path(name, root)
                if path is None:
                    problems.append(f"{module.name} imports {name}: not generated; make proto?")
                    continue
                shipped[name] = Module(name, path)
                pending.append(shipped[name])
            elif top in sys.stdlib_module_names or _is_allowed_third_party(name):
                continue
            else:
                problems.append(f"{module.name} imports {name}: not an agent dependency")
    if problems:
        raise DistributionError("the agent cannot ship alone:\n  " + "\n  ".join(problems))
    # A shipped module's package needs its __init__.py (fleetd itself stays a namespace).
    for name in list(shipped):
        parts = name.split(".")
        for i in range(2, len(parts)):
            parent = ".".join(parts[:i])
            if parts[0] == "fleetd" and parent not in shipped:
                path = module_path(parent, root)
                if path is None or path.name != "__init__.py":
                    raise DistributionError(f"{parent} is not a package")
                if name in SHARED_CONTRACTS and imports_of(Module(parent, path), root):
                    raise DistributionError(f"{parent}/__init__.py must import nothing")
                shipped[parent] = Module(parent, path)
    return sorted(shipped.values(), key=lambda m: m.name)


def stage(modules: list[Module], stage_dir: Path, root: Path = REPO_ROOT) -> None:
    """Lay out the source tree of the distribution: pyproject, README, the modules (with
    their ``.pyi`` stubs where there are any)."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / "agent" / "packaging" / name, stage_dir / name)
    for module in modules:
        relative = module.path.relative_to(root)
        for suffix in SHIPPED_SUFFIXES:
            source = module.path.with_suffix(suffix)
            if source.is_file():
                target = stage_dir / relative.with_suffix(suffix)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def build(out_dir: Path, stage_dir: Path = STAGE_DIR, root: Path = REPO_ROOT) -> Path:
    """Stage the source tree at ``root`` and build its wheel into ``out_dir``; the wheel's
    path."""
    modules = shipped_modules(root)
    stage(modules, stage_dir, root)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("fleetd_agent-*.whl"):
        old.unlink()
    if importlib.util.find_spec("setuptools") is None:  # the backend, used without isolation
        raise DistributionError("setuptools>=69 is needed in this environment")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out_dir),
            str(stage_dir),
        ],
        check=True,
    )
    wheels = sorted(out_dir.glob("fleetd_agent-*.whl"))
    if len(wheels) != 1:
        raise DistributionError(f"expected one fleetd_agent wheel in {out_dir}, found {wheels}")
    check_wheel(wheels[0], {m.path.relative_to(root).as_posix() for m in modules})
    return wheels[0]


def check_wheel(wheel: Path, expected_modules: set[str]) -> None:
    """The wheel is pure and holds exactly the staged modules (and their stubs)."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        if len(dist_info) != 1:
            raise DistributionError(f"{wheel.name}: {len(dist_info)} .dist-info directories")
        wheel_meta = zf.read(f"{dist_info.pop()}/WHEEL").decode()
    if "Tag: py3-none-any" not in wheel_meta or "Root-Is-Purelib: true" not in wheel_meta:
        raise DistributionError(f"{wheel.name} is not a pure py3-none-any wheel:\n{wheel_meta}")
    modules = {n for n in names if n.endswith(".py")}
    if modules != expected_modules:
        raise DistributionError(
            f"{wheel.name}: modules differ from the staged ones: "
            f"extra {sorted(modules - expected_modules)}, "
            f"missing {sorted(expected_modules - modules)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="wheel directory")
    parser.add_argument("--stage", type=Path, default=STAGE_DIR, help="staging directory")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="source tree")
    parser.add_argument(
        "--list", action="store_true", help="print the modules that would ship and exit"
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.list:
            for module in shipped_modules(root):
                print(module.name)
            return 0
        print(build(args.out.resolve(), args.stage.resolve(), root))
    except DistributionError as exc:
        print(f"build_agent_wheel: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
