"""Devices and their certificates in PostgreSQL, and their latest stats in Redis.

Reads return ``DeviceRecord`` (a frozen dataclass, one attribute per column), so code
above storage never handles a driver's row.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

import asyncpg
import orjson

from fleetd.storage import redis_keys
from fleetd.storage.types import Connection, Pool, Queryable, Redis

IpAddress: TypeAlias = (
    ipaddress.IPv4Address
    | ipaddress.IPv6Address
    | ipaddress.IPv4Interface
    | ipaddress.IPv6Interface
)
"""What the driver makes of an ``inet`` column."""


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One ``devices`` row: a device, enrolled or offboarded.

    Field order is column order (``DEVICE_COLUMNS`` is built from it), so a row converts
    positionally. ``metadata`` and ``tags`` are the row's own dict and list: treat them
    as read-only.
    """

    device_id: str
    fleet: str
    name: str
    device_type: str
    version: str
    agent_version: str
    status: str
    """Lower-case DeviceState name: unknown, online, offline, maintenance, updating, error,
    offboarded."""
    metadata: dict[str, str]
    tags: list[str]
    system_info: dict[str, Any]
    """fleetd.v1.SystemInfo as JSON field names."""
    cpu_usage: float | None
    """Latest stats (percentages, seconds); None while unknown (before a first heartbeat)."""
    memory_usage: float | None
    disk_usage: float | None
    uptime_seconds: int | None
    last_seen: dt.datetime | None
    ip_address: IpAddress | None
    registered_at: dt.datetime
    updated_at: dt.datetime
    offboarded_at: dt.datetime | None

    def __getitem__(self, column: str) -> Any:
        """The value of ``column``, by name: for code that picks columns at run time (the
        keyset pagination's sort keys, fleetd.storage.ordering). Code that knows the field
        reads the attribute."""
        if column not in _DEVICE_COLUMN_NAMES:
            raise KeyError(column)
        return getattr(self, column)


_DEVICE_COLUMN_NAMES = frozenset(f.name for f in fields(DeviceRecord))

DEVICE_COLUMNS = ", ".join(f.name for f in fields(DeviceRecord))
"""The SELECT list that ``_device`` turns into a DeviceRecord."""


def _device(row: asyncpg.Record) -> DeviceRecord:
    return DeviceRecord(*row)


class DeviceExists(Exception):
    """A device with this id is already registered."""


@dataclass(frozen=True, slots=True)
class NewDevice:
    device_id: str
    fleet: str
    name: str
    device_type: str
    version: str
    system_info: dict[str, Any]
    metadata: dict[str, str]


