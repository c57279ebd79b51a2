"""ExportData's storage: the ``export_jobs`` rows, the rows each data type exports, and
the export files.

**Jobs** (docs/analytics.md, section 5). A job is inserted ``queued`` (:func:`insert_job`,
refused beyond ``MAX_QUEUED_PER_CALLER`` queued jobs of one caller, counted under a
per-caller transaction lock so two replicas cannot both admit the last slot). Any worker
claims one (:func:`claim_job`): a queued job, or a running one whose lease expired (its
worker died), oldest first, ``FOR UPDATE SKIP LOCKED`` so claimers never wait on one
another, and never a job of a caller who already has ``MAX_RUNNING_PER_CALLER`` running
(rechecked under the same per-caller lock). A claim counts an attempt; the holder renews
its lease (:func:`renew_lease`) and ends the job with :func:`finish_ready` or
:func:`give_up`. Every write after the claim names the lease owner, so a worker that lost
its lease (paused past it, then resumed) changes nothing. A job whose third attempt's
lease lapses is failed by :func:`fail_abandoned`. :func:`expire_jobs` ends every job past
its ``expires_at``.

**Rows** (:func:`export_rows`): one repeatable-read, read-only transaction (one snapshot
for the whole file) with a server-side cursor fetched ``BATCH_ROWS`` at a time, so memory
is one batch whatever the export's size. Values come out as the file writes them:
timestamps as RFC 3339 UTC text, ``real`` columns through their shortest text form (so
0.1 stays 0.1, not 0.10000000149011612), JSON columns as JSON text. DEVICE_EVENTS are
read from the fleet's Redis stream (``fleetd.storage.events``), ``BATCH_ROWS`` entries
per XRANGE. DEVICE_METRICS and DEVICE_EVENTS rows come in storage order (time order
within a partition), the others ordered by their time (or id).

**Files** (:class:`ExportFiles`): written into ``<root>/tmp`` and published by an atomic
rename to ``<root>/<export_id>.<sha256>.<csv|jsonl>`` (fsynced), so a file is seen whole
or not at all, and two workers that both finished one job (one of them after losing its
lease) never overwrite each other's file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeAlias

import asyncpg
import orjson

from fleetd.domain.analytics import exports as rules
from fleetd.domain.analytics.exports import ExportSpec, TierRange, metric_tiers
from fleetd.storage import redis_keys
from fleetd.storage.events import InvalidEvent, decode
from fleetd.storage.types import Connection, Queryable, Redis

# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class ExportJob:
    """One ``export_jobs`` row."""

    export_id: uuid.UUID
    principal: str
    request: dict[str, Any]
    state: str
    attempts: int
    lease_owner: str | None
    lease_until: dt.datetime | None
    rows: int
    size_bytes: int
    sha256: str | None
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    expires_at: dt.datetime

    @property
    def spec(self) -> ExportSpec:
        return ExportSpec.from_json(self.request)


_JOB_COLUMNS: Final = (  # constant column names: the only text interpolated into SQL here (S608)
    "export_id, principal, request, state, attempts, lease_owner, lease_until, rows, "
    "size_bytes, file_sha256 AS sha256, error, created_at, finished_at, expires_at"
)
_CALLER_LOCK: Final = 0x666C6565  # "flee": namespace of the per-caller export lock


class TooManyExports(Exception):
    """The caller already has the most queued exports allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"at most {limit} exports may wait at once per caller; "
            "retry when one of yours has started"
        )
        self.limit = limit


def _job(row: asyncpg.Record) -> ExportJob:
    return ExportJob(**dict(row))


async def _lock_caller(conn: Connection, principal: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _CALLER_LOCK, principal)


