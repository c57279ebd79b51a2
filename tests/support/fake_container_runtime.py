"""A stand-in for the podman/docker CLI (neither is installed on the test machines): the
subset the agent uses, with its state (pulled images, containers) in a JSON file and
every call appended to a log, so tests can check what the agent asked for.

Run through a wrapper made by :func:`install`:  RUNTIME pull REF | container inspect
--format {{.Config.Image}} NAME | stop NAME | rename OLD NEW | rm --force NAME |
start NAME | run --detach --name NAME REF. Unknown names fail like the real CLIs (exit 1,
message on stderr). Pulls only accept digest-pinned references.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*@sha256:[0-9a-f]{64}$")


def install(directory: Path) -> Path:
    """A runtime executable in ``directory`` backed by ``directory/runtime.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "fake-runtime"
    exe.write_text(
        f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} {directory} "$@"\n'
    )
    exe.chmod(0o755)
    return exe


def load(directory: Path) -> dict[str, Any]:
    path = directory / "runtime.json"
    if not path.exists():
        return {"images": [], "containers": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _fail(message: str) -> int:
    sys.stderr.write(message + "\n")
    return 1


def main(directory: Path, args: list[str]) -> int:
    state = load(directory)
    with open(directory / "calls.log", "a") as log:
        log.write(" ".join(args) + "\n")
    images: list[str] = state["images"]
    containers: dict[str, dict[str, Any]] = state["containers"]
    match args:
        case ["pull", ref]:
            if not PINNED.match(ref):
                return _fail(f"refusing unpinned reference {ref}")
            if ref not in images:
                images.append(ref)
        case ["container", "inspect", "--format", "{{.Config.Image}}", name]:
            if name not in containers:
                return _fail(f"no such container: {name}")
            sys.stdout.write(containers[name]["image"] + "\n")
            return 0
        case ["stop", name] | ["start", name]:
            if name not in containers:
                return _fail(f"no such container: {name}")
            containers[name]["running"] = args[0] == "start"
        case ["rename", old, new]:
            if old not in containers or new in containers:
                return _fail(f"cannot rename {old} to {new}")
            containers[new] = containers.pop(old)
        case ["rm", "--force", name]:
            containers.pop(name, None)
        case ["run", "--detach", "--name", name, ref]:
            if name in containers:
                return _fail(f"the container name {name} is already in use")
            if ref not in images:
                return _fail(f"image {ref} not pulled")
            containers[name] = {"image": ref, "running": True}
        case _:
            return _fail(f"unsupported: {args}")
    tmp = directory / "runtime.json.new"
    tmp.write_text(json.dumps(state))
    tmp.replace(directory / "runtime.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