async def insert_device(conn: Connection, device: NewDevice) -> DeviceRecord:
    """Insert a new device. An offboarded device with the same id is replaced (the same
    hardware re-provisioned); any other existing device is DeviceExists."""
    await conn.execute(
        "DELETE FROM devices WHERE device_id = $1 AND offboarded_at IS NOT NULL",
        device.device_id,
    )
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO devices (device_id, fleet, name, device_type, version, system_info,
                                     metadata)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {DEVICE_COLUMNS}""",
            device.device_id,
            device.fleet,
            device.name,
            device.device_type,
            device.version,
            device.system_info,
            device.metadata,
        )
    except asyncpg.UniqueViolationError:
        raise DeviceExists(device.device_id) from None
    assert row is not None
    return _device(row)


async def add_certificate(
    conn: Queryable,
    device_id: str,
    serial: str,
    fingerprint: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> None:
    await conn.execute(
        """INSERT INTO device_certificates (serial, device_id, fingerprint, not_before, not_after)
           VALUES ($1, $2, $3, $4, $5)""",
        serial,
        device_id,
        fingerprint,
        not_before,
        not_after,
    )


async def get_device(conn: Queryable, device_id: str) -> DeviceRecord | None:
    """The device, offboarded or not; None if there never was one (or it was replaced)."""
    row = await conn.fetchrow(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1", device_id
    )
    return None if row is None else _device(row)


async def get_devices(conn: Queryable, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
    """The given devices that exist (offboarded ones included), by id."""
    rows = await conn.fetch(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ANY($1::text[])",
        list(device_ids),
    )
    return {row["device_id"]: _device(row) for row in rows}


SqlCondition = tuple[str, list[object]]
"""A WHERE fragment using $n placeholders, and its bind values."""


async def list_devices(
    conn: Queryable,
    *,
    limit: int,
    order_by: str,
    conditions: Sequence[Callable[[int], SqlCondition]] = (),
) -> list[DeviceRecord]:
    """Active devices matching every condition, in ``order_by`` order.

    ``order_by`` is an ORDER BY list built from whitelisted columns (fleetd.storage.ordering);
    each condition is asked for its SQL given the first free placeholder number, so
    values are always bind parameters.
    """
    clauses = ["offboarded_at IS NULL"]
    params: list[object] = [limit]
    for condition in conditions:
        sql, values = condition(len(params) + 1)
        clauses.append(f"({sql})")
        params.extend(values)
    rows = await conn.fetch(
        f"""SELECT {DEVICE_COLUMNS} FROM devices WHERE {" AND ".join(clauses)}
            ORDER BY {order_by} LIMIT $1""",
        *params,
    )
    return [_device(row) for row in rows]


async def count_devices(
    conn: Queryable, condition: Callable[[int], SqlCondition] | None = None
) -> int:
    """How many active devices (matching ``condition``, as in list_devices)."""
    where, params = ("TRUE", []) if condition is None else condition(1)
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM devices WHERE offboarded_at IS NULL AND ({where})", *params
    )
    return count


@dataclass(frozen=True, slots=True)
class Total:
    """A count of devices, and whether it is the planner's estimate rather than exact."""

    count: int
    estimated: bool


COUNT_BUDGET_MS = 20
"""How long :func:`total_devices` may spend counting exactly before it estimates."""


async def total_devices(
    conn: Connection,
    condition: Callable[[int], SqlCondition] | None = None,
    *,
    exact_up_to: int,
    budget_ms: int = COUNT_BUDGET_MS,
) -> Total:
    """How many active devices match: exact when cheap, else PostgreSQL's estimate.

    An exact ``count(*)`` reads every matching row (about 85 ms at 1,000,000 devices), so
    the count stops after ``exact_up_to + 1`` rows and, separately, after ``budget_ms``
    (a selective filter no index serves scans the whole table to find few rows). Within
    both bounds the count is exact; past either, the answer is the planner's row estimate
    for the same WHERE clause (``EXPLAIN``; from the table statistics, so as good as the
    last ANALYZE and the independence of the filtered columns), never less than the rows
    already counted. ``exact_up_to`` 0 always counts exactly, without a budget.
    """
    where, params = ("TRUE", []) if condition is None else condition(1)
    matching = f"FROM devices WHERE offboarded_at IS NULL AND ({where})"
    if exact_up_to <= 0:
        exact: int = await conn.fetchval(f"SELECT count(*) {matching}", *params)
        return Total(exact, False)
    counted: int | None = None
    try:
        # One round trip when it fits the budget; past it, asyncpg cancels the query
        # (a cancel request on a side connection) and the connection stays usable.
        counted = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT 1 {matching} LIMIT {int(exact_up_to) + 1}) AS n",
            *params,
            timeout=budget_ms / 1000,
        )
    except TimeoutError:  # over budget: estimate instead
        counted = None
    if counted is not None and counted <= exact_up_to:
        return Total(counted, False)
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) SELECT 1 {matching}", *params)
    estimate = int(orjson.loads(plan)[0]["Plan"]["Plan Rows"])
    return Total(max(estimate, counted or 0), True)


