"""Content-addressed blobs (log bundles now, uploaded binaries later) on the filesystem.

A blob lives at ``<root>/<aa>/<sha256>`` where ``aa`` is the first two hex digits of its
SHA-256: the name is the content, so the same bytes are stored once and a blob never
changes after it is written. Writing streams into a temporary file under ``<root>/tmp``
(same filesystem, so the final rename is atomic) while hashing; :meth:`BlobWriter.commit`
fsyncs the file, renames it into place and fsyncs the directory, so a blob that
``commit`` returned survives a crash. A write that breaks its size cap or is abandoned
removes its temporary file; files a crash leaves in ``tmp/`` are removed by
:meth:`FilesystemBlobStore.remove_stale_temporaries`.

PostgreSQL's ``blobs`` table is the index (:func:`index_blob`), written by the caller in
the transaction that first refers to the blob, so a row never names a blob that is not on
disk. A blob on disk without a row is harmless (the next write of the same content finds
it); the collector (fleetd/services/blob_collection.py) removes it after a grace period. A commit
that finds its content already stored refreshes the stored file's mtime, so the grace
period protects a deduplicated blob exactly as it protects a freshly written one.

File IO runs in worker threads (``asyncio.to_thread``), one chunk (the caller's, at most
a few MiB) per hop, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from core_ext import ChunkHasher, Manifest
from fleetd.storage.types import Queryable

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_READ_CHUNK = 1 << 20


class BlobTooLarge(ValueError):
    """The content exceeds the writer's size cap; nothing was stored."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"content exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class BlobNotFound(LookupError):
    """No blob with this SHA-256 is stored here."""


@dataclass(frozen=True, slots=True)
class Blob:
    """A stored blob: its lowercase hex SHA-256 and its size in bytes."""

    sha256: str
    size: int


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits (so it is safe as a path component).

    Raises:
        ValueError: otherwise.
    """
    if not _SHA256.match(sha256):
        raise ValueError(f"not a lowercase hex SHA-256: {sha256[:80]!r}")
    return sha256


class BlobWriter(Protocol):
    """One blob being written: feed chunks, then commit. Leaving the ``async with`` block
    without a commit (an error, a cancellation) discards everything written."""

    async def write(self, data: bytes) -> None: ...

    def manifest(self) -> Manifest: ...

    async def commit(self) -> Blob: ...

    async def abort(self) -> None: ...

    async def __aenter__(self) -> BlobWriter: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BlobStore(Protocol):
    """What callers need from a blob store."""

    def writer(self, *, max_bytes: int) -> BlobWriter: ...

    async def exists(self, sha256: str) -> bool: ...

    def read(
        self, sha256: str, *, offset: int = 0, chunk_size: int = DEFAULT_READ_CHUNK
    ) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A blob file as the collector sees it: digest, size and mtime (Unix seconds)."""

    sha256: str
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class RetiredFile:
    """A blob file moved aside by :meth:`FilesystemBlobStore.retire`, with the mtime it had
    once moved (no writer can touch it any more)."""

    sha256: str
    path: Path
    size: int
    mtime: float


