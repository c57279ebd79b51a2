"""The repository in PostgreSQL, checked the way devices will check it: with python-tuf's
ngclient pinned to a root, over a copy of what the repository serves."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from pathlib import Path

import asyncpg
import pytest
from tuf.api.exceptions import BadVersionNumberError, ExpiredMetadataError
from tuf.api.metadata import Metadata, Root
from tuf.ngclient import Updater

from fleetd.services.tuf_repo import (
    KeyDirs,
    MissingKeys,
    NewTarget,
    TargetConflict,
    TufRepository,
    admin,
)
from fleetd.services.tuf_repo.roles import utcnow
from tests.support.tuf_client import MemoryFetcher, repository_files, updater

CUSTOM = {"hardware": "raspberry-pi", "release_counter": 3, "kind": "file", "name": "firmware"}
CONTENT = b"firmware image v3\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now


async def _root(pool: asyncpg.Pool, version: int | None = None) -> bytes:
    if version is None:
        body = await pool.fetchval(
            "SELECT body FROM tuf_metadata WHERE role = 'root' ORDER BY version DESC LIMIT 1"
        )
    else:
        body = await pool.fetchval(
            "SELECT body FROM tuf_metadata WHERE role = 'root' AND version = $1", version
        )
    return bytes(body)


async def _client(pool: asyncpg.Pool, workdir: Path, trusted_root: bytes) -> Updater:
    files = await repository_files(pool, {SHA: CONTENT})
    return updater(workdir, trusted_root, MemoryFetcher(files))


@pytest.fixture
async def dirs(pool: asyncpg.Pool, tmp_path: Path) -> KeyDirs:
    keys = KeyDirs.under(tmp_path / "data")
    assert await admin.create_repository(pool, keys)
    return keys


async def test_init_creates_private_key_files_and_signed_metadata_only(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    keys = sorted((tmp_path / "data" / "tuf").rglob("*.key"))
    assert {p.parent.name for p in keys} == {
        "root",
        "targets",
        "artifacts",
        "snapshot",
        "timestamp",
    }
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys)
    bodies = [bytes(r["body"]) for r in await pool.fetch("SELECT body FROM tuf_metadata")]
    assert len(bodies) == 5 and not any(b"PRIVATE KEY" in b for b in bodies)
    # A second init changes nothing.
    assert not await admin.create_repository(pool, dirs)
    client = await _client(pool, tmp_path / "client", await _root(pool))
    client.refresh()
    assert client.get_targetinfo("anything") is None


async def test_added_target_is_signed_by_the_delegated_role_and_downloadable(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    repo = TufRepository(pool, dirs)
    target = await repo.add_target("fw/rpi/firmware-3.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    assert target.custom == CUSTOM
    rows = await pool.fetch("SELECT role, max(version) AS v FROM tuf_metadata GROUP BY role")
    versions = {r["role"]: r["v"] for r in rows}
    assert versions == {"root": 1, "targets": 1, "artifacts": 2, "snapshot": 2, "timestamp": 2}
    client = await _client(pool, tmp_path / "client", await _root(pool))
    client.refresh()
    info = client.get_targetinfo("fw/rpi/firmware-3.bin")
    assert info is not None and info.custom == CUSTOM
    path = client.download_target(info)
    assert await asyncio.to_thread(Path(path).read_bytes) == CONTENT
    fetcher = client._fetcher
    assert isinstance(fetcher, MemoryFetcher)
    # Consistent snapshots: versioned metadata names, hash-prefixed target names.
    names = [url.rsplit("/tuf/", 1)[1] for url in fetcher.requested]
    assert names == [
        "metadata/2.root.json",
        "metadata/timestamp.json",
        "metadata/2.snapshot.json",
        "metadata/1.targets.json",
        "metadata/2.artifacts.json",
        f"targets/fw/rpi/{SHA}.firmware-3.bin",
    ]
    assert Metadata.from_bytes(await repo.metadata("2.artifacts.json") or b"").signed.version == 2
    assert await repo.metadata("../etc/passwd") is None
    assert await repo.target_length("fw/rpi/firmware-3.bin", SHA) == len(CONTENT)


async def test_adding_a_target_again_is_idempotent_and_other_content_conflicts(
    pool: asyncpg.Pool, dirs: KeyDirs
) -> None:
    repo = TufRepository(pool, dirs)
    await repo.add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    await repo.add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    assert await pool.fetchval("SELECT max(version) FROM tuf_metadata WHERE role='timestamp'") == 2
    with pytest.raises(TargetConflict):
        await repo.add_target("fw/a.bin", 1, {"sha256": "0" * 64}, CUSTOM)
    for bad in ("/abs", "a/../b", "a//b", ".hidden"):
        with pytest.raises(ValueError, match="target path"):
            await repo.add_target(bad, 1, {"sha256": SHA}, CUSTOM)
    with pytest.raises(ValueError, match="release_counter"):
        await repo.add_target("fw/b.bin", 1, {"sha256": SHA}, {**CUSTOM, "release_counter": -1})


async def test_targets_added_together_are_published_in_one_version(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    repo = TufRepository(pool, dirs)
    await repo.add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    batch = [
        NewTarget("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM),  # already signed
        NewTarget("fw/b.bin", len(CONTENT), {"sha256": SHA}, {**CUSTOM, "name": "b"}),
        NewTarget("fw/c.bin", len(CONTENT), {"sha256": SHA}, {**CUSTOM, "name": "c"}),
    ]
    signed = await repo.add_targets(batch)
    assert [t.path for t in signed] == ["fw/a.bin", "fw/b.bin", "fw/c.bin"]
    rows = await pool.fetch("SELECT role, max(version) AS v FROM tuf_metadata GROUP BY role")
    assert {r["role"]: r["v"] for r in rows}["artifacts"] == 3  # init, a, then b and c at once
    client = await _client(pool, tmp_path / "client", await _root(pool))
    client.refresh()
    for path in ("fw/a.bin", "fw/b.bin", "fw/c.bin"):
        assert client.get_targetinfo(path) is not None
    assert await repo.add_targets(batch) == signed  # all signed already: nothing published
    assert await pool.fetchval("SELECT max(version) FROM tuf_metadata WHERE role='artifacts'") == 3


async def test_a_batch_naming_one_path_with_two_contents_publishes_nothing(
    pool: asyncpg.Pool, dirs: KeyDirs
) -> None:
    repo = TufRepository(pool, dirs)
    with pytest.raises(ValueError, match="twice"):
        await repo.add_targets(
            [
                NewTarget("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM),
                NewTarget("fw/a.bin", 1, {"sha256": "0" * 64}, CUSTOM),
            ]
        )
    assert await pool.fetchval("SELECT count(*) FROM tuf_targets") == 0
    await repo.add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    with pytest.raises(TargetConflict):
        await repo.add_targets(
            [
                NewTarget("fw/new.bin", len(CONTENT), {"sha256": SHA}, CUSTOM),
                NewTarget("fw/a.bin", 1, {"sha256": "0" * 64}, CUSTOM),
            ]
        )
    assert await pool.fetchval("SELECT array_agg(path) FROM tuf_targets") == ["fw/a.bin"]


async def test_timestamp_is_resigned_when_half_its_life_is_gone(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    clock = Clock()
    repo = TufRepository(pool, dirs, clock=clock)
    assert await repo.refresh_if_due() == []
    clock.now += dt.timedelta(hours=13)
    assert await repo.refresh_if_due() == ["timestamp"]
    assert await repo.refresh_if_due() == []
    clock.now += dt.timedelta(days=20)
    assert await repo.refresh_if_due() == ["artifacts", "snapshot", "timestamp"]
    timestamp = Metadata.from_bytes(await repo.metadata("timestamp.json") or b"")
    assert timestamp.signed.version == 3
    assert timestamp.signed.expires == clock.now + dt.timedelta(days=1)


async def test_expired_timestamp_is_refused_by_the_client(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    clock = Clock()
    clock.now -= dt.timedelta(days=2)  # signed two days ago, never refreshed since
    repo = TufRepository(pool, dirs, clock=clock)
    await repo.add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    client = await _client(pool, tmp_path / "client", await _root(pool))
    with pytest.raises(ExpiredMetadataError):
        client.refresh()


async def test_rolled_back_repository_is_refused_by_a_client_that_saw_newer(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    old_files = await repository_files(pool, {SHA: CONTENT})
    await TufRepository(pool, dirs).add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    client = await _client(pool, tmp_path / "client", await _root(pool))
    client.refresh()
    # A mirror (or attacker) now serves the older timestamp and snapshot.
    stale = updater(tmp_path / "client", await _root(pool), MemoryFetcher(old_files))
    with pytest.raises(BadVersionNumberError):
        stale.refresh()


async def test_client_pinned_to_the_old_root_walks_to_the_rotated_one(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    old_root = await _root(pool)
    old_ids = set(Metadata[Root].from_bytes(old_root).signed.roles["root"].keyids)
    rotation = await admin.rotate_root(pool, dirs)
    assert rotation.published == [("root", 2)]
    new = Metadata[Root].from_bytes(await _root(pool, 2))
    new_ids = set(new.signed.roles["root"].keyids)
    assert new_ids.isdisjoint(old_ids) and set(new.signatures) == old_ids | new_ids
    assert dirs.load("root", old_ids) == []  # retired
    await TufRepository(pool, dirs).add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    client = await _client(pool, tmp_path / "client", old_root)
    client.refresh()
    assert client._trusted_set.root.version == 2
    assert client.get_targetinfo("fw/a.bin") is not None
    # A second rotation still needs only the keys now on disk.
    await admin.rotate_root(pool, dirs, keep_keys=True)
    client = await _client(pool, tmp_path / "client2", old_root)
    client.refresh()
    assert client._trusted_set.root.version == 3


async def test_threshold_two_root_needs_both_keys_to_rotate(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    dirs = KeyDirs.under(tmp_path / "data")
    await admin.create_repository(pool, dirs, root_keys=2, root_threshold=2)
    first = Metadata[Root].from_bytes(await _root(pool))
    assert first.signed.roles["root"].threshold == 2 and len(first.signatures) == 2
    away = tmp_path / "elsewhere"
    away.mkdir()
    one = sorted(dirs.role_dir("root").glob("*.key"))[0]
    one.rename(away / one.name)
    with pytest.raises(MissingKeys):
        await admin.rotate_root(pool, dirs)
    (away / one.name).rename(one)
    await admin.rotate_root(pool, dirs, keys=3, threshold=2)
    client = await _client(pool, tmp_path / "client", first.to_bytes())
    client.refresh()
    assert client._trusted_set.root.version == 2
    assert len(client._trusted_set.root.roles["root"].keyids) == 3


async def test_rotated_targets_and_online_keys_are_followed_by_clients(
    pool: asyncpg.Pool, dirs: KeyDirs, tmp_path: Path
) -> None:
    first = await _root(pool)
    repo = TufRepository(pool, dirs)
    await repo.add_target("fw/a.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    client = await _client(pool, tmp_path / "before", first)
    client.refresh()
    rotation = await admin.rotate_targets(pool, dirs, artifacts=True)
    assert [r for r, _ in rotation.published] == [
        "root",
        "targets",
        "artifacts",
        "snapshot",
        "timestamp",
    ]
    await admin.rotate_root(pool, dirs, keep_keys=True, online=True)
    await repo.add_target("fw/b.bin", len(CONTENT), {"sha256": SHA}, CUSTOM)
    # The same client directory (trusting the old versions) and a fresh client both follow.
    for workdir in (tmp_path / "before", tmp_path / "fresh"):
        client = await _client(pool, workdir, first)
        client.refresh()
        assert client._trusted_set.root.version == 3
        assert client.get_targetinfo("fw/a.bin") is not None
        assert client.get_targetinfo("fw/b.bin") is not None
    status = {s.role: s for s in await admin.status(pool, dirs)}
    assert status["targets"].version == 2 and status["root"].keys_here == 1
    assert all(s.warning == "" for s in status.values())


async def test_metadata_rows_cannot_be_changed(pool: asyncpg.Pool, dirs: KeyDirs) -> None:
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE tuf_metadata SET body = '' WHERE role = 'root'")
