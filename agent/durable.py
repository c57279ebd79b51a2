"""Durable file operations: what survives a power cut is either the old or the new file.

POSIX ``rename`` is atomic, but neither the new file's content nor the rename itself is
durable until the file and then its directory are fsynced (ext4 with ``data=ordered``
usually gets it right without; other filesystems and SD cards do not).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make renames, links and unlinks in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory:
    temp + fsync + rename + directory fsync. A crash leaves the old file (and perhaps the
    temporary, which the next write replaces)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def unlink_durably(*paths: Path) -> None:
    """Remove the files that exist, then fsync each directory touched once."""
    touched: set[Path] = set()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            touched.add(path.parent)
    for directory in touched:
        fsync_dir(directory)
