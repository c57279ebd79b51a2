"""Installing container artifacts through the local runtime's CLI (podman or docker).

The TUF target of a container artifact is its signed reference: a small JSON document
``{"image": "registry/name", "digest": "sha256:<hex>"}``. The agent checks it against the
assignment's ContainerSpec (so the control plane cannot substitute an image the release
signing keys never signed), then pulls and runs ``image@digest`` — a digest-pinned
reference the runtime verifies as it pulls.

The running container ``NAME`` is replaced like a file: the old container is stopped and
renamed ``NAME-fleetd-previous`` (kept, with its image, for rollback), and a new
``NAME`` is started from the pinned reference. Rollback removes the new container and
renames the previous one back. Each step decides from what the runtime reports, so it
can be run again after a crash.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from agent import commands
from agent.crashpoints import crash_point
from agent.files import ApplyFailed, RollbackFailed
from agent.instructions import Instruction, Refused

PULL_TIMEOUT = 1800.0
CALL_TIMEOUT = 120.0
PREVIOUS_SUFFIX = "-fleetd-previous"
MAX_REFERENCE_BYTES = 64 * 1024
REFERENCE_MISMATCH = "REFERENCE_MISMATCH"
NO_CONTAINER_RUNTIME = "NO_CONTAINER_RUNTIME"


class RuntimeError_(Exception):
    """A runtime command failed; the message carries its output."""


def resolve_runtime(setting: str) -> str | None:
    """The runtime executable for ``--container-runtime`` (auto, podman, docker, none, or
    an absolute path); None for none, or auto when neither is installed."""
    if setting == "none":
        return None
    if setting == "auto":
        return shutil.which("podman") or shutil.which("docker")
    if setting in ("podman", "docker"):
        found = shutil.which(setting)
        if found is None:
            raise ValueError(f"--container-runtime {setting}: not found on PATH")
        return found
    path = Path(setting)
    if not path.is_absolute() or not path.is_file():
        raise ValueError(
            f"--container-runtime {setting!r}: auto, podman, docker, none or an absolute path"
        )
    return setting


def check_reference(target: Path, instruction: Instruction) -> None:
    """Refuse unless the signed reference names the assignment's image and digest."""
    raw = target.read_bytes()[: MAX_REFERENCE_BYTES + 1]
    try:
        if len(raw) > MAX_REFERENCE_BYTES:
            raise ValueError("too large")
        signed = json.loads(raw)
        image, digest = signed["image"], signed["digest"]
    except (ValueError, KeyError, TypeError):
        raise Refused(
            REFERENCE_MISMATCH, 'the signed target is not a {"image", "digest"} reference'
        ) from None
    if (image, digest) != (instruction.image, instruction.digest):
        raise Refused(
            REFERENCE_MISMATCH,
            f"the signed reference is {image}@{digest}, the assignment says "
            f"{instruction.reference}",
        )


class ContainerRuntime:
    """The podman/docker CLI subset both share: pull, inspect, stop, rename, rm, run, start."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    async def _call(self, *args: str, within: float = CALL_TIMEOUT) -> str:
        try:
            done = await commands.run((self.executable, *args), within)
        except OSError as exc:
            raise RuntimeError_(f"cannot run {self.executable}: {exc.strerror}") from None
        if done.returncode != 0:
            status = "timed out" if done.returncode is None else f"exited {done.returncode}"
            raise RuntimeError_(
                f"{Path(self.executable).name} {args[0]} {status}: {commands.tail(done.output)}"
            )
        return done.output.decode("utf-8", "replace").strip()

    async def image_of(self, name: str) -> str | None:
        """The reference container ``name`` was created from, or None if there is none."""
        try:
            return await self._call("container", "inspect", "--format", "{{.Config.Image}}", name)
        except RuntimeError_:
            return None

    async def pull(self, reference: str) -> None:
        await self._call("pull", reference, within=PULL_TIMEOUT)

    async def stop(self, name: str) -> None:
        await self._call("stop", name)

    async def rename(self, old: str, new: str) -> None:
        await self._call("rename", old, new)

    async def remove(self, name: str) -> None:
        await self._call("rm", "--force", name)

    async def start(self, name: str) -> None:
        await self._call("start", name)

    async def run(self, name: str, reference: str) -> None:
        await self._call("run", "--detach", "--name", name, reference)


def previous_name(name: str) -> str:
    return name + PREVIOUS_SUFFIX


async def stage(runtime: ContainerRuntime, reference: str) -> None:
    try:
        await runtime.pull(reference)
    except RuntimeError_ as exc:
        raise ApplyFailed(str(exc)) from None
    crash_point("container:pulled")


async def swap(runtime: ContainerRuntime, name: str, reference: str) -> None:
    """Stop and keep the current container, start the new one (idempotent)."""
    try:
        current = await runtime.image_of(name)
        if current == reference:
            await runtime.start(name)  # created before a crash: make sure it runs
            return
        if current is not None:
            kept = previous_name(name)
            if await runtime.image_of(kept) is not None:
                await runtime.remove(kept)  # the version before last
            await runtime.stop(name)
            crash_point("container:previous-stopped")
            await runtime.rename(name, kept)
            crash_point("container:previous-renamed")
        await runtime.run(name, reference)
        crash_point("container:started")
    except RuntimeError_ as exc:
        raise ApplyFailed(str(exc)) from None


async def rollback(
    runtime: ContainerRuntime, name: str, reference: str, *, had_previous: bool
) -> None:
    """Remove the new container and restart the kept one (idempotent)."""
    kept = previous_name(name)
    try:
        current = await runtime.image_of(name)
        if current == reference:
            await runtime.remove(name)
            crash_point("container:new-removed")
        elif current is not None:
            await runtime.start(name)  # restored before a crash
            return
        if not had_previous:
            return
        if await runtime.image_of(kept) is None:
            raise RollbackFailed(f"the previous container {kept} is gone")
        await runtime.rename(kept, name)
        crash_point("container:previous-restored")
        await runtime.start(name)
    except RuntimeError_ as exc:
        raise RollbackFailed(str(exc)) from None