async def insert_job(
    conn: Connection,
    *,
    principal: str,
    spec: ExportSpec,
    ttl: float,
    max_queued: int = rules.MAX_QUEUED_PER_CALLER,
) -> ExportJob:
    """A new queued job of ``principal``, expiring ``ttl`` seconds after its creation.

    Raises:
        TooManyExports: ``principal`` already has ``max_queued`` queued jobs.
    """
    async with conn.transaction():
        await _lock_caller(conn, principal)
        queued = await conn.fetchval(
            "SELECT count(*) FROM export_jobs WHERE principal = $1 AND state = 'queued'",
            principal,
        )
        if queued >= max_queued:
            raise TooManyExports(max_queued)
        row = await conn.fetchrow(
            f"""INSERT INTO export_jobs (export_id, principal, request, expires_at)
                VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                RETURNING {_JOB_COLUMNS}""",  # noqa: S608
            uuid.uuid4(),
            principal,
            spec.to_json(),
            ttl,
        )
    assert row is not None
    return _job(row)


async def get_job(conn: Queryable, export_id: uuid.UUID) -> ExportJob | None:
    row = await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM export_jobs WHERE export_id = $1",  # noqa: S608
        export_id,
    )
    return None if row is None else _job(row)


async def fail_abandoned(conn: Queryable, *, max_attempts: int = rules.MAX_ATTEMPTS) -> int:
    """Fail the running jobs whose lease lapsed on their last attempt; how many."""
    done: str = await conn.execute(
        """UPDATE export_jobs
              SET state = 'failed', finished_at = now(), lease_owner = NULL,
                  lease_until = NULL,
                  error = coalesce(error || '; ', '')
                          || 'the export stopped before finishing on every attempt ('
                          || attempts || ')'
            WHERE state = 'running' AND lease_until < now() AND attempts >= $1""",
        max_attempts,
    )
    return int(done.split()[-1])


async def claim_job(
    conn: Connection,
    owner: str,
    *,
    lease_seconds: float = rules.LEASE_SECONDS,
    max_running: int = rules.MAX_RUNNING_PER_CALLER,
    max_attempts: int = rules.MAX_ATTEMPTS,
) -> ExportJob | None:
    """Claim the oldest claimable job for ``owner`` with a lease; None when there is none.

    Claimable: queued, or running with a lapsed lease and attempts left; not expired; its
    caller running fewer than ``max_running`` jobs (other than this one).
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            """SELECT export_id, principal FROM export_jobs j
                WHERE (state = 'queued'
                       OR (state = 'running' AND lease_until < now() AND attempts < $1))
                  AND expires_at > now()
                  AND (SELECT count(*) FROM export_jobs r
                        WHERE r.principal = j.principal AND r.state = 'running'
                          AND r.lease_until >= now()) < $2
                ORDER BY created_at
                LIMIT 1
                FOR UPDATE SKIP LOCKED""",
            max_attempts,
            max_running,
        )
        if row is None:
            return None
        await _lock_caller(conn, row["principal"])
        running = await conn.fetchval(
            """SELECT count(*) FROM export_jobs
                WHERE principal = $1 AND state = 'running' AND lease_until >= now()
                  AND export_id <> $2""",
            row["principal"],
            row["export_id"],
        )
        if running >= max_running:
            return None  # another claimer started one of this caller's jobs meanwhile
        claimed = await conn.fetchrow(
            f"""UPDATE export_jobs
                   SET state = 'running', attempts = attempts + 1, lease_owner = $2,
                       lease_until = now() + make_interval(secs => $3)
                 WHERE export_id = $1
                RETURNING {_JOB_COLUMNS}""",  # noqa: S608
            row["export_id"],
            owner,
            lease_seconds,
        )
    assert claimed is not None
    return _job(claimed)


async def renew_lease(
    conn: Queryable, export_id: uuid.UUID, owner: str, *, lease_seconds: float
) -> bool:
    """Extend ``owner``'s lease; False when it no longer holds the job."""
    done: str = await conn.execute(
        """UPDATE export_jobs SET lease_until = now() + make_interval(secs => $3)
            WHERE export_id = $1 AND lease_owner = $2 AND state = 'running'""",
        export_id,
        owner,
        lease_seconds,
    )
    return done == "UPDATE 1"


async def finish_ready(
    conn: Queryable, export_id: uuid.UUID, owner: str, *, rows: int, size_bytes: int, sha256: str
) -> bool:
    """Mark ``owner``'s job ready with its file's figures; False when it lost the job."""
    done: str = await conn.execute(
        """UPDATE export_jobs
              SET state = 'ready', rows = $3, size_bytes = $4, file_sha256 = $5,
                  finished_at = now(), lease_owner = NULL, lease_until = NULL, error = NULL
            WHERE export_id = $1 AND lease_owner = $2 AND state = 'running'""",
        export_id,
        owner,
        rows,
        size_bytes,
        sha256,
    )
    return done == "UPDATE 1"


