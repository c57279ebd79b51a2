"""Devices and their certificates in PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from fleetd.storage.types import Connection, Queryable

DEVICE_COLUMNS = """device_id, fleet, name, device_type, version, agent_version, status, metadata,
    tags, system_info, cpu_usage, memory_usage, disk_usage, uptime_seconds, last_seen,
    ip_address, registered_at, updated_at, offboarded_at"""


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


async def insert_device(conn: Connection, device: NewDevice) -> asyncpg.Record:
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
    return row


async def add_certificate(
    conn: Connection,
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


async def get_device(conn: Queryable, device_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1", device_id
    )


async def list_devices_page(
    conn: Queryable, limit: int, after_device_id: str | None
) -> list[asyncpg.Record]:
    """Devices in device_id order, strictly after the given id (keyset pagination)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {DEVICE_COLUMNS} FROM devices
            WHERE ($1::text IS NULL OR device_id > $1)
            ORDER BY device_id LIMIT $2""",
        after_device_id,
        limit,
    )
    return rows


async def count_devices(conn: Queryable) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM devices")
    return count


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


async def refresh_registration(
    conn: Queryable,
    device_id: str,
    *,
    device_type: str,
    agent_version: str,
    system_info: dict[str, Any],
    tags: Sequence[str],
    metadata: dict[str, str],
) -> asyncpg.Record | None:
    """Idempotent re-registration: refresh the hardware profile, agent version and tags.

    An empty device_type keeps the enrolled one; metadata from the device is merged over
    the stored metadata (operator-set keys the device does not send are kept).
    """
    return await conn.fetchrow(
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


HeartbeatRow = tuple[str, dt.datetime, float, float, float, int]
"""(device_id, seen_at, cpu_usage, memory_usage, disk_usage, uptime_seconds)"""


async def merge_heartbeats(conn: Connection, rows: Iterable[HeartbeatRow]) -> int:
    """Write coalesced heartbeats: COPY into a staging table, then one merging UPDATE.

    A device goes online on its first heartbeat; a device an operator put in another state
    (maintenance, updating...) keeps it. last_seen never moves backwards.
    """
    async with conn.transaction():
        await conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS heartbeat_staging (
                   device_id text, seen_at timestamptz, cpu_usage float8, memory_usage float8,
                   disk_usage float8, uptime_seconds bigint) ON COMMIT DELETE ROWS"""
        )
        await conn.copy_records_to_table("heartbeat_staging", records=rows)
        status: str = await conn.execute(
            """UPDATE devices d SET
                   last_seen = GREATEST(d.last_seen, s.seen_at),
                   cpu_usage = s.cpu_usage,
                   memory_usage = s.memory_usage,
                   disk_usage = s.disk_usage,
                   uptime_seconds = s.uptime_seconds,
                   status = CASE WHEN d.status IN ('unknown', 'offline') THEN 'online'
                                 ELSE d.status END
               FROM heartbeat_staging s
               WHERE d.device_id = s.device_id
                 AND (d.last_seen IS NULL OR s.seen_at >= d.last_seen)"""
        )
    return int(status.rsplit(" ", 1)[1])
