"""Rate limits: GCRA in one Redis Lua script, shared by every control API process.

Limits per caller class, by default as the seed sets them: anonymous 10/s (per client
address), authenticated 100/s (per key, token subject or certificate), device 10/min (per
device), admin unlimited; ``FLEETD_RATE_ANONYMOUS`` / ``_AUTHENTICATED`` / ``_DEVICE``
change them (``COUNT/s``, ``/m`` or ``/h``). A limit allows a burst of ``count``
requests, then one per emission interval. The script uses Redis's clock, so processes on
different nodes agree.

If Redis is unreachable, each process falls back to an in-memory GCRA with the same
parameters (so a single process never exceeds the limit; a fleet of them may, by at most
the number of processes). Authentication itself never depends on this module.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from fleetd.settings import Settings, parse_rate
from fleetd.storage import redis_keys

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class Limit:
    """``count`` requests per ``period`` seconds, with a burst of ``count``."""

    count: int
    period: float

    @property
    def interval_us(self) -> int:
        return round(self.period * 1_000_000 / self.count)

    @property
    def tolerance_us(self) -> int:
        return self.interval_us * (self.count - 1)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force (defaults are the seed's; FLEETD_RATE_* change them)."""

    anonymous: Limit
    authenticated: Limit
    device: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            Limit(*parse_rate(settings.rate_anonymous)),
            Limit(*parse_rate(settings.rate_authenticated)),
            Limit(*parse_rate(settings.rate_device)),
        )

    def for_caller(self, kind: str, role: str) -> Limit | None:
        """The caller's limit; None means unlimited (admin)."""
        if role == "admin":
            return None
        if kind == "anonymous":
            return self.anonymous
        if role == "device":
            return self.device
        return self.authenticated


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    """Unix seconds when the bucket is full again."""
    retry_after: float
    """Seconds until a request would be allowed (0 when allowed)."""

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_at),
        }


class _LocalGcra:
    """The same algorithm in process memory, for when Redis is unreachable."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tat: dict[str, int] = {}
        self._max_keys = max_keys

    def check(self, key: str, limit: Limit, now_us: int) -> tuple[bool, int, int, int]:
        interval, tolerance = limit.interval_us, limit.tolerance_us
        tat = max(self._tat.get(key, now_us), now_us)
        new_tat = tat + interval
        allow_at = new_tat - tolerance - interval
        if now_us < allow_at:
            remaining = max(0, (now_us - (tat - tolerance - interval)) // interval)
            return False, remaining, tat - now_us, allow_at - now_us
        if len(self._tat) >= self._max_keys:
            self._tat.clear()
        self._tat[key] = new_tat
        remaining = max(0, (now_us - (new_tat - tolerance - interval)) // interval)
        return True, remaining, new_tat - now_us, 0


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(GCRA_LUA)
        self._local = _LocalGcra()
        self._redis_down_until = 0.0

    async def check(self, subject: str, limit: Limit) -> Decision:
        """Take one request from ``subject``'s bucket."""
        key = redis_keys.rate_limit(subject)
        now = time.time()
        result: tuple[bool, int, int, int] | None = None
        if time.monotonic() >= self._redis_down_until:
            try:
                raw = await self._script(keys=[key], args=[limit.interval_us, limit.tolerance_us])
                result = (bool(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]))
            except (aioredis.RedisError, OSError) as exc:
                log.warning("rate limiting falls back to this process: redis: %s", exc)
                self._redis_down_until = time.monotonic() + 5.0
        if result is None:
            result = self._local.check(key, limit, int(now * 1_000_000))
        allowed, remaining, reset_after_us, retry_after_us = result
        return Decision(
            allowed=allowed,
            limit=limit.count,
            remaining=remaining,
            reset_at=math.ceil(now + reset_after_us / 1_000_000),
            retry_after=retry_after_us / 1_000_000,
        )