@dataclass(frozen=True, slots=True)
class DeviceChanges:
    """An operator's partial update; None leaves a field alone."""

    name: str | None = None
    device_type: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, str] | None = None
    """Replaces the whole map."""
    metadata_set: dict[str, str] = field(default_factory=dict)
    metadata_delete: list[str] = field(default_factory=list)
    status: str | None = None
    """'maintenance', or 'active' to leave maintenance (liveness decides online/offline)."""


async def update_device(
    conn: Queryable, device_id: str, changes: DeviceChanges, offline_after: float
) -> DeviceRecord | None:
    """Apply ``changes`` to a device that is not offboarded; None if there is none."""
    sets: list[str] = []
    args: list[object] = [device_id]

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if changes.name is not None:
        sets.append(f"name = {arg(changes.name)}")
    if changes.device_type is not None:
        sets.append(f"device_type = {arg(changes.device_type)}")
    if changes.tags is not None:
        sets.append(f"tags = {arg(changes.tags)}")
    metadata = "metadata"
    if changes.metadata is not None:
        metadata = f"{arg(changes.metadata)}::jsonb"
    if changes.metadata_set:
        metadata = f"({metadata} || {arg(changes.metadata_set)}::jsonb)"
    if changes.metadata_delete:
        metadata = f"({metadata} - {arg(changes.metadata_delete)}::text[])"
    if metadata != "metadata":
        sets.append(f"metadata = {metadata}")
    if changes.status == "maintenance":
        sets.append("status = 'maintenance'")
    elif changes.status == "active":
        sets.append(
            "status = CASE WHEN status <> 'maintenance' THEN status "
            f"WHEN last_seen > now() - make_interval(secs => {arg(offline_after)}) "
            "THEN 'online' ELSE 'offline' END"
        )
    elif changes.status is not None:
        raise ValueError(f"unsupported status change {changes.status!r}")
    sets.append("updated_at = now()")
    row = await conn.fetchrow(
        f"""UPDATE devices SET {", ".join(sets)}
            WHERE device_id = $1 AND offboarded_at IS NULL
            RETURNING {DEVICE_COLUMNS}""",
        *args,
    )
    return None if row is None else _device(row)


IN_PROGRESS_STATES = ("pending", "downloading", "verifying", "applying")
"""Assignment states of a deployment still under way on the device ("an active deployment")."""


@dataclass(frozen=True, slots=True)
class InterruptedAssignment:
    """An assignment that was under way when its device was deleted."""

    assignment_id: str
    deployment_id: str
    name: str
    version: str
    state: str
    """The state it was in (before a forced delete cancelled it)."""


class ActiveDeployment(Exception):
    """The device is in an active deployment; deleting it needs ``force``."""

    def __init__(self, device_id: str, assignments: list[InterruptedAssignment]) -> None:
        self.device_id = device_id
        self.assignments = assignments
        described = ", ".join(
            f"{a.name} {a.version} {a.state}"
            + (f" (deployment {a.deployment_id})" if a.deployment_id else "")
            for a in assignments
        )
        super().__init__(f"device {device_id} is in an active deployment: {described}")


@dataclass(frozen=True, slots=True)
class Offboarded:
    at: dt.datetime
    cancelled: list[InterruptedAssignment]
    """Assignments a forced delete cancelled (empty without ``force``)."""


