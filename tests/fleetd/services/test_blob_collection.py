"""The blob collector: its IO-free policy, and rounds over a real filesystem store and a
real (migrated) PostgreSQL, including writers that race it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from core_ext import ChunkHasher, Manifest
from fleetd.services.blob_collection import (
    CollectionPolicy,
    CollectionReport,
    PostgresBlobIndex,
    collect,
)
from fleetd.storage.binaries import NewBinary, insert_binary
from fleetd.storage.blob_index import REFERENCING_TABLES, collector_lock
from fleetd.storage.blobs import Blob, FilesystemBlobStore, RetiredFile, StoredFile, index_blob

GRACE = 3600.0
HOURS_AGO = time.time() - 2 * GRACE


def _file(sha: str, mtime: float) -> StoredFile:
    return StoredFile(sha, 1, mtime)


# --- the policy, without IO -------------------------------------------------------------


def test_policy_takes_only_old_unreferenced_files() -> None:
    policy = CollectionPolicy(grace_period=100.0)
    now = 10_000.0
    files = [_file("a" * 64, now - 500), _file("b" * 64, now - 50), _file("c" * 64, now - 500)]
    assert [f.sha256 for f in policy.old_files(files, now)] == ["a" * 64, "c" * 64]
    assert policy.candidates(files, {"c" * 64}, [], now) == ["a" * 64]


def test_policy_takes_index_rows_only_when_their_file_is_gone() -> None:
    policy = CollectionPolicy(grace_period=100.0)
    now = 10_000.0
    young = _file("b" * 64, now - 1)
    # "b" has a young file: its row stays with it; "d" has no file at all.
    assert policy.candidates([young], set(), ["b" * 64, "d" * 64], now) == ["d" * 64]


def test_policy_bounds_a_round() -> None:
    policy = CollectionPolicy(grace_period=0.0, max_per_round=2)
    files = [_file(c * 64, 0.0) for c in "abc"]
    assert policy.candidates(files, set(), [], 1.0) == ["a" * 64, "b" * 64]


def test_policy_puts_back_a_retired_file_touched_or_referenced_meanwhile() -> None:
    policy = CollectionPolicy(grace_period=100.0)
    now = 10_000.0
    old = RetiredFile("a" * 64, Path("/x"), 1, now - 500)
    touched = RetiredFile("a" * 64, Path("/x"), 1, now - 5)
    assert not policy.keep_retired(old, False, now)
    assert policy.keep_retired(old, True, now)
    assert policy.keep_retired(touched, False, now)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="grace_period"):
        CollectionPolicy(grace_period=-1.0)


# --- rounds over real files and PostgreSQL ----------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


async def _put(store: FilesystemBlobStore, data: bytes) -> Blob:
    async with store.writer(max_bytes=1 << 30) as writer:
        await writer.write(data)
        return await writer.commit()


def _age(path: Path, when: float = HOURS_AGO) -> None:
    os.utime(path, (when, when))


async def _age_row(pool: asyncpg.Pool, sha256: str) -> None:
    await pool.execute(
        "UPDATE blobs SET created_at = now() - interval '2 hours' WHERE sha256 = $1", sha256
    )


async def _round(store: FilesystemBlobStore, pool: asyncpg.Pool) -> CollectionReport:
    return await collect(store, PostgresBlobIndex(pool), CollectionPolicy(GRACE), now=time.time())


async def _old_indexed_blob(store: FilesystemBlobStore, pool: asyncpg.Pool, data: bytes) -> Blob:
    blob = await _put(store, data)
    await index_blob(pool, blob)
    _age(store.path(blob.sha256))
    await _age_row(pool, blob.sha256)
    return blob


async def _rows(pool: asyncpg.Pool) -> list[str]:
    return [r["sha256"] for r in await pool.fetch("SELECT sha256 FROM blobs ORDER BY sha256")]


async def test_an_old_unreferenced_blob_loses_its_row_and_its_file(
    store: FilesystemBlobStore, pool: asyncpg.Pool
) -> None:
    blob = await _old_indexed_blob(store, pool, b"orphan")
    report = await _round(store, pool)
    assert report.removed == [blob.sha256]
    assert not store.path(blob.sha256).exists()
    assert await _rows(pool) == []
    assert os.listdir(store.root / "tmp") == []  # the retired file is gone too


async def test_a_young_file_without_a_row_is_kept(
    store: FilesystemBlobStore, pool: asyncpg.Pool
) -> None:
    # An upload between its blob commit and its row insert looks exactly like this.
    blob = await _put(store, b"just committed")
    report = await _round(store, pool)
    assert report.removed == [] and report.kept == []
    assert store.path(blob.sha256).read_bytes() == b"just committed"


async def test_an_old_file_with_a_young_row_is_kept(
    store: FilesystemBlobStore, pool: asyncpg.Pool
) -> None:
    blob = await _put(store, b"row just written")
    await index_blob(pool, blob)
    _age(store.path(blob.sha256))
    report = await _round(store, pool)
    assert report.kept == [blob.sha256] and report.removed == []
    assert store.path(blob.sha256).exists()
    assert await _rows(pool) == [blob.sha256]


async def test_an_old_orphan_file_without_a_row_is_removed(
    store: FilesystemBlobStore, pool: asyncpg.Pool
) -> None:
    blob = await _put(store, b"crashed before its row")
    _age(store.path(blob.sha256))
    assert (await _round(store, pool)).removed == [blob.sha256]
    assert not store.path(blob.sha256).exists()


async def test_an_old_row_whose_file_is_gone_is_dropped(
    store: FilesystemBlobStore, pool: asyncpg.Pool
) -> None:
    blob = await _old_indexed_blob(store, pool, b"file lost")
    store.path(blob.sha256).unlink()
    report = await _round(store, pool)
    assert report.index_rows_dropped == [blob.sha256]
    assert await _rows(pool) == []


async def _reference(pool: asyncpg.Pool, table: str, blob: Blob, data: bytes) -> None:
    """A row of ``table`` naming ``blob`` (the minimum each table needs)."""
    sha, size = blob.sha256, blob.size
    if table == "binaries":
        hasher = ChunkHasher(threads=1)
        hasher.update(data)
        async with pool.acquire() as conn:
            await insert_binary(conn, NewBinary(name="f.bin"), blob, hasher.finish())
    elif table == "log_bundles":
        await pool.execute("INSERT INTO devices (device_id, fleet) VALUES ('d1', 'default')")
        await pool.execute(
            """INSERT INTO log_requests (log_request_id, device_id, source, max_bytes,
                                         expires_at)
               VALUES ('lr1', 'd1', 'agent_journal', 1000, now() + interval '1 hour')"""
        )
        await pool.execute(
            """INSERT INTO log_bundles (bundle_id, log_request_id, device_id, sha256,
                                        size_bytes, content_encoding, uncompressed_size)
               VALUES ('lb1', 'lr1', 'd1', $1, $2, 'gzip', $2)""",
            sha,
            size,
        )
    elif table == "tuf_targets":
        await pool.execute(
            "INSERT INTO tuf_targets (path, sha256, length, custom) VALUES ('a/f', $1, $2, $3)",
            sha,
            size,
            {},
        )
    elif table == "update_artifacts":
        await pool.execute(
            """INSERT INTO updates (update_id, name, version, strategy)
               VALUES ('u1', 'u', '1', '')"""
        )
        await pool.execute(
            """INSERT INTO update_artifacts (artifact_id, update_id, position, name, kind,
                   version, spec, assignment_template, target_path, sha256, length,
                   release_counter)
               VALUES ('a1', 'u1', 0, 'f', 'file', '1', '', '', 'a/f', $1, $2, 1)""",
            sha,
            size,
        )
    else:
        raise AssertionError(f"no fixture row for {table}")


@pytest.mark.parametrize("table", REFERENCING_TABLES)
async def test_a_referenced_blob_is_kept_however_old(
    store: FilesystemBlobStore, pool: asyncpg.Pool, table: str
) -> None:
    data = f"named by {table}".encode()
    blob = await _old_indexed_blob(store, pool, data)
    await _reference(pool, table, blob, data)
    report = await _round(store, pool)
    assert report.removed == []
    assert store.path(blob.sha256).exists()
    assert await _rows(pool) == [blob.sha256]


async def test_every_table_with_a_sha256_column_is_checked(pool: asyncpg.Pool) -> None:
    tables = await pool.fetch(
        """SELECT table_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND column_name = 'sha256'
             AND table_name <> 'blobs'"""
    )
    assert sorted(r["table_name"] for r in tables) == sorted(REFERENCING_TABLES)


async def test_stale_temporaries_go_and_fresh_ones_stay(
    store: FilesystemBlobStore, pool: asyncpg.Pool
) -> None:
    tmp = store.root / "tmp"
    tmp.mkdir(parents=True)
    stale, fresh = tmp / "upload-dead", tmp / "upload-live"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"being written")
    _age(stale)
    report = await _round(store, pool)
    assert report.temporaries_removed == 1
    assert sorted(os.listdir(tmp)) == ["upload-live"]


class RacingStore(FilesystemBlobStore):
    """The real store, with a writer committing the same content at a chosen moment of
    the collector's retire: just before it (the writer deduplicates against the old file)
    or just after it (the writer finds it gone and stores its own copy)."""

    def __init__(
        self, root: Path, commit: Callable[[], Coroutine[Any, Any, None]], *, before: bool
    ):
        super().__init__(root)
        self._commit = commit
        self._before = before
        self._loop = asyncio.get_running_loop()

    def _write(self) -> None:
        asyncio.run_coroutine_threadsafe(self._commit(), self._loop).result(timeout=30)

    def retire(self, sha256: str) -> RetiredFile | None:
        if self._before:
            self._write()
        retired = super().retire(sha256)
        if not self._before:
            self._write()
        return retired


@pytest.mark.parametrize("before", [True, False], ids=["writer-first", "collector-first"])
async def test_a_write_of_the_same_content_racing_the_collector_keeps_the_blob(
    tmp_path: Path, pool: asyncpg.Pool, before: bool
) -> None:
    data = b"popular firmware"
    plain = FilesystemBlobStore(tmp_path / "blobs")
    blob = await _old_indexed_blob(plain, pool, data)
    committed: list[tuple[Blob, Manifest]] = []

    async def commit() -> None:
        # UploadBinary's first step: the blob is committed; its row comes later.
        async with plain.writer(max_bytes=1 << 20) as writer:
            await writer.write(data)
            manifest = writer.manifest()
            committed.append((await writer.commit(), manifest))

    racing = RacingStore(tmp_path / "blobs", commit, before=before)
    report = await collect(
        racing, PostgresBlobIndex(pool), CollectionPolicy(GRACE), now=time.time()
    )
    # UploadBinary's second step, after the collector decided: the row names the blob.
    ((stored, manifest),) = committed
    async with pool.acquire() as conn:
        await insert_binary(conn, NewBinary(name="f"), stored, manifest)
    # Writer first: the touched file went back. Collector first: the old copy was deleted
    # and the writer's own copy took its place. Either way the row names a file.
    assert report.removed == ([] if before else [blob.sha256])
    assert plain.path(blob.sha256).read_bytes() == data
    assert await _rows(pool) == [blob.sha256]
    assert os.listdir(plain.root / "tmp") == []
    # And the blob is safe from the next round too (fresh mtime, referenced).
    assert (await _round(plain, pool)).removed == []


async def test_one_collector_holds_the_lock_at_a_time(pool: asyncpg.Pool) -> None:
    async with collector_lock(pool) as first, collector_lock(pool) as second:
        assert first and not second
    async with collector_lock(pool) as again:
        assert again


def test_retire_and_restore_keep_the_content(store: FilesystemBlobStore) -> None:
    data = b"x" * 100
    sha = hashlib.sha256(data).hexdigest()
    store.path(sha).parent.mkdir(parents=True)
    store.path(sha).write_bytes(data)
    retired = store.retire(sha)
    assert retired is not None and retired.size == 100
    assert not store.path(sha).exists()
    store.restore(retired)
    assert store.path(sha).read_bytes() == data
    assert not retired.path.exists()
    assert store.retire("0" * 64) is None
