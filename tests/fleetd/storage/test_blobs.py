"""The filesystem blob store: content addressing, dedupe, the size cap, reads by offset."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import asyncpg
import pytest

from fleetd.storage.blobs import Blob, BlobNotFound, BlobTooLarge, FilesystemBlobStore, index_blob


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


async def _put(store: FilesystemBlobStore, *chunks: bytes, max_bytes: int = 1 << 30) -> Blob:
    async with store.writer(max_bytes=max_bytes) as writer:
        for chunk in chunks:
            await writer.write(chunk)
        return await writer.commit()


def _temporaries(store: FilesystemBlobStore) -> list[str]:
    tmp = store.root / "tmp"
    return os.listdir(tmp) if tmp.exists() else []


async def _collect(store: FilesystemBlobStore, sha256: str, **kwargs: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(sha256, **kwargs)])


async def test_blob_is_stored_under_its_sha256(store: FilesystemBlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    blob = await _put(store, data[:1000], data[1000 : 2 * 1024 * 1024], data[2 * 1024 * 1024 :])
    digest = hashlib.sha256(data).hexdigest()
    assert blob == Blob(digest, len(data))
    assert store.path(digest) == store.root / digest[:2] / digest
    assert store.path(digest).read_bytes() == data
    assert _temporaries(store) == []
    assert await store.exists(digest)
    assert await store.size(digest) == len(data)


async def test_empty_blob_is_a_blob(store: FilesystemBlobStore) -> None:
    blob = await _put(store)
    assert blob == Blob(hashlib.sha256(b"").hexdigest(), 0)
    assert store.path(blob.sha256).read_bytes() == b""


async def test_same_content_is_stored_once(store: FilesystemBlobStore) -> None:
    first = await _put(store, b"hello ", b"world")
    inode = store.path(first.sha256).stat().st_ino
    second = await _put(store, b"hello world")
    assert first == second
    assert store.path(first.sha256).stat().st_ino == inode  # the stored copy was kept
    assert sorted(p.name for p in store.root.rglob("*") if p.is_file()) == [first.sha256]


async def test_corrupt_copy_of_the_same_name_is_replaced(store: FilesystemBlobStore) -> None:
    blob = await _put(store, b"the real content")
    store.path(blob.sha256).write_bytes(b"trunc")
    assert await _put(store, b"the real content") == blob
    assert store.path(blob.sha256).read_bytes() == b"the real content"


async def test_content_over_the_cap_is_refused_and_nothing_is_left(
    store: FilesystemBlobStore,
) -> None:
    async with store.writer(max_bytes=10) as writer:
        await writer.write(b"12345")
        with pytest.raises(BlobTooLarge):
            await writer.write(b"678901")
        with pytest.raises(RuntimeError):
            await writer.write(b"x")
    assert _temporaries(store) == []
    assert not any(p.is_file() for p in store.root.rglob("*"))


async def test_content_exactly_at_the_cap_is_accepted(store: FilesystemBlobStore) -> None:
    blob = await _put(store, b"12345", b"67890", max_bytes=10)
    assert blob.size == 10


async def test_abandoned_write_leaves_no_temporary_file(store: FilesystemBlobStore) -> None:
    async def broken_upload() -> None:
        async with store.writer(max_bytes=100) as writer:
            await writer.write(b"partial")
            assert len(_temporaries(store)) == 1
            raise KeyError("the upload broke")

    with pytest.raises(KeyError):
        await broken_upload()
    assert _temporaries(store) == []


async def test_cancelled_write_leaves_no_temporary_file(store: FilesystemBlobStore) -> None:
    started = asyncio.Event()

    async def upload() -> None:
        async with store.writer(max_bytes=1 << 20) as writer:
            await writer.write(b"first chunk")
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(upload())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)  # the shielded removal finishes on its thread
    assert _temporaries(store) == []


async def test_read_from_an_offset_in_chunks(store: FilesystemBlobStore) -> None:
    data = bytes(range(256)) * 40
    blob = await _put(store, data)
    assert await _collect(store, blob.sha256) == data
    assert await _collect(store, blob.sha256, offset=1000) == data[1000:]
    chunks = [c async for c in store.read(blob.sha256, offset=10, chunk_size=4096)]
    assert [len(c) for c in chunks] == [4096, 4096, len(data) - 10 - 8192]
    assert await _collect(store, blob.sha256, offset=len(data)) == b""
    assert await _collect(store, blob.sha256, offset=len(data) + 5) == b""


async def test_reading_a_missing_blob_is_blob_not_found(store: FilesystemBlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await _collect(store, "0" * 64)
    with pytest.raises(BlobNotFound):
        await store.size("0" * 64)
    assert not await store.exists("0" * 64)


@pytest.mark.parametrize("name", ["../../etc/passwd", "A" * 64, "0" * 63, ""])
def test_a_name_that_is_not_a_sha256_never_becomes_a_path(
    store: FilesystemBlobStore, name: str
) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        store.path(name)


async def test_stale_temporaries_are_removed(store: FilesystemBlobStore) -> None:
    (store.root / "tmp").mkdir(parents=True)
    old = store.root / "tmp" / "upload-crashed"
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    fresh = store.root / "tmp" / "upload-in-progress"
    fresh.write_bytes(b"y")
    assert store.remove_stale_temporaries(older_than=60) == 1
    assert _temporaries(store) == ["upload-in-progress"]


async def test_index_row_is_written_once(store: FilesystemBlobStore, pool: asyncpg.Pool) -> None:
    blob = await _put(store, b"indexed")
    await index_blob(pool, blob)
    await index_blob(pool, blob)
    rows = await pool.fetch("SELECT sha256, size_bytes FROM blobs")
    assert [tuple(r) for r in rows] == [(blob.sha256, 7)]
