"""Installing file-shaped artifacts (file, model, config) atomically, with the previous
version kept beside for rollback.

For a destination ``D`` the agent uses, all in D's own directory (one filesystem, so
``rename`` is atomic):

- ``.D.fleetd-staging`` — the verified content being prepared (temporary);
- ``.D.fleetd-previous.tmp`` — a hard link being made to the current D (temporary);
- ``D.fleetd-previous`` — the version D held before the last swap: the rollback target.

Apply: copy the verified target into the staging file while hashing it again (the TUF
cache is never applied in place, and nothing unverified ever reaches D), fsync, then
keep the current D as the previous version (hard link + rename, so it is the very same
bytes and mode), then ``rename`` staging over D and fsync the directory. Rollback:
``rename`` the previous version back over D (a first install is rolled back by removing
D). Every step is idempotent and decides from what is on disk, so after a crash it can
simply be run again; D is at every moment either the old or the new file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from agent.crashpoints import crash_point
from agent.durable import fsync_dir, unlink_durably

CHUNK = 1024 * 1024
PREVIOUS_SUFFIX = ".fleetd-previous"


class ApplyFailed(Exception):
    """The artifact could not be put in place (the old version is still there)."""


class RollbackFailed(Exception):
    """The previous version could not be restored."""


def staging_path(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}.fleetd-staging")


def previous_path(destination: Path) -> Path:
    return destination.with_name(destination.name + PREVIOUS_SUFFIX)


def _previous_tmp(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}{PREVIOUS_SUFFIX}.tmp")


def temporaries(destination: Path) -> tuple[Path, ...]:
    """Every temporary file an operation on ``destination`` may leave after a crash."""
    return staging_path(destination), _previous_tmp(destination)


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a regular file (not followed through a symlink), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _same_file(a: Path, b: Path) -> bool:
    """Whether both names link one inode: ``rename`` between two such names does nothing
    (POSIX), so keeping the previous version again after a crash must be skipped."""
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except FileNotFoundError:
        return False


def discard(destination: Path) -> None:
    """Remove the operation's temporary files (kept previous version untouched)."""
    unlink_durably(*temporaries(destination))


def stage(source: Path, destination: Path, *, sha256: str, length: int, mode: int) -> None:
    """Copy the verified ``source`` to the staging file beside ``destination``, checking
    the copy's digest and length again; ApplyFailed (and no staging file) if they differ."""
    staging = staging_path(destination)
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    digest = hashlib.sha256()
    size = 0
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    crash_point("stage:opened")
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb", closefd=False) as dst:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > length:
                    break
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fchmod(fd, mode)
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        unlink_durably(staging)
        raise
    os.close(fd)
    if size != length or digest.hexdigest() != sha256:
        unlink_durably(staging)
        raise ApplyFailed(
            "the copied content does not match the verified digest and length; "
            "the cached target changed under the agent"
        )
    fsync_dir(destination.parent)
    crash_point("stage:written")


def swap(destination: Path, *, sha256: str, had_previous: bool) -> None:
    """Keep the current file as the previous version, then rename the staged file into
    place. Idempotent: run again after a crash at any point, it completes the swap."""
    staging = staging_path(destination)
    previous = previous_path(destination)
    if not staging.exists():
        if file_sha256(destination) == sha256:
            return  # swapped before a crash
        raise ApplyFailed(f"the staged copy of {destination} is gone; nothing was changed")
    if had_previous and os.path.lexists(destination) and not _same_file(destination, previous):
        tmp = _previous_tmp(destination)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.link(destination, tmp, follow_symlinks=False)
        crash_point("swap:previous-linked")
        os.replace(tmp, previous)
        fsync_dir(destination.parent)
        crash_point("swap:previous-kept")
    elif not had_previous:
        # A first install rolls back to nothing: an older kept version must not be
        # mistaken for this install's previous one.
        unlink_durably(previous)
    os.replace(staging, destination)
    crash_point("swap:renamed")
    fsync_dir(destination.parent)


def rollback(destination: Path, *, had_previous: bool, previous_sha256: str) -> None:
    """Put back what ``destination`` held before the swap (nothing, for a first install).
    Idempotent, like :func:`swap`."""
    previous = previous_path(destination)
    discard(destination)
    if not had_previous:
        unlink_durably(destination)
        return
    if previous.exists():
        os.replace(previous, destination)
        fsync_dir(destination.parent)
        return
    if file_sha256(destination) != previous_sha256:
        raise RollbackFailed(f"the previous version of {destination} is gone")