async def offboard_device(
    conn: Connection, device_id: str, reason: str, *, force: bool = False
) -> Offboarded | None:
    """Remove a device from the fleet: mark it offboarded, revoke its certificates and API
    keys. The row stays (audit, and so the gateway can tell the agent to wipe itself).

    Run it in a transaction. A device with an assignment still under way
    (``IN_PROGRESS_STATES``, active) raises :class:`ActiveDeployment` unless ``force``, which
    cancels those assignments (state ``cancelled``, inactive) in the same transaction.
    The device row is updated (and so locked) before the assignments are read: a writer
    that adds an assignment bumps the device's revision in its own transaction
    (``desired.bump_revisions``), which waits for this one and then skips the device.

    Returns None if there is no such active device.
    """
    offboarded_at: dt.datetime | None = await conn.fetchval(
        """UPDATE devices SET offboarded_at = now(), status = 'offboarded', updated_at = now()
           WHERE device_id = $1 AND offboarded_at IS NULL RETURNING offboarded_at""",
        device_id,
    )
    if offboarded_at is None:
        return None
    rows = await conn.fetch(
        """SELECT assignment_id, deployment_id, name, version, state FROM assignments
           WHERE device_id = $1 AND active AND state = ANY($2::text[])
           ORDER BY created_at, assignment_id FOR UPDATE""",
        device_id,
        list(IN_PROGRESS_STATES),
    )
    interrupted = [InterruptedAssignment(*row) for row in rows]
    if interrupted and not force:
        raise ActiveDeployment(device_id, interrupted)
    if interrupted:
        await conn.execute(
            """UPDATE assignments SET state = 'cancelled', active = false,
                      reason = 'DEVICE_DELETED', message = $2, updated_at = now()
               WHERE assignment_id = ANY($1::text[])""",
            [a.assignment_id for a in interrupted],
            reason,
        )
    await conn.execute(
        """UPDATE device_certificates SET revoked_at = now(), revoke_reason = $2
           WHERE device_id = $1 AND revoked_at IS NULL""",
        device_id,
        reason,
    )
    await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE device_id = $1 AND revoked_at IS NULL",
        device_id,
    )
    return Offboarded(offboarded_at, interrupted)


async def mark_offboard_notified(conn: Queryable, device_id: str) -> bool:
    """Record that the offboarded device was told; True only the first time."""
    told: bool | None = await conn.fetchval(
        """UPDATE devices SET offboard_notified_at = now()
           WHERE device_id = $1 AND offboarded_at IS NOT NULL AND offboard_notified_at IS NULL
           RETURNING true""",
        device_id,
    )
    return bool(told)


async def certificate_expiry(conn: Queryable, device_id: str) -> dt.datetime | None:
    """When the device's newest unrevoked certificate expires (None: it has none)."""
    value: dt.datetime | None = await conn.fetchval(
        """SELECT max(not_after) FROM device_certificates
           WHERE device_id = $1 AND revoked_at IS NULL""",
        device_id,
    )
    return value


@dataclass(frozen=True, slots=True)
class CertificateStanding:
    """What the gateway needs to know about a presented certificate.

    ``device_type`` and ``version`` are the device's group for the heartbeat rollups.
    """

    device_id: str
    revoked: bool
    offboarded: bool
    device_type: str
    version: str


async def certificate_standing(
    conn: Queryable, serial: str, fingerprint: str
) -> CertificateStanding | None:
    """None when fleetd never issued this certificate (or the device is gone)."""
    row = await conn.fetchrow(
        """SELECT c.device_id, c.revoked_at IS NOT NULL AS revoked,
                  d.offboarded_at IS NOT NULL AS offboarded, d.device_type, d.version
           FROM device_certificates c JOIN devices d USING (device_id)
           WHERE c.serial = $1 AND c.fingerprint = $2""",
        serial,
        fingerprint,
    )
    if row is None:
        return None
    return CertificateStanding(
        row["device_id"], row["revoked"], row["offboarded"], row["device_type"], row["version"]
    )


async def certificate_standings(
    conn: Queryable, certificates: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], CertificateStanding]:
    """``certificate_standing`` for many ``(serial, fingerprint)`` pairs in one query."""
    rows = await conn.fetch(
        """SELECT c.serial, c.fingerprint, c.device_id, c.revoked_at IS NOT NULL AS revoked,
                  d.offboarded_at IS NOT NULL AS offboarded, d.device_type, d.version
           FROM unnest($1::text[], $2::text[]) AS q(serial, fingerprint)
           JOIN device_certificates c USING (serial, fingerprint)
           JOIN devices d USING (device_id)""",
        [serial for serial, _ in certificates],
        [fingerprint for _, fingerprint in certificates],
    )
    return {
        (row["serial"], row["fingerprint"]): CertificateStanding(
            row["device_id"], row["revoked"], row["offboarded"], row["device_type"], row["version"]
        )
        for row in rows
    }


