"""Where a heartbeat flush goes: the batcher's Redis commands, then its PostgreSQL records.

``gateway.heartbeats`` decides when to flush and what to keep for a retry; this module
writes. The heartbeat writes are idempotent (a ZADD and HSETs of the latest values; a
merge that never moves ``last_seen`` backwards; samples keyed by device and ``seen_at``), so
a write retried after a failure is harmless. Rollup partials are appended: a retry after a
failure whose INSERT did commit (the answer lost with the connection) counts them twice,
the one case where an append-only design trades exactness for never contending.
"""

from __future__ import annotations

from collections.abc import Sequence

from core_ext.heartbeat_types import CopyRecord, RedisCommand
from fleetd.storage.devices import HeartbeatMerge, merge_heartbeats
from fleetd.storage.errors import POSTGRES_ERRORS
from fleetd.storage.liveness import ARRIVE, arrivals
from fleetd.storage.redis_scripts import execute
from fleetd.storage.resp import pack_command
from fleetd.storage.rollups import Partials, write_partials
from fleetd.storage.types import Pool, Redis

WRITE_ERRORS = POSTGRES_ERRORS
"""What a failed ``write_records`` raises: PostgreSQL unreachable, or the statement refused.
Either way the caller keeps the records and retries on its next tick."""


async def write_latest(redis: Redis, fleet: str, commands: Sequence[RedisCommand]) -> None:
    """Run one drain's ``redis_commands`` as one packed batch: the leading ZADD of the
    last-seen ZSET through ``ARRIVE`` (absent members come online, with their event), then
    the per-device HSET and EXPIRE as they are.

    Raises a Redis error (``REDIS_ERRORS``) when Redis did not take them.
    """
    payload = arrivals(fleet, commands[0]) + b"".join(
        [pack_command(command) for command in commands[1:]]
    )
    await execute(redis, payload, len(commands), (ARRIVE,))


async def write_records(
    pool: Pool,
    rows: list[CopyRecord],
    partials: Partials,
    *,
    writer: str,
    fleet: str,
) -> HeartbeatMerge | None:
    """Merge coalesced heartbeat records (COPY, one UPDATE, the samples) and then append the
    rollup partials, on one connection. Returns the merge's counts (None without rows).

    Raises one of ``WRITE_ERRORS`` when either write failed; the samples alone failing is
    not a failure (``HeartbeatMerge.samples_dropped``).
    """
    merged = None
    async with pool.acquire() as conn:
        if rows:
            merged = await merge_heartbeats(conn, rows)
        if partials:
            await write_partials(conn, writer, fleet, partials)
    return merged