async def give_up(
    conn: Queryable,
    export_id: uuid.UUID,
    owner: str,
    error: str,
    *,
    max_attempts: int = rules.MAX_ATTEMPTS,
) -> str | None:
    """After an attempt failed with ``error``: queue the job again while attempts remain,
    else fail it. Returns the new state; None when ``owner`` no longer held the job."""
    state: str | None = await conn.fetchval(
        """UPDATE export_jobs
              SET state = CASE WHEN attempts >= $4 THEN 'failed' ELSE 'queued' END,
                  finished_at = CASE WHEN attempts >= $4 THEN now() END,
                  lease_owner = NULL, lease_until = NULL, error = $3
            WHERE export_id = $1 AND lease_owner = $2 AND state = 'running'
        RETURNING state""",
        export_id,
        owner,
        error[:2000],
        max_attempts,
    )
    return state


async def expire_jobs(conn: Queryable) -> list[ExportJob]:
    """End every job past its ``expires_at`` (state ``expired``); the jobs ended."""
    rows = await conn.fetch(
        f"""UPDATE export_jobs SET state = 'expired', lease_owner = NULL, lease_until = NULL
             WHERE expires_at <= now() AND state <> 'expired'
            RETURNING {_JOB_COLUMNS}"""  # noqa: S608
    )
    return [_job(r) for r in rows]


async def ready_files(conn: Queryable) -> list[tuple[uuid.UUID, str]]:
    """(export_id, sha256) of every ready job: the files that must stay."""
    rows = await conn.fetch(
        "SELECT export_id, file_sha256 AS sha256 FROM export_jobs WHERE state = 'ready'"
    )
    return [(r["export_id"], r["sha256"]) for r in rows]


# --------------------------------------------------------------------------- rows

Row: TypeAlias = asyncpg.Record | Sequence[Any]
"""One exported row: its values in the spec's field order."""


def _ts(column: str) -> str:
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _real(column: str) -> str:
    # float4's shortest text form, read back as float8: the value as PostgreSQL shows it.
    return f"({column})::text::float8"


_INTEGER_SAMPLE_COLUMNS: Final = frozenset({"memory_used_mb", "memory_total_mb", "uptime_seconds"})
_INTEGER_HOURLY_COLUMNS: Final = frozenset({"memory_total_mb", "uptime_seconds"})


def _metric_sql(hourly: bool, resolution: int) -> dict[str, str]:
    table = "h" if hourly else "s"
    sql = {
        "device_id": "d.device_id",
        "timestamp": _ts("h.hour_start" if hourly else "s.seen_at"),
        "resolution_seconds": str(int(resolution)),
    }
    for metric in rules.PER_DEVICE_METRICS:
        column = metric.hourly_avg_column if hourly else metric.sample_column
        assert column is not None
        integers = _INTEGER_HOURLY_COLUMNS if hourly else _INTEGER_SAMPLE_COLUMNS
        qualified = f"{table}.{column}"
        sql[metric.name] = qualified if column in integers else _real(qualified)
    return sql


_INVENTORY_SQL: Final = {
    "device_id": "device_id",
    "name": "name",
    "fleet": "fleet",
    "device_type": "device_type",
    "version": "version",
    "agent_version": "agent_version",
    "status": "status",
    "tags": "to_jsonb(tags)::text",
    "metadata": "metadata::text",
    "system_info": "system_info::text",
    "ip_address": "host(ip_address)",
    "cpu_usage": "cpu_usage",
    "memory_usage": "memory_usage",
    "disk_usage": "disk_usage",
    "temperature": _real("temperature"),
    "uptime_seconds": "uptime_seconds",
    "last_seen": _ts("last_seen"),
    "registered_at": _ts("registered_at"),
    "updated_at": _ts("updated_at"),
    "offboarded_at": _ts("offboarded_at"),
}
_HISTORY_SQL: Final = {
    "timestamp": _ts("r.received_at"),
    "device_id": "r.device_id",
    "deployment_id": "a.deployment_id",
    "assignment_id": "r.assignment_id",
    "artifact_name": "a.name",
    "artifact_version": "a.version",
    "state": "r.state",
    "reason": "r.reason",
    "message": "r.message",
    "installed_version": "r.installed_version",
    "sequence": "r.sequence",
    "observed_at": _ts("r.observed_at"),
}
_AUDIT_SQL: Final = {
    "seq": "seq",
    "timestamp": _ts("at"),
    "actor": "actor",
    "actor_kind": "actor_kind",
    "role": "role",
    "method": "method",
    "target": "target",
    "request_id": "request_id",
    "outcome": "outcome",
    "hash": "encode(hash, 'hex')",
}

