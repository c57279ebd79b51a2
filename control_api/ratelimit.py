"""Rate limits: GCRA buckets in Redis (fleetd/storage/rate_buckets.py), shared by every
control API process.

Limits per caller class, by default as the seed sets them: anonymous 10/s (per client
address), authenticated 100/s (per key, token subject or certificate), device 10/min (per
device), admin unlimited; ``FLEETD_RATE_ANONYMOUS`` / ``_AUTHENTICATED`` / ``_DEVICE``
change them (``COUNT/s``, ``/m`` or ``/h``). A limit allows a burst of ``count``
requests, then one per emission interval. The bucket script uses Redis's clock, so
processes on different nodes agree.

If Redis is unreachable, each process falls back to an in-memory GCRA with the same
parameters (so a single process never exceeds the limit; a fleet of them may, by at most
the number of processes). Authentication itself never depends on this module.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from fleetd.settings import Settings, parse_rate
from fleetd.storage.errors import REDIS_ERRORS
from fleetd.storage.rate_buckets import RedisRateBuckets
from fleetd.storage.types import Redis

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5.0
"""After a Redis failure, how long the local fallback decides before Redis is tried again."""


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
    """The bucket script's algorithm (fleetd/storage/rate_buckets.py) in process memory,
    for when Redis is unreachable."""

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
    """The shared buckets in Redis; this process's own while Redis fails (and for
    ``REDIS_RETRY_SECONDS`` after each failure, so an outage costs one failed call per
    interval rather than one per request)."""

    def __init__(self, redis: Redis) -> None:
        self._buckets = RedisRateBuckets(redis)
        self._local = _LocalGcra()
        self._redis_down_until = 0.0

    async def check(self, subject: str, limit: Limit) -> Decision:
        """Take one request from ``subject``'s bucket."""
        now = time.time()
        result: tuple[bool, int, int, int] | None = None
        if time.monotonic() >= self._redis_down_until:
            try:
                result = await self._buckets.take(subject, limit.interval_us, limit.tolerance_us)
            except REDIS_ERRORS as exc:
                log.warning("rate limiting falls back to this process: redis: %s", exc)
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        if result is None:
            result = self._local.check(subject, limit, int(now * 1_000_000))
        allowed, remaining, reset_after_us, retry_after_us = result
        return Decision(
            allowed=allowed,
            limit=limit.count,
            remaining=remaining,
            reset_at=math.ceil(now + reset_after_us / 1_000_000),
            retry_after=retry_after_us / 1_000_000,
        )
