"""The device's desired-state revision: how writers tell the gateway something changed.

Whatever changes what a device is told on its heartbeat (its active assignments, its
pending log requests) must, in the same transaction, call :func:`bump_revisions`, and,
after that transaction commits, :func:`mark_changed`. The gateway answers a heartbeat that
echoes the current revision with a cheap "unchanged" read from Redis; ``mark_changed``
writes the new revision there without a body, so the next heartbeat misses and the gateway
reloads the state from PostgreSQL; it also publishes the device ids on
``redis_keys.DESIRED_CHANGED_CHANNEL`` so that gateways push the change down open heartbeat
streams at once (best effort: a missed notice waits for the next heartbeat). A gateway
that filled the cache from an older read can never overwrite a newer revision (see
``fleetd.storage.desired_cache``).

If Redis is unreachable when ``mark_changed`` runs, the cached entry stays at the older
revision until it expires (``CACHE_TTL_SECONDS``): devices then learn of the change that
much later, never lose it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from fleetd.storage import redis_keys
from fleetd.storage.errors import REDIS_ERRORS
from fleetd.storage.redis_scripts import LuaScript
from fleetd.storage.types import Queryable, Redis

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 600
_PUBLISH_BATCH = 1000

# KEYS[1] the device's desired-state hash; ARGV[1] the new revision, ARGV[2] the TTL.
# Only ever moves the revision forward (two writers may finish out of order).
_MARK_CHANGED = LuaScript("""
local current = tonumber(redis.call('HGET', KEYS[1], 'rev') or '-1')
if current < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'rev', ARGV[1])
  redis.call('HDEL', KEYS[1], 'body')
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
""")


async def bump_revisions(conn: Queryable, device_ids: Sequence[str]) -> dict[str, int]:
    """Increment the desired-state revision of each device; return the new revisions.

    Run it in the transaction that makes the change, so the revision and the change commit
    together. Devices that do not exist (or are offboarded) are absent from the result.
    """
    rows = await conn.fetch(
        """UPDATE devices SET desired_revision = desired_revision + 1
           WHERE device_id = ANY($1::text[]) AND offboarded_at IS NULL
           RETURNING device_id, desired_revision""",
        list(device_ids),
    )
    return {row["device_id"]: row["desired_revision"] for row in rows}


async def mark_changed(redis: Redis, revisions: Mapping[str, int]) -> bool:
    """After the commit: record the new revisions in the gateway's cache, bodies dropped.

    Returns False (after logging) when Redis could not be told; the change then reaches
    devices when the stale cache entries expire.
    """
    if not revisions:
        return True
    try:
        await _MARK_CHANGED.run_many(
            redis,
            [(redis_keys.desired_state(d), rev, CACHE_TTL_SECONDS) for d, rev in revisions.items()],
        )
        ids = list(revisions)
        for start in range(0, len(ids), _PUBLISH_BATCH):
            message = " ".join(ids[start : start + _PUBLISH_BATCH])
            await redis.publish(redis_keys.DESIRED_CHANGED_CHANNEL, message)
    except REDIS_ERRORS as exc:
        log.warning("desired-state cache not updated for %d devices: %s", len(revisions), exc)
        return False
    return True