class FilesystemBlobStore:
    """Blobs under ``root`` (``Settings.paths.blobs``); created on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def writer(self, *, max_bytes: int) -> _FileWriter:
        """A writer that refuses content longer than ``max_bytes``."""
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        return _FileWriter(self, max_bytes)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def size(self, sha256: str) -> int:
        """The blob's size in bytes.

        Raises:
            BlobNotFound: when it is not stored here.
        """
        try:
            return (await asyncio.to_thread(self.path(sha256).stat)).st_size
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None

    async def read(
        self, sha256: str, *, offset: int = 0, chunk_size: int = DEFAULT_READ_CHUNK
    ) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset`` to its end, ``chunk_size`` bytes at a time
        (the last chunk may be shorter; none at all when ``offset`` is at or past the end).

        Raises:
            BlobNotFound: when it is not stored here (raised at the first iteration).
            ValueError: for a malformed digest, a negative offset or a chunk size below 1.
        """
        if offset < 0 or chunk_size < 1:
            raise ValueError("offset must be >= 0 and chunk_size >= 1")
        path = self.path(sha256)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None
        try:
            await asyncio.to_thread(file.seek, offset)
            while data := await asyncio.to_thread(file.read, chunk_size):
                yield data
        finally:
            await asyncio.to_thread(file.close)

    def remove_stale_temporaries(self, older_than: float = 3600.0) -> int:
        """Delete temporary files a crash left behind (older than ``older_than`` seconds,
        so writes in progress in other processes are spared). Returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self._tmp):
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        return removed

    def stored_files(self) -> list[StoredFile]:
        """Every blob file under the root (anything not named like a blob is ignored)."""
        found: list[StoredFile] = []
        with contextlib.suppress(FileNotFoundError):
            for directory in os.scandir(self.root):
                if len(directory.name) != 2 or not directory.is_dir(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    for entry in os.scandir(directory.path):
                        name = entry.name
                        if not _SHA256.match(name) or name[:2] != directory.name:
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            info = entry.stat(follow_symlinks=False)
                            found.append(StoredFile(name, info.st_size, info.st_mtime))
        return found

    def retire(self, sha256: str) -> RetiredFile | None:
        """Move the blob into ``tmp/`` (atomically, so a writer either touched it before
        or finds it gone and writes its own copy); None when it is not stored."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        aside = self._tmp / f"collect-{sha256}-{secrets.token_hex(4)}"
        try:
            os.rename(self.path(sha256), aside)
        except FileNotFoundError:
            return None
        info = aside.stat()
        return RetiredFile(sha256, aside, info.st_size, info.st_mtime)

    def restore(self, retired: RetiredFile) -> None:
        """Put a retired blob back (unless a writer stored the same content meanwhile)."""
        final = self.path(retired.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.link(retired.path, final)
            _fsync_dir(final.parent)
        retired.path.unlink()

    def discard(self, retired: RetiredFile) -> None:
        """Delete a retired blob for good."""
        with contextlib.suppress(FileNotFoundError):
            retired.path.unlink()


class _FileWriter:
    """A temporary file hashed as it is written; see :class:`BlobWriter`."""

    def __init__(self, store: FilesystemBlobStore, max_bytes: int) -> None:
        self._store = store
        self._max = max_bytes
        self._hasher = ChunkHasher(threads=1)
        self._file: BinaryIO | None = None
        self._tmp_path: Path | None = None
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._hasher.size

    async def __aenter__(self) -> _FileWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            await self.abort()

    def _open(self) -> BinaryIO:
        self._store._tmp.mkdir(parents=True, exist_ok=True)
        path = self._store._tmp / f"upload-{secrets.token_hex(8)}"
        # O_EXCL: a fresh file of our own, never someone else's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._tmp_path = path
        return os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self._file = self._open()
        self._file.write(data)
        self._hasher.update(data)

    async def write(self, data: bytes) -> None:
        """Append ``data``.

        Raises:
            BlobTooLarge: when the content would exceed the cap; the writer is then
                aborted (its temporary file removed) and accepts nothing more.
            RuntimeError: after commit or abort.
        """
        if self._done:
            raise RuntimeError("this blob writer is closed")
        if self.size + len(data) > self._max:
            await self.abort()
            raise BlobTooLarge(self._max)
        if data:
            await asyncio.to_thread(self._write, data)

    def _commit(self) -> Blob:
        if self._file is None:
            self._file = self._open()
        manifest = self._hasher.finish()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        assert self._tmp_path is not None
        final = self._store.path(manifest.sha256)
        directory = final.parent
        created = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        try:
            existing = final.stat().st_size
        except FileNotFoundError:
            existing = None
        if existing == manifest.size and _touch(final):
            # Same name, same size: the same content (dedupe); keep the stored copy, its
            # mtime refreshed so the collector's grace period starts again.
            self._tmp_path.unlink()
        else:
            os.replace(self._tmp_path, final)
            _fsync_dir(directory)
            if created:
                _fsync_dir(self._store.root)
        self._tmp_path = None
        return Blob(manifest.sha256, manifest.size)

    def manifest(self) -> Manifest:
        """SHA-256, size and per-chunk digests (1 MiB chunks) of what was written so far."""
        return self._hasher.finish()

    async def commit(self) -> Blob:
        """Make the content durable under its digest and return it.

        Raises:
            RuntimeError: after commit or abort.
            OSError: when the disk refused (the temporary file is then removed).
        """
        if self._done:
            raise RuntimeError("this blob writer is closed")
        self._done = True
        try:
            return await asyncio.to_thread(self._commit)
        except BaseException:
            await asyncio.to_thread(self._discard)
            raise

    def _discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp_path.unlink()
            self._tmp_path = None

    async def abort(self) -> None:
        """Discard what was written (idempotent)."""
        self._done = True
        # Shielded: a cancelled upload must still remove its temporary file.
        await asyncio.shield(asyncio.to_thread(self._discard))


def _touch(path: Path) -> bool:
    """Set ``path``'s mtime to now; False when it is gone (the collector retired it)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def index_blob(conn: Queryable, blob: Blob) -> None:
    """Record ``blob`` in the ``blobs`` table (nothing happens if it is already there).
    Run it in the transaction that refers to the blob."""
    await conn.execute(
        """INSERT INTO blobs (sha256, size_bytes) VALUES ($1, $2)
           ON CONFLICT (sha256) DO NOTHING""",
        blob.sha256,
        blob.size,
    )
