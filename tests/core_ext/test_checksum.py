"""Chunk checksumming: the compiled and the reference implementation, the same cases.

Every test taking ``core`` runs twice (see conftest.py). Expected manifests are computed
here with ``hashlib``, independently of both implementations.
"""

from __future__ import annotations

import array
import hashlib
import mmap
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core_ext.compiled
import core_ext.reference

MiB = 1 << 20

fuzz_settings = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def expected(data: bytes, chunk_size: int) -> tuple[str, int, int, tuple[str, ...]]:
    chunks = tuple(
        hashlib.sha256(data[i : i + chunk_size]).hexdigest()
        for i in range(0, len(data), chunk_size)
    )
    return hashlib.sha256(data).hexdigest(), len(data), chunk_size, chunks


def fields(manifest: object) -> tuple[object, ...]:
    return tuple(getattr(manifest, name) for name in ("sha256", "size", "chunk_size", "chunks"))


def manifest_of(core: ModuleType, pieces: list[bytes], chunk_size: int, threads: int = 1) -> object:
    hasher = core.ChunkHasher(chunk_size, threads=threads)
    for piece in pieces:
        hasher.update(piece)
    return hasher.finish()


def pseudo_random(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-looking bytes, quickly."""
    blocks: list[bytes] = []
    counter = 0
    while len(blocks) * 32 < size:
        blocks.append(hashlib.sha256(f"{seed}:{counter}".encode()).digest())
        counter += 1
    return b"".join(blocks)[:size]


@pytest.fixture(scope="module")
def big() -> bytes:
    """9 MiB and a bit: several default chunks, a ragged end."""
    return pseudo_random(9 * MiB + 12345, seed=1)


# --- ChunkHasher ---------------------------------------------------------------------------


def test_empty_input_has_no_chunks(core: ModuleType) -> None:
    manifest = core.ChunkHasher().finish()
    assert fields(manifest) == (hashlib.sha256(b"").hexdigest(), 0, MiB, ())
    assert isinstance(manifest, core.Manifest)


def test_defaults(core: ModuleType) -> None:
    hasher = core.ChunkHasher()
    assert (hasher.chunk_size, hasher.size) == (MiB, 0)
    hasher.update(b"abc")
    assert hasher.size == 3


@pytest.mark.parametrize("chunk_size", [64, 128, 192, 4096])
@pytest.mark.parametrize("extra", [-65, -64, -63, -1, 0, 1, 63, 64, 65])
def test_lengths_around_chunk_boundaries(core: ModuleType, chunk_size: int, extra: int) -> None:
    data = pseudo_random(max(0, 3 * chunk_size + extra))
    assert fields(manifest_of(core, [data], chunk_size)) == expected(data, chunk_size)


@pytest.mark.parametrize("write", [1, 7, 55, 56, 63, 64, 65, 100, 1000])
def test_odd_write_sizes_give_the_same_manifest(core: ModuleType, write: int) -> None:
    data = pseudo_random(5000)
    pieces = [data[i : i + write] for i in range(0, len(data), write)]
    assert fields(manifest_of(core, pieces, 256)) == expected(data, 256)


def test_empty_writes_change_nothing(core: ModuleType) -> None:
    data = pseudo_random(1000)
    pieces = [b"", data[:500], b"", b"", data[500:], b""]
    assert fields(manifest_of(core, pieces, 128)) == expected(data, 128)


def test_finish_does_not_end_the_stream(core: ModuleType) -> None:
    data = pseudo_random(3000)
    hasher = core.ChunkHasher(1024)
    hasher.update(data[:1500])
    assert fields(hasher.finish()) == expected(data[:1500], 1024)
    hasher.update(data[1500:])
    assert fields(hasher.finish()) == expected(data, 1024)
    assert hasher.finish() == hasher.finish()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("chunk_size", [MiB, 64 << 10, 3 << 20, 192 << 10])
def test_large_writes_on_one_or_two_threads(
    core: ModuleType, big: bytes, threads: int, chunk_size: int
) -> None:
    """Writes of several MiB (the compiled one splits them across threads when allowed)."""
    pieces = [big[: 2 * MiB + 7], big[2 * MiB + 7 : 7 * MiB], big[7 * MiB :]]
    manifest = manifest_of(core, pieces, chunk_size, threads)
    assert fields(manifest) == expected(big, chunk_size)


def test_concurrent_streams_each_get_their_own_manifest(core: ModuleType) -> None:
    """Streams on several Python threads at once (they share the one helper thread)."""
    inputs = [pseudo_random(5 * MiB + 77 * i, seed=i) for i in range(4)]
    results: dict[int, object] = {}

    def run(i: int) -> None:
        pieces = [inputs[i][j : j + 2 * MiB] for j in range(0, len(inputs[i]), 2 * MiB)]
        results[i] = manifest_of(core, pieces, MiB, threads=2)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for i, data in enumerate(inputs):
        assert fields(results[i]) == expected(data, MiB)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(bytes, id="bytes"),
        pytest.param(bytearray, id="bytearray"),
        pytest.param(memoryview, id="memoryview"),
        pytest.param(lambda b: memoryview(b"xx" + b + b"yy")[2:-2], id="memoryview-slice"),
        pytest.param(lambda b: array.array("I", b), id="array-of-uint32"),
        pytest.param(lambda b: memoryview(b).cast("B", (len(b) // 4, 4)), id="2d-memoryview"),
    ],
)
def test_any_contiguous_buffer_is_accepted(core: ModuleType, wrap: object) -> None:
    data = pseudo_random(4096 * 5)
    assert callable(wrap)
    assert fields(manifest_of(core, [wrap(data)], 4096)) == expected(data, 4096)


def test_mmap_is_accepted(core: ModuleType, tmp_path: Path) -> None:
    data = pseudo_random(MiB + 100)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert fields(manifest_of(core, [mapped], 65536)) == expected(data, 65536)  # type: ignore[list-item]


@pytest.mark.parametrize("data", ["text", None, 42, [1, 2]])
def test_non_buffer_is_a_type_error(core: ModuleType, data: object) -> None:
    with pytest.raises(TypeError):
        core.ChunkHasher().update(data)


def test_non_contiguous_buffer_is_refused(core: ModuleType) -> None:
    with pytest.raises(BufferError):
        core.ChunkHasher().update(memoryview(b"abcdef")[::2])


@pytest.mark.parametrize("chunk_size", [0, -64, 32, 65, 100, 1000, (1 << 30) + 64, 1 << 31])
def test_chunk_size_must_be_a_multiple_of_64_up_to_1_gib(
    core: ModuleType, chunk_size: int, tmp_path: Path
) -> None:
    with pytest.raises((ValueError, OverflowError)):
        core.ChunkHasher(chunk_size)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises((ValueError, OverflowError)):
        core.hash_file(tmp_path / "f", chunk_size)


@pytest.mark.parametrize("threads", [0, 257])
def test_threads_out_of_range_are_refused(core: ModuleType, threads: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^threads must be between 1 and 256"):
        core.ChunkHasher(threads=threads)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"^threads must be between 1 and 256"):
        core.hash_file(tmp_path / "f", threads=threads)


@fuzz_settings
@given(
    data=st.binary(max_size=3000),
    chunk_size=st.sampled_from([64, 128, 320, 1024]),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
)
def test_any_split_gives_the_manifest_of_the_whole(
    core: ModuleType, data: bytes, chunk_size: int, cuts: list[int]
) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert fields(manifest_of(core, pieces, chunk_size)) == expected(data, chunk_size)


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=5000),
    chunk_size=st.sampled_from([64, 192, 4096]),
    write=st.integers(min_value=1, max_value=700),
)
def test_implementations_agree(data: bytes, chunk_size: int, write: int) -> None:
    pieces = [data[i : i + write] for i in range(0, len(data), write)]
    compiled = manifest_of(core_ext.compiled, pieces, chunk_size)
    reference = manifest_of(core_ext.reference, pieces, chunk_size)
    assert fields(compiled) == fields(reference)
    assert repr(compiled) == repr(reference)


# --- hash_file -----------------------------------------------------------------------------


@pytest.fixture
def big_file(tmp_path: Path, big: bytes) -> Path:
    path = tmp_path / "firmware.bin"
    path.write_bytes(big)
    return path


@pytest.mark.parametrize("threads", [None, 1, 2, 3, 8])
def test_hash_file_gives_the_same_manifest_on_any_number_of_threads(
    core: ModuleType, big_file: Path, big: bytes, threads: int | None
) -> None:
    manifest = core.hash_file(big_file, threads=threads)
    assert fields(manifest) == expected(big, MiB)


@pytest.mark.parametrize("threads", [1, 4])
def test_hash_file_with_many_small_chunks(core: ModuleType, tmp_path: Path, threads: int) -> None:
    data = pseudo_random(200_000)
    path = tmp_path / "small-chunks"
    path.write_bytes(data)
    assert fields(core.hash_file(path, 64, threads)) == expected(data, 64)
    assert fields(core.hash_file(str(path), 4096, threads)) == expected(data, 4096)


@pytest.mark.parametrize("size", [0, 1, 64, MiB - 1, MiB, MiB + 1, 2 * MiB])
def test_hash_file_sizes_around_chunk_boundaries(
    core: ModuleType, tmp_path: Path, size: int
) -> None:
    data = pseudo_random(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    for threads in (1, 2):
        assert fields(core.hash_file(path, threads=threads)) == expected(data, MiB)


def test_hash_file_matches_chunk_hasher(core: ModuleType, big_file: Path, big: bytes) -> None:
    hasher = core.ChunkHasher(256 << 10)
    hasher.update(big)
    assert core.hash_file(big_file, 256 << 10) == hasher.finish()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    """A named pipe with a writer thread: a file with no size to plan by."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    data = pseudo_random(3 * 65536 + 999)

    def write() -> None:
        with path.open("wb") as pipe:
            for i in range(0, len(data), 5000):
                pipe.write(data[i : i + 5000])

    writer = threading.Thread(target=write)
    writer.start()
    yield path, data
    writer.join(timeout=10)


def test_hash_file_reads_a_pipe_to_its_end(core: ModuleType, fifo: tuple[Path, bytes]) -> None:
    path, data = fifo
    assert fields(core.hash_file(path, 65536, threads=4)) == expected(data, 65536)


def test_missing_file_is_file_not_found(core: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        core.hash_file(tmp_path / "absent")


def test_directory_is_an_os_error(core: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="directory"):
        core.hash_file(tmp_path)


def test_both_implementations_hash_files_alike(big_file: Path) -> None:
    compiled = core_ext.compiled.hash_file(big_file, 192 << 10, threads=2)
    reference = core_ext.reference.hash_file(big_file, 192 << 10, threads=2)
    assert fields(compiled) == fields(reference)


# --- verify_chunk and Manifest -------------------------------------------------------------


def test_verify_chunk(core: ModuleType) -> None:
    data = pseudo_random(70_000)
    digest = hashlib.sha256(data).hexdigest()
    assert core.verify_chunk(data, digest)
    assert core.verify_chunk(memoryview(data), digest.upper())
    assert not core.verify_chunk(data[:-1], digest)
    assert not core.verify_chunk(data, digest[:-1] + ("0" if digest[-1] != "0" else "1"))


@pytest.mark.parametrize("expected_hex", ["", "ab" * 31, "ab" * 33, "g" * 64, "é" * 64])
def test_verify_chunk_refuses_what_is_not_a_digest(core: ModuleType, expected_hex: str) -> None:
    with pytest.raises(ValueError, match=r"^expected must be a SHA-256 digest"):
        core.verify_chunk(b"data", expected_hex)


def test_verify_chunk_types(core: ModuleType) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(TypeError):
        core.verify_chunk("x", digest)
    with pytest.raises(TypeError):
        core.verify_chunk(b"x", digest.encode())


def test_manifest_is_an_immutable_value(core: ModuleType) -> None:
    chunks = ("a" * 64, "b" * 64)
    manifest = core.Manifest("c" * 64, 100, 64, chunks)
    assert fields(manifest) == ("c" * 64, 100, 64, chunks)
    assert manifest == core.Manifest("c" * 64, 100, 64, list(chunks))
    assert hash(manifest) == hash(core.Manifest("c" * 64, 100, 64, chunks))
    assert manifest != core.Manifest("c" * 64, 101, 64, chunks)
    assert manifest != "c" * 64
    for name in ("sha256", "size", "chunk_size", "chunks"):
        with pytest.raises(AttributeError):
            setattr(manifest, name, getattr(manifest, name))
    assert (
        repr(manifest)
        == f"Manifest(sha256='{'c' * 64}', size=100, chunk_size=64, chunks=<2 digests>)"
    )


def test_manifest_sizes_are_unsigned_64_bit(core: ModuleType) -> None:
    with pytest.raises(OverflowError):
        core.Manifest("c" * 64, -1, 64, ())
    with pytest.raises(OverflowError):
        core.Manifest("c" * 64, 1 << 64, 64, ())
