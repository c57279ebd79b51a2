"""The gateway's reads and fills of the desired-state cache (``redis_keys.desired_state``).

Each device's hash holds ``rev`` (its desired-state revision) and ``body`` (the serialized
heartbeat answer for that revision). Writers move ``rev`` forward and drop ``body``
(``fleetd.storage.desired.mark_changed``); here the gateway reads it and fills it after a
load from PostgreSQL. The one invariant both sides keep: a revision never moves backwards,
so a fill from an older read never hides a newer change.

Both calls take a whole batch and are one packed round trip (``fleetd.storage.resp``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from fleetd.storage import redis_keys
from fleetd.storage.desired import CACHE_TTL_SECONDS
from fleetd.storage.redis_scripts import LuaScript
from fleetd.storage.types import Redis

T = TypeVar("T")

# KEYS[1] the device's hash; ARGV[1] the revision the device holds, ARGV[2] the TTL.
# Returns 0 when it is current, 1 when there is no usable entry, else the body.
_LOOKUP = LuaScript(
    """
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev then return 1 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if rev == ARGV[1] then return 0 end
local body = redis.call('HGET', KEYS[1], 'body')
if not body then return 1 end
return body
"""
)

# KEYS[1] the device's hash; ARGV[1] revision, ARGV[2] body, ARGV[3] TTL. Fills unless
# the entry holds a newer revision (a writer bumped it after our read).
_FILL = LuaScript(
    """
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '-1')
if rev > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'body', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)


async def lookup(
    redis: Redis,
    held: Sequence[tuple[str, int]],
    current: T,
    changed: Callable[[bytes], T],
) -> list[T | None]:
    """For each ``(device_id, held revision)``, in order: ``current`` when the cache holds
    that revision, ``changed(body)`` when it holds another revision with its body, None on
    a miss (no entry, or a revision whose body a writer dropped). A hit extends the
    entry's TTL.

    ``current`` and ``changed`` build the caller's own answers as the replies are read:
    no second pass over the batch. Raises a Redis error (``REDIS_ERRORS``).
    """
    replies = await _LOOKUP.run_many(
        redis, [(redis_keys.desired_state(d), rev, CACHE_TTL_SECONDS) for d, rev in held]
    )
    return [
        current if reply == 0 else changed(reply) if isinstance(reply, bytes) else None
        for reply in replies
    ]


async def fill(redis: Redis, entries: Sequence[tuple[str, int, bytes]]) -> None:
    """Cache ``(device_id, revision, body)`` entries, each unless a newer revision is
    cached already. Raises a Redis error (``REDIS_ERRORS``)."""
    await _FILL.run_many(
        redis,
        [(redis_keys.desired_state(d), rev, body, CACHE_TTL_SECONDS) for d, rev, body in entries],
    )