async def refresh_registration(
    conn: Queryable,
    device_id: str,
    *,
    device_type: str,
    agent_version: str,
    system_info: dict[str, Any],
    tags: Sequence[str],
    metadata: dict[str, str],
) -> DeviceRecord | None:
    """Idempotent re-registration: refresh the hardware profile, agent version and tags.

    An empty device_type keeps the enrolled one; metadata from the device is merged over
    the stored metadata (operator-set keys the device does not send are kept). None if
    there is no such device.
    """
    row = await conn.fetchrow(
        f"""UPDATE devices SET
                device_type = CASE WHEN $2 = '' THEN device_type ELSE $2 END,
                agent_version = $3,
                system_info = $4,
                tags = $5,
                metadata = metadata || $6::jsonb,
                updated_at = now()
            WHERE device_id = $1
            RETURNING {DEVICE_COLUMNS}""",
        device_id,
        device_type,
        agent_version,
        system_info,
        list(tags),
        metadata,
    )
    return None if row is None else _device(row)


HeartbeatRow: TypeAlias = tuple[
    str,
    dt.datetime,
    float,
    float | None,
    float | None,
    int,
    int,
    int,
    float,
    float,
    float,
    float,
    float,
    float | None,
    float | None,
    float | None,
    bool,
]
"""A ``core_ext.CopyRecord``: (device_id, seen_at, cpu_usage, memory_usage, disk_usage,
uptime_seconds, memory_used_mb, memory_total_mb, disk_used_gb, disk_total_gb, load_avg_1m,
load_avg_5m, load_avg_15m, temperature, network_rx_rate, network_tx_rate, sample), except
that a None usage (memory, disk) is allowed and stored as unknown; a row with one is never
a sample (``device_samples`` needs both)."""

_MAX_INT4 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class HeartbeatMerge:
    """What one ``merge_heartbeats`` wrote."""

    updated: int
    """``devices`` rows updated (a heartbeat older than ``last_seen`` updates nothing)."""
    samples: int
    """Rows inserted into ``device_samples`` (a retried sample is not inserted twice)."""
    samples_dropped: int
    """Sample rows refused by ``device_samples`` (no partition for their time, a value out
    of range): dropped, the devices update kept."""
    error: str | None = None
    """Why the samples were dropped, when they were."""