SQL_COLUMNS: Final[Mapping[str, Mapping[str, str]]] = {
    "DEVICE_METRICS": _metric_sql(False, 0),
    "DEVICE_INVENTORY": _INVENTORY_SQL,
    "DEPLOYMENT_HISTORY": _HISTORY_SQL,
    "AUDIT_LOG": _AUDIT_SQL,
}
"""Per SQL-backed data type, each column's expression (tests check every column has one)."""


@dataclass(frozen=True, slots=True)
class RowSource:
    """What :func:`export_rows` reads from and the settings that shape the rows."""

    conn: Connection
    redis: Redis | None
    fleet: str
    now: dt.datetime
    raw_retention: float
    sample_interval: float


def _select(expressions: Mapping[str, str], fields: Sequence[str]) -> str:
    return ", ".join(expressions[f] for f in fields)


def _queries(spec: ExportSpec, source: RowSource) -> list[tuple[str, tuple[Any, ...]]]:
    fields = spec.fields
    if spec.data_type == "DEVICE_INVENTORY":
        return [(f"SELECT {_select(_INVENTORY_SQL, fields)} FROM devices ORDER BY device_id", ())]  # noqa: S608
    assert spec.start is not None and spec.end is not None
    window = (spec.start, spec.end)
    if spec.data_type == "DEPLOYMENT_HISTORY":
        query = f"""SELECT {_select(_HISTORY_SQL, fields)}
                      FROM artifact_status_reports r JOIN assignments a USING (assignment_id)
                     WHERE r.received_at >= $1 AND r.received_at < $2
                     ORDER BY r.received_at, r.device_id, r.sequence"""  # noqa: S608
        return [(query, window)]
    if spec.data_type == "AUDIT_LOG":
        query = f"""SELECT {_select(_AUDIT_SQL, fields)} FROM audit_log
                     WHERE at >= $1 AND at < $2 ORDER BY seq"""  # noqa: S608
        return [(query, window)]
    assert spec.data_type == "DEVICE_METRICS"
    tiers = metric_tiers(spec.start, spec.end, now=source.now, raw_retention=source.raw_retention)
    return [_metrics_query(tier, fields, source.sample_interval) for tier in tiers]


def _metrics_query(
    tier: TierRange, fields: Sequence[str], sample_interval: float
) -> tuple[str, tuple[Any, ...]]:
    if tier.hourly:
        select = _select(_metric_sql(True, 3600), fields)
        query = f"""SELECT {select} FROM device_samples_1h h
                      JOIN devices d ON d.device_key = h.device_key
                     WHERE h.hour_start >= $1 AND h.hour_start < $2"""  # noqa: S608
    else:
        select = _select(_metric_sql(False, round(sample_interval)), fields)
        query = f"""SELECT {select} FROM device_samples s
                      JOIN devices d ON d.device_key = s.device_key
                     WHERE s.seen_at >= $1 AND s.seen_at < $2"""  # noqa: S608
    return query, (tier.start, tier.end)


async def export_rows(
    spec: ExportSpec, source: RowSource, *, batch: int = rules.BATCH_ROWS
) -> AsyncGenerator[Sequence[Row], None]:
    """The export's rows, ``batch`` at a time, each row's values in ``spec.fields`` order."""
    if spec.data_type == "DEVICE_EVENTS":
        if source.redis is None:
            raise RuntimeError("DEVICE_EVENTS exports need the Redis client")
        async for rows in _event_rows(source.redis, source.fleet, spec, batch):
            yield rows
        return
    async with source.conn.transaction(isolation="repeatable_read", readonly=True):
        for query, args in _queries(spec, source):
            cursor = await source.conn.cursor(query, *args)
            while records := await cursor.fetch(batch):
                yield records


