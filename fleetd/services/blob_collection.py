"""The blob collector: removes blobs that no row refers to, and temporaries a crash left.

Writers (UploadBinary, UploadLogs) commit a blob file first and then, in one transaction,
its ``blobs`` index row and the row that refers to it. So between the two steps a blob
is on disk and referenced by nothing, and the collector must not take it. The rules:

1. **Grace period.** A blob file, an index row or a temporary file younger than
   ``grace_period`` is never collected. A commit that finds its content already stored
   refreshes the stored file's mtime (fleetd/storage/blobs.py), so a deduplicated upload is
   protected like a fresh one. The grace period must exceed the longest pause between a
   writer's blob commit and its row insert (milliseconds in practice; default one hour).
2. **Row before file.** For each candidate the index row is dropped first, in a
   transaction that locks it and checks every referencing table
   (:func:`fleetd.storage.blob_index.forget`); only then is the file removed. A crash
   in between leaves a file without a row (collected next round), never a row without
   its file.
3. **Retire, look again, then delete.** The file is first renamed into ``tmp/``
   (atomically: a writer either touched it before, or finds it gone and stores its own
   copy). If the retired file's mtime is now within the grace period (a writer deduplicated
   against it meanwhile) or a reference appeared, it is put back and re-indexed;
   otherwise it is deleted.

The decisions (:class:`CollectionPolicy`) are free of IO; :func:`collect` drives them
through two small interfaces, :class:`BlobFiles` (the filesystem store) and
:class:`BlobIndex` (PostgreSQL).

**The background role.** The control API runs the collector (:func:`start` at start-up,
:func:`stop` at shutdown): every ``Settings.blob_collect_interval`` seconds (default one
hour, the first round at start-up) each of its event loops tries the collector's
PostgreSQL advisory lock (``fleetd.storage.blob_index.collector_lock``); the one that gets
it runs a round over the deployment's blob store (``Settings.paths.blobs``) with
``Settings.blob_grace_period``, the others skip the round. So however many replicas run,
one collects at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fleetd.services.periodic import PeriodicRole
from fleetd.storage import blob_index
from fleetd.storage.blobs import FilesystemBlobStore, RetiredFile, StoredFile
from fleetd.storage.types import Pool

log = logging.getLogger(__name__)

DEFAULT_MAX_PER_ROUND = 10_000


class BlobFiles(Protocol):
    """The blob files (``FilesystemBlobStore``); blocking calls, run in a worker thread."""

    def stored_files(self) -> list[StoredFile]: ...

    def retire(self, sha256: str) -> RetiredFile | None: ...

    def restore(self, retired: RetiredFile) -> None: ...

    def discard(self, retired: RetiredFile) -> None: ...

    def remove_stale_temporaries(self, older_than: float = ...) -> int: ...


class BlobIndex(Protocol):
    """The ``blobs`` index and the tables that refer to blobs."""

    async def referenced(self, digests: Sequence[str]) -> set[str]: ...

    async def unreferenced_index_rows(self, created_before: float, limit: int) -> list[str]: ...

    async def forget(self, sha256: str, created_before: float) -> bool: ...

    async def reindex(self, sha256: str, size: int) -> None: ...


@dataclass(frozen=True, slots=True)
class CollectionPolicy:
    """What the collector may take; pure decisions over what the adapters saw."""

    grace_period: float
    max_per_round: int = DEFAULT_MAX_PER_ROUND

    def __post_init__(self) -> None:
        if self.grace_period < 0 or self.max_per_round < 1:
            raise ValueError("grace_period must be >= 0 and max_per_round >= 1")

    def cutoff(self, now: float) -> float:
        """Anything last modified or created at or after this instant is kept."""
        return now - self.grace_period

    def old_files(self, files: Iterable[StoredFile], now: float) -> list[StoredFile]:
        """The files past the grace period: the only ones whose references are worth asking."""
        cutoff = self.cutoff(now)
        return [f for f in files if f.mtime < cutoff]

    def candidates(
        self,
        files: Iterable[StoredFile],
        referenced: set[str],
        unreferenced_rows: Iterable[str],
        now: float,
    ) -> list[str]:
        """The digests to try this round, at most ``max_per_round``: old files that nothing
        refers to, and old unreferenced index rows whose file is already gone (a row with
        a file is judged by its file, so a young file keeps its row)."""
        stored = {f.sha256 for f in files}
        chosen = {f.sha256 for f in self.old_files(files, now) if f.sha256 not in referenced}
        chosen.update(s for s in unreferenced_rows if s not in stored)
        return sorted(chosen)[: self.max_per_round]

    def keep_retired(self, retired: RetiredFile, still_referenced: bool, now: float) -> bool:
        """Whether a retired file goes back: a writer touched it or a row now names it."""
        return still_referenced or retired.mtime >= self.cutoff(now)


@dataclass(slots=True)
class CollectionReport:
    """What one round did."""

    removed: list[str] = field(default_factory=list)
    """Digests whose file (and index row, if any) was deleted."""
    index_rows_dropped: list[str] = field(default_factory=list)
    """Digests whose index row was dropped with no file on disk."""
    kept: list[str] = field(default_factory=list)
    """Candidates that turned out to be in use (referenced or touched meanwhile)."""
    temporaries_removed: int = 0


async def collect(
    files: BlobFiles, index: BlobIndex, policy: CollectionPolicy, *, now: float
) -> CollectionReport:
    """One collection round (the caller holds the collector lock)."""
    report = CollectionReport()
    report.temporaries_removed = await asyncio.to_thread(
        files.remove_stale_temporaries, policy.grace_period
    )
    stored = await asyncio.to_thread(files.stored_files)
    cutoff = policy.cutoff(now)
    referenced = await index.referenced([f.sha256 for f in policy.old_files(stored, now)])
    rows = await index.unreferenced_index_rows(cutoff, policy.max_per_round)
    for sha256 in policy.candidates(stored, referenced, rows, now):
        if not await index.forget(sha256, cutoff):
            report.kept.append(sha256)
            continue
        # Once the file is retired it must be put back or deleted, cancellation or not.
        settle = asyncio.ensure_future(_settle(files, index, policy, sha256, now, report))
        try:
            await asyncio.shield(settle)
        except asyncio.CancelledError:
            await settle
            raise
    return report


async def _settle(
    files: BlobFiles,
    index: BlobIndex,
    policy: CollectionPolicy,
    sha256: str,
    now: float,
    report: CollectionReport,
) -> None:
    retired = await asyncio.to_thread(files.retire, sha256)
    if retired is None:
        report.index_rows_dropped.append(sha256)
        return
    try:
        still = bool(await index.referenced([sha256]))
    except BaseException:
        await asyncio.to_thread(files.restore, retired)  # in doubt, keep it
        raise
    if policy.keep_retired(retired, still, now):
        await asyncio.to_thread(files.restore, retired)
        await index.reindex(sha256, retired.size)
        report.kept.append(sha256)
    else:
        await asyncio.to_thread(files.discard, retired)
        report.removed.append(sha256)


class PostgresBlobIndex:
    """:class:`BlobIndex` over a pool (fleetd/storage/blob_index.py)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def referenced(self, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        return await blob_index.referenced(self._pool, digests)

    async def unreferenced_index_rows(self, created_before: float, limit: int) -> list[str]:
        return await blob_index.unreferenced_index_rows(self._pool, _utc(created_before), limit)

    async def forget(self, sha256: str, created_before: float) -> bool:
        async with self._pool.acquire() as conn:
            return await blob_index.forget(conn, sha256, _utc(created_before))

    async def reindex(self, sha256: str, size: int) -> None:
        await blob_index.reindex(self._pool, sha256, size)


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


async def collect_once(
    pool: Pool, blobs: Path, policy: CollectionPolicy
) -> CollectionReport | None:
    """One round over the blob store in directory ``blobs``, if this holder gets the
    collector lock; None when another holder has it (its round, not ours)."""
    async with blob_index.collector_lock(pool) as held:
        if not held:
            return None
        report = await collect(
            FilesystemBlobStore(blobs), PostgresBlobIndex(pool), policy, now=time.time()
        )
    if report.removed or report.index_rows_dropped or report.temporaries_removed:
        log.info(
            "blob collector: removed %d blobs, %d index rows without a file, "
            "%d stale temporaries; %d candidates were in use",
            len(report.removed),
            len(report.index_rows_dropped),
            report.temporaries_removed,
            len(report.kept),
        )
    return report


def _round_failed(exc: Exception) -> None:
    log.error("blob collection round failed", exc_info=exc)


_role = PeriodicRole(_round_failed)


def start(pool: Pool, blobs: Path, *, grace_period: float, interval: float) -> None:
    """Start this event loop's collector: a round now, then every ``interval`` seconds
    (a server's start-up hook, once its pool is open)."""
    policy = CollectionPolicy(grace_period=grace_period)
    _role.start(lambda: collect_once(pool, blobs, policy), interval)


async def stop() -> None:
    """Stop this event loop's collector (a round in progress settles its current blob)."""
    await _role.stop()
