"""Log requests (an operator asks one device for a log bundle) and the bundles that answer them.

A request is *pending* until it is fulfilled or expires; pending requests travel to the
device on its heartbeats (:func:`pending_log_requests`), so issuing and fulfilling one
bump the device's desired-state revision in their transaction and return the new
revisions for ``fleetd.storage.desired.mark_changed`` after the commit. (An expiry
changes nothing in the database: the gateway's cache drops an expired request when its
entry is next rebuilt, and the gateway refuses uploads for it anyway.)

A device answers with one UploadLogs stream; :func:`upload_target` decides whether it may
(before any byte is stored) and :func:`fulfil` records the stored bundle and closes the
request in one transaction. Requests of other devices are indistinguishable from
requests that do not exist.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from fleetd.device.v1 import agent_pb2
from fleetd.storage.blobs import Blob, index_blob
from fleetd.storage.desired import bump_revisions
from fleetd.storage.types import Connection, Queryable

MAX_LOG_BYTES = 16 * 1024 * 1024
"""The largest bundle a request may ask for; larger ``max_bytes`` are lowered to it."""
DEFAULT_LOG_BYTES = 4 * 1024 * 1024
DEFAULT_TTL = dt.timedelta(hours=24)
MAX_TTL = dt.timedelta(days=30)
MAX_PENDING_PER_DEVICE = 8
"""Pending requests one device may have: every heartbeat carries all of them."""

SOURCES: dict[str, agent_pb2.LogSource] = {
    "agent_journal": agent_pb2.LOG_SOURCE_AGENT_JOURNAL,
    "agent_log_file": agent_pb2.LOG_SOURCE_AGENT_LOG_FILE,
}
_SOURCE_NAMES: dict[int, str] = {value: name for name, value in SOURCES.items()}


class LogRequestError(Exception):
    """A log request could not be issued or answered; subclasses say why."""


class DeviceNotFound(LogRequestError):
    """No active (not offboarded) device with this id."""


class TooManyPending(LogRequestError):
    """The device already has MAX_PENDING_PER_DEVICE pending requests."""


class LogRequestNotFound(LogRequestError):
    """No such request for this device (NOT_FOUND); another device's request looks the
    same as one that never existed."""


class AlreadyFulfilled(LogRequestError):
    """The request was answered already (ALREADY_EXISTS)."""


class Expired(LogRequestError):
    """The request expired before the upload began (FAILED_PRECONDITION)."""


@dataclass(frozen=True, slots=True)
class LogRequestRecord:
    """A log request as stored, with its answer if there is one."""

    log_request_id: str
    device_id: str
    source: str
    since: dt.datetime | None
    until: dt.datetime | None
    max_bytes: int
    requested_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    fulfilled_at: dt.datetime | None
    bundle_id: str | None
    bundle_size: int | None = None

    def status(self, now: dt.datetime) -> str:
        """``fulfilled``, ``expired`` or ``pending``."""
        if self.fulfilled_at is not None:
            return "fulfilled"
        return "expired" if self.expires_at <= now else "pending"

    def to_proto(self) -> agent_pb2.LogRequest:
        """The request as the device receives it."""
        message = agent_pb2.LogRequest(
            log_request_id=self.log_request_id,
            source=SOURCES[self.source],
            max_bytes=self.max_bytes,
        )
        if self.since is not None:
            message.since.CopyFrom(_timestamp(self.since))
        if self.until is not None:
            message.until.CopyFrom(_timestamp(self.until))
        return message


@dataclass(frozen=True, slots=True)
class IssuedLogRequest:
    request: LogRequestRecord
    revisions: dict[str, int]


@dataclass(frozen=True, slots=True)
class LogBundle:
    bundle_id: str
    log_request_id: str
    device_id: str
    sha256: str
    size_bytes: int
    content_encoding: str
    uncompressed_size: int
    stored_at: dt.datetime


@dataclass(frozen=True, slots=True)
class FulfilledLogRequest:
    bundle: LogBundle
    revisions: dict[str, int]


def _timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def source_name(source: str | int) -> str:
    """The stored name of a log source, given as a name or a ``LogSource`` value.

    Raises:
        ValueError: for anything else (LOG_SOURCE_UNSPECIFIED included).
    """
    if isinstance(source, str) and source in SOURCES:
        return source
    if isinstance(source, int) and source in _SOURCE_NAMES:
        return _SOURCE_NAMES[source]
    raise ValueError(f"log source must be one of {', '.join(SOURCES)}, got {source!r}")


_COLUMNS = """r.log_request_id, r.device_id, r.source, r.since, r.until, r.max_bytes,
    r.requested_by, r.created_at, r.expires_at, r.fulfilled_at, r.bundle_id"""


async def issue_log_request(
    conn: Connection,
    device_id: str,
    *,
    source: str | int,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    max_bytes: int = DEFAULT_LOG_BYTES,
    ttl: dt.timedelta = DEFAULT_TTL,
    requested_by: str = "",
) -> IssuedLogRequest:
    """Ask ``device_id`` for a log bundle; its next heartbeat carries the request.

    ``max_bytes`` above MAX_LOG_BYTES is lowered to it (the stored request says what was
    granted). Runs in a transaction of its own (a savepoint inside the caller's).

    Raises:
        ValueError: unknown source, ``max_bytes`` < 1, ``since`` after ``until``, or a
            ``ttl`` outside (0, 30 days].
        DeviceNotFound: the device does not exist or was offboarded.
        TooManyPending: the device has MAX_PENDING_PER_DEVICE pending requests already.
    """
    name = source_name(source)
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    if since is not None and until is not None and since > until:
        raise ValueError("since must not be after until")
    if not dt.timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be positive and at most {MAX_TTL}")
    async with conn.transaction():
        # First: locks the device row, so the pending count below cannot race.
        revisions = await bump_revisions(conn, [device_id])
        if device_id not in revisions:
            raise DeviceNotFound(device_id)
        pending = await conn.fetchval(
            """SELECT count(*) FROM log_requests
               WHERE device_id = $1 AND fulfilled_at IS NULL AND expires_at > now()""",
            device_id,
        )
        if pending >= MAX_PENDING_PER_DEVICE:
            raise TooManyPending(
                f"{device_id} already has {pending} pending log requests "
                f"(at most {MAX_PENDING_PER_DEVICE}); wait for them to be answered or expire"
            )
        row = await conn.fetchrow(
            f"""INSERT INTO log_requests AS r (log_request_id, device_id, source, since, until,
                                              max_bytes, requested_by, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval)
                RETURNING {_COLUMNS}""",
            f"lr_{secrets.token_hex(8)}",
            device_id,
            name,
            since,
            until,
            min(max_bytes, MAX_LOG_BYTES),
            requested_by,
            ttl,
        )
    assert row is not None
    return IssuedLogRequest(LogRequestRecord(**row), revisions)


async def pending_log_requests(conn: Queryable, device_id: str) -> list[agent_pb2.LogRequest]:
    """The device's requests that are neither fulfilled nor expired, oldest first: what
    its heartbeat carries."""
    return (await pending_log_requests_of(conn, [device_id])).get(device_id, [])


async def pending_log_requests_of(
    conn: Queryable, device_ids: Sequence[str]
) -> dict[str, list[agent_pb2.LogRequest]]:
    """``pending_log_requests`` for many devices in one query (devices with none absent)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM log_requests r
            WHERE r.device_id = ANY($1::text[]) AND r.fulfilled_at IS NULL
              AND r.expires_at > now()
            ORDER BY r.created_at, r.log_request_id""",
        list(device_ids),
    )
    pending: dict[str, list[agent_pb2.LogRequest]] = {}
    for row in rows:
        pending.setdefault(row["device_id"], []).append(LogRequestRecord(**row).to_proto())
    return pending


async def list_log_requests(
    conn: Queryable, device_id: str, *, limit: int = 100
) -> list[LogRequestRecord]:
    """The device's requests, newest first, with their bundles' sizes."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}, b.size_bytes AS bundle_size
            FROM log_requests r LEFT JOIN log_bundles b ON b.bundle_id = r.bundle_id
            WHERE r.device_id = $1
            ORDER BY r.created_at DESC, r.log_request_id DESC LIMIT $2""",
        device_id,
        limit,
    )
    return [LogRequestRecord(**row) for row in rows]


async def upload_target(conn: Queryable, device_id: str, log_request_id: str) -> LogRequestRecord:
    """The pending request ``device_id`` may answer with an upload now.

    Raises:
        LogRequestNotFound: unknown, or issued to another device.
        AlreadyFulfilled: answered before.
        Expired: past its expiry.
    """
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS}, r.expires_at <= now() AS expired FROM log_requests r
            WHERE r.log_request_id = $1 AND r.device_id = $2""",
        log_request_id,
        device_id,
    )
    if row is None:
        raise LogRequestNotFound(f"no log request {log_request_id!r} for this device")
    record = LogRequestRecord(**{k: v for k, v in row.items() if k != "expired"})
    if record.fulfilled_at is not None:
        raise AlreadyFulfilled(f"log request {log_request_id!r} was already answered")
    if row["expired"]:
        raise Expired(f"log request {log_request_id!r} expired at {record.expires_at}")
    return record