def _event_time(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_EVENT_COLUMNS: Final = {
    "previous_status": "previous",
    "deployment_id": "deployment_id",
    "assignment_id": "assignment_id",
    "state": "state",
    "reason": "reason",
}
EVENT_SLACK_MS: Final = 60_000
"""An entry's id is Redis's clock at XADD, its ``at`` the writer's clock when it happened:
read a minute either side of the window by id, then keep what ``at`` puts inside."""


async def _event_rows(
    redis: Redis, fleet: str, spec: ExportSpec, batch: int
) -> AsyncIterator[list[Row]]:
    assert spec.start is not None and spec.end is not None
    start, end = spec.start.timestamp(), spec.end.timestamp()
    low = f"{max(0, int(start * 1000) - EVENT_SLACK_MS)}-0"
    high = str(int(end * 1000) + EVENT_SLACK_MS)
    key = redis_keys.events(fleet)
    while True:
        entries = await redis.xrange(key, min=low, max=high, count=batch)
        if not entries:
            return
        rows = []
        for _, fields in entries:
            if fields is None:
                continue
            try:
                event = decode(fields)
            except InvalidEvent:
                continue
            if start <= event.at < end:
                rows.append(_event_row(event.type, event.device_id, event.at, event.fields, spec))
        if rows:
            yield rows
        last = entries[-1][0]
        low = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        if len(entries) < batch:
            return


def _event_row(
    event_type: str, device_id: str, at: float, fields: Mapping[str, str], spec: ExportSpec
) -> Row:
    values: dict[str, Any] = {
        "timestamp": _event_time(at),
        "device_id": device_id or None,
        "event_type": event_type,
        **{column: fields.get(name) for column, name in _EVENT_COLUMNS.items()},
        "details": orjson.dumps(dict(fields), option=orjson.OPT_SORT_KEYS).decode(),
    }
    return [values[f] for f in spec.fields]


# --------------------------------------------------------------------------- files


class ExportFiles:
    """Export files under ``root``: temporaries in ``root/tmp``, published files beside.

    Blocking calls (run them in a worker thread): the event loop never waits on the disk.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path(self, export_id: uuid.UUID, sha256: str, format: str) -> Path:
        """Where a ready job's file is."""
        return self.root / f"{export_id}.{sha256}.{rules.FILE_SUFFIX[format]}"

    def create_temporary(self, export_id: uuid.UUID) -> tuple[Path, IO[bytes]]:
        """A new temporary file for a job's output, open for writing."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = self.tmp / f"{export_id}.{secrets.token_hex(8)}.part"
        return path, path.open("xb")

    def publish(self, temporary: Path, final: Path) -> None:
        """Make the written ``temporary`` the file ``final``, durably, in one rename."""
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, final)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def remove_unlisted(self, keep: set[tuple[uuid.UUID, str]], *, older_than: float) -> int:
        """Remove published files whose (export_id, sha256) is not in ``keep``, and
        temporaries, last written more than ``older_than`` seconds ago (a live writer
        touches its temporary every batch, and a file is published a moment before its
        row says so); how many."""
        cutoff = time.time() - older_than
        kept = {f"{export_id}.{sha256}" for export_id, sha256 in keep}
        removed = 0
        candidates = [*self.root.glob("*.*.*"), *self.tmp.glob("*.part")]
        for path in candidates:
            if path.parent == self.root and ".".join(path.name.split(".")[:2]) in kept:
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


async def read_file(path: Path, start: int, length: int, chunk: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``path`` from ``start``, in chunks of ``chunk`` bytes read in a
    worker thread. Raises FileNotFoundError when the file is gone."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        left = length
        while left > 0:
            data = await asyncio.to_thread(handle.read, min(chunk, left))
            if not data:
                return
            left -= len(data)
            yield data
    finally:
        await asyncio.to_thread(handle.close)