async def merge_heartbeats(conn: Connection, rows: Sequence[HeartbeatRow]) -> HeartbeatMerge:
    """Write coalesced heartbeats: COPY into a staging table, one merging UPDATE of
    ``devices``, then the rows flagged ``sample`` into ``device_samples``.

    A device goes online on its first heartbeat; a device an operator put in another state
    (maintenance, updating...) keeps it. last_seen never moves backwards. Samples are keyed
    by (device_key, seen_at), so a retried flush inserts nothing twice; uptime and the
    megabytes are clamped to the integer columns' 2^31 - 1. The samples run under a
    savepoint: when ``device_samples`` refuses them (SQLSTATE 23514, no partition for
    their time, most likely), the devices update still commits, because liveness must not
    wait for analytics (docs/analytics.md 2.3).
    """
    async with conn.transaction():
        await conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS heartbeat_staging (
                   device_id text, seen_at timestamptz, cpu_usage float8, memory_usage float8,
                   disk_usage float8, uptime_seconds bigint, memory_used_mb bigint,
                   memory_total_mb bigint, disk_used_gb float8, disk_total_gb float8,
                   load_avg_1m float8, load_avg_5m float8, load_avg_15m float8,
                   temperature float8, network_rx_rate float8, network_tx_rate float8,
                   sample boolean) ON COMMIT DELETE ROWS"""
        )
        await conn.copy_records_to_table("heartbeat_staging", records=rows)
        status: str = await conn.execute(
            """UPDATE devices d SET
                   last_seen = GREATEST(d.last_seen, s.seen_at),
                   cpu_usage = s.cpu_usage,
                   memory_usage = s.memory_usage,
                   disk_usage = s.disk_usage,
                   uptime_seconds = s.uptime_seconds,
                   temperature = s.temperature,
                   status = CASE WHEN d.status IN ('unknown', 'offline') THEN 'online'
                                 ELSE d.status END
               FROM heartbeat_staging s
               WHERE d.device_id = s.device_id
                 AND (d.last_seen IS NULL OR s.seen_at >= d.last_seen)"""
        )
        updated = int(status.rsplit(" ", 1)[1])
        wanted = sum(1 for row in rows if row[-1])
        if not wanted:
            return HeartbeatMerge(updated, 0, 0)
        try:
            async with conn.transaction():  # a savepoint
                inserted: str = await conn.execute(
                    f"""INSERT INTO device_samples (
                           seen_at, device_key, cpu_usage, memory_usage, memory_used_mb,
                           memory_total_mb, disk_usage, disk_used_gb, disk_total_gb,
                           uptime_seconds, load_avg_1m, load_avg_5m, load_avg_15m,
                           temperature, network_rx_rate, network_tx_rate)
                       SELECT s.seen_at, d.device_key, s.cpu_usage, s.memory_usage,
                              LEAST(s.memory_used_mb, {_MAX_INT4}),
                              LEAST(s.memory_total_mb, {_MAX_INT4}),
                              s.disk_usage, s.disk_used_gb, s.disk_total_gb,
                              LEAST(s.uptime_seconds, {_MAX_INT4}),
                              s.load_avg_1m, s.load_avg_5m, s.load_avg_15m,
                              s.temperature, s.network_rx_rate, s.network_tx_rate
                       FROM heartbeat_staging s JOIN devices d USING (device_id)
                       WHERE s.sample AND s.memory_usage IS NOT NULL
                         AND s.disk_usage IS NOT NULL
                       ON CONFLICT (device_key, seen_at) DO NOTHING"""
                )
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.PostgresConnectionError):
                raise  # the whole flush failed: the caller retries it
            return HeartbeatMerge(updated, 0, wanted, f"{type(exc).__name__}: {exc}")
    return HeartbeatMerge(updated, int(inserted.rsplit(" ", 1)[1]), 0)


async def record_heartbeat(
    pool: Pool, redis: Redis, fleet: str, beat: HeartbeatRow, *, state: int
) -> None:
    """One heartbeat written through at once instead of batched (the control API's
    Heartbeat, rate-limited per device, so it need not coalesce).

    The same keys as the gateway's flush, in the same order: Redis first (the fleet's
    liveness ZSET, and the device's latest-stats hash with ``state``, a DeviceState number,
    expiring ``STATS_TTL_SECONDS`` after this beat), then the devices row
    (``merge_heartbeats``, which also inserts the row into ``device_samples`` when it is
    flagged ``sample``). A None usage is written to Redis as an empty field. Unlike the
    flush, it emits no ``device.online`` event.
    """
    device_id, seen_at, cpu, memory, disk, uptime = beat[:6]
    pipe = redis.pipeline(transaction=False)
    pipe.zadd(redis_keys.last_seen(fleet), {device_id: seen_at.timestamp()})
    key = redis_keys.device_stats(device_id)
    pipe.hset(
        key,
        mapping={
            "seen_at": seen_at.timestamp(),
            "state": state,
            "cpu": cpu,
            "mem": memory if memory is not None else "",
            "disk": disk if disk is not None else "",
            "uptime": uptime,
            "count": 1,
        },
    )
    pipe.expire(key, redis_keys.STATS_TTL_SECONDS)
    await pipe.execute()
    async with pool.acquire() as conn:
        await merge_heartbeats(conn, [beat])
