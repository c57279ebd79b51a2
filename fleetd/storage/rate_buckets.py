"""Rate-limit buckets in Redis: GCRA in one Lua script, shared by every API process.

The script uses Redis's clock, so processes on different nodes agree. A bucket is one
key per subject (``redis_keys.rate_limit``) holding the theoretical arrival time (TAT, in
microseconds); it expires once the bucket would be full again, so idle subjects cost
nothing. The policy (what limit a caller gets, what happens when Redis is down) is the
caller's: control_api/ratelimit.py.
"""

from __future__ import annotations

from typing import NamedTuple

from fleetd.storage import redis_keys
from fleetd.storage.types import Redis

# KEYS[1] = bucket key; ARGV = emission interval, burst tolerance (integer microseconds,
# so comparisons are exact). Stores the theoretical arrival time (TAT, µs); returns
# {allowed (0/1), remaining, reset_after_us, retry_after_us}.
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance - interval
if now < allow_at then
  local remaining = math.floor((now - (tat - tolerance - interval)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, tat - now, allow_at - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
local remaining = math.floor((now - (new_tat - tolerance - interval)) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, new_tat - now, 0}
"""


class Take(NamedTuple):
    """One request taken from (or refused by) a bucket; times in microseconds."""

    allowed: bool
    remaining: int
    reset_after_us: int
    """Until the bucket is full again."""
    retry_after_us: int
    """Until a request would be allowed (0 when this one was)."""


class RedisRateBuckets:
    """GCRA buckets in one Redis."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(GCRA_LUA)

    async def take(self, subject: str, interval_us: int, tolerance_us: int) -> Take:
        """Take one request from ``subject``'s bucket (emission interval and burst
        tolerance in microseconds).

        Raises redis-py's errors (``fleetd.storage.errors.REDIS_ERRORS``) when Redis
        cannot answer.
        """
        raw = await self._script(
            keys=[redis_keys.rate_limit(subject)], args=[interval_us, tolerance_us]
        )
        return Take(bool(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]))
