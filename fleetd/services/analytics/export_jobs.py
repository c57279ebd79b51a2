"""The ``export_jobs`` role: produce ExportData files, on every control API replica.

Claim-driven, not single-holder (docs/analytics.md, 2.5 and 5): each event loop of each
replica claims one job at a time (``fleetd.storage.analytics.exports.claim_job``: a
queued job, or one whose worker died and whose lease lapsed), renews its 60 s lease every
20 s while it works, and writes the file:

- rows come from a server-side cursor ``BATCH_ROWS`` at a time (one snapshot), so memory
  is one batch whatever the export's size;
- CSV through Python's ``csv`` writer (RFC 4180: ``\\r\\n`` line ends, a header row,
  quotes where needed), JSONL through orjson (one object per line, JSON columns embedded
  as JSON);
- each batch is encoded, hashed and written in a worker thread, into a temporary file,
  which is published by an atomic rename once whole (``ExportFiles``), and the job row
  becomes ``ready`` with its row count, size and SHA-256 right after.

A restart mid-job leaves a lease that lapses: the next claimer starts again from scratch
(nothing partial is ever published). An attempt that fails puts the job back in the queue;
the third failure (or a third lapsed lease) fails it, with the error. A worker that finds
it lost its lease (it stalled past it and another worker took over) stops and publishes
nothing.

Every minute each loop also tidies up: jobs past ``expires_at`` become ``expired`` and
their files are deleted; files and temporaries no ready job names (a crash between rename
and row update, or between expiry and delete) are deleted once old enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import hashlib
import io
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from fleetd.domain.analytics import exports as rules
from fleetd.domain.analytics.exports import ColumnKind, ExportSpec
from fleetd.services.periodic import stop_task
from fleetd.settings import Settings
from fleetd.storage import redis_client
from fleetd.storage.analytics import exports as store
from fleetd.storage.analytics.exports import ExportFiles, ExportJob, Row, RowSource
from fleetd.storage.types import Pool, Redis

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
"""How often an idle worker looks for a queued job."""
TIDY_EVERY_SECONDS = 60.0
REDIS_TIMEOUT = 5.0


def export_files(settings: Settings) -> ExportFiles:
    """The deployment's export files: ``exports/`` beside the blob store (same disk)."""
    return ExportFiles(settings.paths.blobs.parent / "exports")


