"""Where a heartbeat flush goes: the batcher's Redis commands, then its PostgreSQL records.

``gateway.heartbeats`` decides when to flush and what to keep for a retry; this module
writes. Both writes are idempotent (a ZADD and HSETs of the latest values; a merge that
never moves ``last_seen`` backwards), so a write retried after a failure is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from core_ext.heartbeat_types import CopyRecord, RedisCommand
from fleetd.storage.devices import merge_heartbeats
from fleetd.storage.errors import POSTGRES_ERRORS
from fleetd.storage.liveness import ARRIVE, arrivals
from fleetd.storage.redis_scripts import execute
from fleetd.storage.resp import pack_command
from fleetd.storage.rollups import RollupKey, merge_rollups
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
    pool: Pool, rows: list[CopyRecord], rollups: dict[RollupKey, list[float]]
) -> None:
    """Merge coalesced heartbeat records (COPY and one UPDATE) and then the per-minute
    rollups into PostgreSQL, on one connection. Raises one of ``WRITE_ERRORS``."""
    async with pool.acquire() as conn:
        if rows:
            await merge_heartbeats(conn, rows)
        if rollups:
            await merge_rollups(conn, rollups)