async def fulfil(
    conn: Connection,
    device_id: str,
    log_request_id: str,
    blob: Blob,
    *,
    content_encoding: str,
    uncompressed_size: int,
) -> FulfilledLogRequest:
    """Record ``blob`` (already durable in the blob store) as the answer to the request
    and close it, in one transaction that also bumps the device's revision (the request
    stops being sent). Expiry is checked by :func:`upload_target` when the upload begins,
    not here: an upload that began in time is accepted.

    Raises:
        LogRequestNotFound: unknown, or issued to another device.
        AlreadyFulfilled: answered meanwhile (a concurrent upload won).
    """
    async with conn.transaction():
        answered = await conn.fetchval(
            """SELECT fulfilled_at IS NOT NULL FROM log_requests
               WHERE log_request_id = $1 AND device_id = $2 FOR UPDATE""",
            log_request_id,
            device_id,
        )
        if answered is None:
            raise LogRequestNotFound(f"no log request {log_request_id!r} for this device")
        if answered:
            raise AlreadyFulfilled(f"log request {log_request_id!r} was already answered")
        await index_blob(conn, blob)
        row = await conn.fetchrow(
            """INSERT INTO log_bundles (bundle_id, log_request_id, device_id, sha256,
                                        size_bytes, content_encoding, uncompressed_size)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               RETURNING bundle_id, log_request_id, device_id, sha256, size_bytes,
                         content_encoding, uncompressed_size, stored_at""",
            f"lb_{secrets.token_hex(8)}",
            log_request_id,
            device_id,
            blob.sha256,
            blob.size,
            content_encoding,
            uncompressed_size,
        )
        assert row is not None
        bundle = LogBundle(**row)
        await conn.execute(
            """UPDATE log_requests SET fulfilled_at = $2, bundle_id = $3
               WHERE log_request_id = $1""",
            log_request_id,
            bundle.stored_at,
            bundle.bundle_id,
        )
        revisions = await bump_revisions(conn, [device_id])
    return FulfilledLogRequest(bundle, revisions)


async def get_bundle(conn: Queryable, bundle_id: str) -> LogBundle | None:
    row = await conn.fetchrow(
        """SELECT bundle_id, log_request_id, device_id, sha256, size_bytes, content_encoding,
                  uncompressed_size, stored_at
           FROM log_bundles WHERE bundle_id = $1""",
        bundle_id,
    )
    return None if row is None else LogBundle(**row)