def worker_id() -> str:
    """A lease owner name unique to this process and event loop: host, pid, random."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


class _Sink:
    """The file being written: encodes batches in the export's format, hashes and counts
    what it writes. Blocking (called in a worker thread)."""

    def __init__(self, out: IO[bytes], spec: ExportSpec) -> None:
        self._out = out
        self._digest = hashlib.sha256()
        self.size = 0
        self.rows = 0
        self._names = spec.fields
        self._json_at = [i for i, c in enumerate(spec.columns) if c.kind is ColumnKind.JSON]
        self._csv = spec.format == "CSV"
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, lineterminator="\r\n")

    def header(self) -> None:
        if self._csv:
            self._writer.writerow(self._names)
            self._emit()

    def write_rows(self, rows: Sequence[Row]) -> None:
        if self._csv:
            self._writer.writerows(rows)
            self._emit()
        else:
            self._put(b"".join([orjson.dumps(self._object(row)) + b"\n" for row in rows]))
        self.rows += len(rows)

    def _object(self, row: Row) -> dict[str, Any]:
        values = dict(zip(self._names, row, strict=True))
        for i in self._json_at:
            text = row[i]
            if text is not None:
                values[self._names[i]] = orjson.Fragment(text)
        return values

    def _emit(self) -> None:
        self._put(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()

    def _put(self, data: bytes) -> None:
        self._digest.update(data)
        self._out.write(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class LeaseLost(Exception):
    """Another worker holds the job now: stop, publish nothing."""


async def _pipelined(
    batches: AsyncGenerator[Sequence[Row], None], sink: _Sink, lost: asyncio.Event
) -> None:
    """Write every batch, fetching the next while a worker thread writes this one: the
    database produces rows while Python formats them. At most two batches in memory."""
    try:
        pending = asyncio.ensure_future(anext(batches, None))
        while (rows := await pending) is not None:
            pending = asyncio.ensure_future(anext(batches, None))
            if lost.is_set():
                raise LeaseLost
            await asyncio.to_thread(sink.write_rows, rows)
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
        await batches.aclose()


@dataclass
class ExportWorker:
    """Produces export jobs one at a time (one per event loop)."""

    pool: Pool
    files: ExportFiles
    redis: Redis | None = None
    fleet: str = "default"
    raw_retention: float = 86400.0
    sample_interval: float = 300.0
    owner: str = field(default_factory=worker_id)
    lease_seconds: float = rules.LEASE_SECONDS
    renew_every: float = rules.RENEW_EVERY_SECONDS
    batch_rows: int = rules.BATCH_ROWS

    async def run_once(self) -> ExportJob | None:
        """Claim and produce one job; the job as claimed, or None when there was none."""
        async with self.pool.acquire() as conn:
            await store.fail_abandoned(conn)
            job = await store.claim_job(conn, self.owner, lease_seconds=self.lease_seconds)
        if job is None:
            return None
        await self.produce(job)
        return job

    async def produce(self, job: ExportJob) -> None:
        """Write ``job``'s file and mark it ready; on failure queue or fail it."""
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._keep_lease(job, lost))
        try:
            sha256 = await self._write(job, lost)
        except LeaseLost:
            log.warning("export %s: lease lost to another worker; stopped", job.export_id)
            return
        except Exception as exc:
            log.error("export %s attempt %d failed", job.export_id, job.attempts, exc_info=exc)
            await self._failed(job, exc)
            return
        finally:
            await stop_task(renewer)
        log.info("export %s ready (sha256 %s)", job.export_id, sha256)

    async def _write(self, job: ExportJob, lost: asyncio.Event) -> str:
        spec = job.spec
        temporary, handle = await asyncio.to_thread(self.files.create_temporary, job.export_id)
        published: Path | None = None
        try:
            sink = _Sink(handle, spec)
            await asyncio.to_thread(sink.header)
            async with self.pool.acquire() as conn:
                source = RowSource(
                    conn,
                    self.redis,
                    self.fleet,
                    dt.datetime.now(dt.UTC),
                    self.raw_retention,
                    self.sample_interval,
                )
                batches = store.export_rows(spec, source, batch=self.batch_rows)
                await _pipelined(batches, sink, lost)
            await asyncio.to_thread(handle.close)
            if lost.is_set():
                raise LeaseLost
            published = self.files.path(job.export_id, sink.sha256, spec.format)
            await asyncio.to_thread(self.files.publish, temporary, published)
            if not await store.finish_ready(
                self.pool,
                job.export_id,
                self.owner,
                rows=sink.rows,
                size_bytes=sink.size,
                sha256=sink.sha256,
            ):
                await self._unpublish(job, published, sink.sha256)
                raise LeaseLost
            return sink.sha256
        finally:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(self.files.remove, temporary)

    async def _unpublish(self, job: ExportJob, published: Path, sha256: str) -> None:
        """Our file lost the race: remove it unless the winner's is the very same file."""
        now = await store.get_job(self.pool, job.export_id)
        if now is None or now.state != "ready" or now.sha256 != sha256:
            await asyncio.to_thread(self.files.remove, published)

    async def _failed(self, job: ExportJob, exc: Exception) -> None:
        # The URL may be handed to anyone: the error names the failure's kind, not its
        # text (which may quote SQL or paths); the server log has the rest.
        error = (
            f"the export failed on attempt {job.attempts} ({type(exc).__name__}); "
            f"the server log has the details of export {job.export_id}"
        )
        with contextlib.suppress(Exception):
            state = await store.give_up(self.pool, job.export_id, self.owner, error)
            log.info("export %s is %s after a failed attempt", job.export_id, state)

    async def _keep_lease(self, job: ExportJob, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                held = await store.renew_lease(
                    self.pool, job.export_id, self.owner, lease_seconds=self.lease_seconds
                )
            except Exception as exc:  # an outage: the lease may still hold; retry
                log.warning("export %s: lease renewal failed: %r", job.export_id, exc)
                continue
            if not held:
                lost.set()
                return

    async def tidy(self) -> tuple[int, int]:
        """Expire jobs past ``expires_at`` and delete files no ready job names;
        (jobs expired, files removed)."""
        expired = await store.expire_jobs(self.pool)
        for job in expired:
            if job.sha256 is not None:
                spec_format = str(job.request.get("format", "CSV"))
                path = self.files.path(job.export_id, job.sha256, spec_format)
                await asyncio.to_thread(self.files.remove, path)
        keep = set(await store.ready_files(self.pool))
        removed = await asyncio.to_thread(
            self.files.remove_unlisted, keep, older_than=2 * self.lease_seconds
        )
        return len(expired), removed


@dataclass
class _LoopRole:
    task: asyncio.Task[None]
    redis: Redis | None


_roles: dict[asyncio.AbstractEventLoop, _LoopRole] = {}


async def _run(worker: ExportWorker) -> None:
    tidied = float("-inf")
    while True:
        try:
            if time.monotonic() - tidied >= TIDY_EVERY_SECONDS:
                await worker.tidy()
                tidied = time.monotonic()
            if await worker.run_once() is not None:
                continue  # more may be waiting
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep going; the next round may succeed
            log.error("export worker round failed", exc_info=exc)
        await asyncio.sleep(POLL_SECONDS)


def start(pool: Pool, settings: Settings, redis: Redis | None = None) -> None:
    """Start this event loop's export worker (a control API start-up hook, once the pool
    is open). ``redis`` serves DEVICE_EVENTS exports; when None the worker opens its own
    client from ``settings.redis_url`` (closed by :func:`stop`)."""
    loop = asyncio.get_running_loop()
    if loop in _roles:
        return
    own = None
    if redis is None and settings.redis_url:
        own = redis = redis_client.connect(settings.redis_url, socket_timeout=REDIS_TIMEOUT)
    worker = ExportWorker(
        pool,
        export_files(settings),
        redis,
        fleet=settings.fleet,
        raw_retention=settings.raw_retention,
        sample_interval=settings.sample_interval,
    )
    _roles[loop] = _LoopRole(loop.create_task(_run(worker)), own)


async def stop() -> None:
    """Stop this event loop's worker. A job in progress is abandoned; its lease lapses
    and another worker (or this one, after a restart) starts it again."""
    role = _roles.pop(asyncio.get_running_loop(), None)
    if role is None:
        return
    await stop_task(role.task)
    if role.redis is not None:
        await redis_client.close(role.redis)
