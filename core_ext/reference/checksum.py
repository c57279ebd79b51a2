"""Chunk checksumming, the pure-Python reference: whole-file SHA-256 and per-chunk digests.

A :class:`Manifest` lets a receiver verify each chunk of a transfer on its own (out of
order, from several sources, after resuming at the first chunk that does not verify) and
the whole file at the end. The compiled ``fleetd_native`` implementation computes the same
manifests, faster and with the GIL released; this module defines what they are:

- ``chunks[i]`` is the lowercase hex SHA-256 of bytes ``[i * chunk_size, (i + 1) *
  chunk_size)``; the last chunk may be shorter; empty input has no chunks.
- ``sha256`` is the lowercase hex SHA-256 of all the bytes, ``size`` their number.
- ``chunk_size`` is a multiple of 64 (the SHA-256 block) from 64 to 1 GiB, so the chunk and
  whole-file digests advance block by block together.
- ``threads`` changes how fast a manifest is computed, never what it is.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import operator
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "ChunkHasher",
    "Manifest",
    "hash_file",
    "verify_chunk",
]

DEFAULT_CHUNK_SIZE = 1 << 20
"""The chunk size when none is given: 1 MiB."""
MAX_CHUNK_SIZE = 1 << 30
"""The largest chunk size accepted: 1 GiB."""
MAX_THREADS = 256
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _check_chunk_size(chunk_size: int) -> int:
    value = operator.index(chunk_size)
    if not 64 <= value <= MAX_CHUNK_SIZE or value % 64:
        raise ValueError(
            f"chunk_size must be a multiple of 64 between 64 and {MAX_CHUNK_SIZE}, not {value}"
        )
    return value


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return min(len(os.sched_getaffinity(0)), MAX_THREADS)
    value = operator.index(threads)
    if not 1 <= value <= MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {MAX_THREADS}, not {value}")
    return value


def _byte_view(data: Buffer) -> memoryview:
    """``data`` as a flat view of bytes; any C-contiguous buffer will do."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise BufferError("data must be a C-contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


@dataclass(frozen=True, slots=True, repr=False)
class Manifest:
    """The digests of one file or stream.

    Attributes:
        sha256: lowercase hex SHA-256 of all the bytes.
        size: the number of bytes.
        chunk_size: the chunk size the manifest was made with.
        chunks: lowercase hex SHA-256 of each chunk, in order.
    """

    sha256: str
    size: int
    chunk_size: int
    chunks: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in ("size", "chunk_size"):
            if not 0 <= operator.index(getattr(self, name)) < 1 << 64:
                raise OverflowError(f"{name} must be a non-negative 64-bit integer")
        chunks = tuple(self.chunks)
        if not isinstance(self.sha256, str) or not all(isinstance(c, str) for c in chunks):
            raise TypeError("sha256 and chunks must be strings")
        object.__setattr__(self, "chunks", chunks)

    def __repr__(self) -> str:
        return (
            f"Manifest(sha256={self.sha256!r}, size={self.size}, "
            f"chunk_size={self.chunk_size}, chunks=<{len(self.chunks)} digests>)"
        )


class ChunkHasher:
    """Streaming SHA-256 over chunks: feed writes of any size, then :meth:`finish`.

    Args:
        chunk_size: bytes per chunk, a multiple of 64 from 64 to 1 GiB (default 1 MiB).
        threads: how many threads large updates may use: 1 hashes on the calling thread,
            2 or more lets the compiled implementation hash the chunks and the whole file
            on two threads (a stream never uses more). Default: 2 when the process may use
            two cores. The reference always uses one.

    Raises:
        ValueError: when ``chunk_size`` or ``threads`` is out of range.
    """

    __slots__ = ("_chunk", "_chunk_fill", "_chunk_size", "_chunks", "_whole")

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE, *, threads: int | None = None) -> None:
        self._chunk_size = _check_chunk_size(chunk_size)
        _check_threads(threads)
        self._whole = hashlib.sha256()
        self._chunk = hashlib.sha256()
        self._chunk_fill = 0
        self._chunks: list[str] = []

    def update(self, data: Buffer) -> None:
        """Absorb ``data`` (bytes, bytearray, memoryview or any C-contiguous buffer).

        Raises:
            TypeError: when ``data`` is not a buffer (``str`` included).
            BufferError: when the buffer is not C-contiguous.
        """
        view = _byte_view(data)
        self._whole.update(view)
        while view:
            piece = view[: self._chunk_size - self._chunk_fill]
            self._chunk.update(piece)
            self._chunk_fill += len(piece)
            view = view[len(piece) :]
            if self._chunk_fill == self._chunk_size:
                self._chunks.append(self._chunk.hexdigest())
                self._chunk = hashlib.sha256()
                self._chunk_fill = 0

    def finish(self) -> Manifest:
        """The manifest of everything absorbed so far; the hasher may go on."""
        chunks = list(self._chunks)
        if self._chunk_fill:
            chunks.append(self._chunk.hexdigest())
        return Manifest(self._whole.hexdigest(), self.size, self._chunk_size, tuple(chunks))

    @property
    def chunk_size(self) -> int:
        """Bytes per chunk."""
        return self._chunk_size

    @property
    def size(self) -> int:
        """Bytes absorbed so far."""
        return len(self._chunks) * self._chunk_size + self._chunk_fill


def hash_file(
    path: str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int | None = None,
) -> Manifest:
    """The manifest of the file at ``path``.

    A regular file is hashed up to the size it had when opened (bytes appended meanwhile are
    left out); anything else (a pipe, a device) is read to its end. The compiled
    implementation reads and hashes chunks on ``threads - 1`` workers while the calling
    thread computes the whole-file digest (default: the cores the process may use).

    Raises:
        OSError: when the file cannot be read, or became shorter while it was hashed.
        ValueError: when ``chunk_size`` or ``threads`` is out of range.
    """
    chunk_size = _check_chunk_size(chunk_size)
    _check_threads(threads)
    hasher = ChunkHasher(chunk_size, threads=1)
    with open(path, "rb", buffering=0) as file:
        info = os.fstat(file.fileno())
        remaining = info.st_size if stat.S_ISREG(info.st_mode) else None
        while remaining is None or remaining > 0:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            data = _read_full(file, want)
            hasher.update(data)
            if len(data) < want:
                if remaining is None:
                    break
                raise OSError(f"{os.fsdecode(path)} became shorter while it was being hashed")
            if remaining is not None:
                remaining -= len(data)
    return hasher.finish()


def _read_full(file: io.FileIO, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at end of file."""
    parts: list[bytes] = []
    missing = size
    while missing:
        part = file.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def verify_chunk(data: Buffer, expected: str) -> bool:
    """Whether ``data`` hashes to ``expected`` (a SHA-256 digest, 64 hex digits, any case).

    Raises:
        ValueError: when ``expected`` is not 64 hexadecimal digits.
        TypeError: when ``data`` is not a buffer or ``expected`` not a ``str``.
    """
    if not isinstance(expected, str):
        raise TypeError(f"expected must be a str, not {type(expected).__name__}")
    if len(expected) != 64 or not _HEX_DIGITS.issuperset(expected):
        raise ValueError("expected must be a SHA-256 digest: 64 hexadecimal digits")
    actual = hashlib.sha256(_byte_view(data)).hexdigest()
    return hmac.compare_digest(actual, expected.lower())
