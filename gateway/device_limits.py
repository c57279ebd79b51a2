"""Per-device call limits in the gateway process: GCRA, answered with retry pushback.

A well-behaved agent heartbeats once per server-given interval; one that calls much faster
(a bug, a loop, a replayed certificate) is told to back off with RESOURCE_EXHAUSTED and
``grpc-retry-pushback-ms``. The limit is local to the process: a device's calls arrive on
its one connection, which SO_REUSEPORT pins to one process, so a shared (Redis) limiter
would cost a round trip per heartbeat to catch only devices that reconnect on purpose to
spread their calls. Entries whose bucket is full again are pruned, so memory follows the
devices that called within the last ``burst`` emission intervals, not the fleet.
"""

from __future__ import annotations

import time


class DeviceRateLimiter:
    """GCRA: ``rate`` calls per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, *, prune_every: float = 10.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._emission = 1.0 / rate
        self._tolerance = self._emission * (burst - 1)
        self._tat: dict[str, float] = {}
        self._prune_every = prune_every
        self._next_prune = time.monotonic() + prune_every

    def check(self, key: str, now: float | None = None) -> float:
        """0.0 when the call is allowed (and counted), else seconds until it would be."""
        now = time.monotonic() if now is None else now
        if now >= self._next_prune:
            self._prune(now)
        tat = max(self._tat.get(key, now), now)
        allowed_at = tat - self._tolerance
        if now < allowed_at:
            return allowed_at - now
        self._tat[key] = tat + self._emission
        return 0.0

    def _prune(self, now: float) -> None:
        self._next_prune = now + self._prune_every
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}

    def __len__(self) -> int:
        return len(self._tat)
