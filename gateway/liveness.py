"""Online/offline transitions: arrivals in each Redis flush, departures by one sweeper.

The fleet's last-seen ZSET (``redis_keys.last_seen``) holds exactly the devices believed
online, scored by their last heartbeat. Both transitions happen inside Redis, atomically
with the ZSET change (``fleetd.storage.liveness`` holds the scripts), so two gateway
processes can never both announce the same one:

* **online**: each heartbeat flush runs ``ARRIVE`` instead of a plain ZADD. A member that
  was absent is a device coming online: a ``device.online`` event goes on the fleet's
  event stream (``redis_keys.events``). PostgreSQL's status follows from the heartbeat
  merge (``merge_heartbeats`` turns offline/unknown into online).
* **offline**: one sweeper at a time across every gateway process and node (a Redis lease,
  ``redis_keys.sweeper_lease``) takes the members scored below ``now - offline_after``,
  marks them offline in PostgreSQL first, then runs ``DEPART``, which removes each member
  still below the cutoff and emits ``device.offline``. A crash between the two steps
  repeats the round; a device that heartbeats meanwhile is not removed (PostgreSQL is
  back to online with its next merge).

A backstop round every ``backstop_interval`` catches devices that are online in
PostgreSQL but absent from Redis (a Redis that lost its data): those are marked offline
from PostgreSQL alone, with their events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass

from fleetd.services.periodic import stop_task
from fleetd.storage import liveness as store
from fleetd.storage.errors import REDIS_ERRORS
from fleetd.storage.types import Pool, Redis

log = logging.getLogger(__name__)

SWEEP_BATCH = 5000
"""Silent devices taken per step of a round (one UPDATE and one DEPART each)."""


@dataclass
class SweepResult:
    offline: list[str]
    seconds: float


class LivenessSweeper:
    """Runs in every gateway process; sweeps only while it holds the fleet's lease."""

    def __init__(
        self,
        fleet: str,
        redis: Redis,
        pool: Pool,
        *,
        offline_after: float,
        interval: float = 1.0,
        backstop_interval: float = 60.0,
    ) -> None:
        self.fleet = fleet
        self._redis = redis
        self._pool = pool
        self.offline_after = offline_after
        self._interval = interval
        self._backstop_interval = backstop_interval
        self._token = secrets.token_hex(16)
        # Three rounds (at least 2 s): a holder that misses a renewal or two keeps it.
        self._lease_ms = int(max(3 * interval, 2.0) * 1000)
        self._task: asyncio.Task[None] | None = None
        self._last_backstop = 0.0
        self.holding = False
        self.last_sweep: SweepResult | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="liveness-sweeper")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        if self.holding:
            # Best effort: an unreleased lease expires by itself within _lease_ms.
            with contextlib.suppress(*REDIS_ERRORS):
                await store.release_lease(self._redis, self.fleet, self._token)
            self.holding = False

    async def _run(self) -> None:
        while True:
            try:
                if await self.hold_lease():
                    self.last_sweep = await self.sweep()
                    if time.monotonic() - self._last_backstop >= self._backstop_interval:
                        self._last_backstop = time.monotonic()
                        await self.backstop()
            except store.SWEEP_ERRORS as exc:  # every round is idempotent: the next retries
                log.warning("liveness sweep failed, will retry: %s", exc)
            await asyncio.sleep(self._interval)

    async def hold_lease(self) -> bool:
        """Take or renew the fleet's sweeper lease; whether this process holds it."""
        self.holding = await store.hold_lease(self._redis, self.fleet, self._token, self._lease_ms)
        return self.holding

    async def sweep(self, now: float | None = None) -> SweepResult:
        """One round: every device silent for ``offline_after`` goes offline."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        cutoff = now - self.offline_after
        offline: list[str] = []
        while True:
            silent = await store.silent_devices(self._redis, self.fleet, cutoff, SWEEP_BATCH)
            if not silent:
                break
            # PostgreSQL first: a crash before DEPART leaves them in the ZSET, and the
            # next round repeats both steps.
            await store.mark_offline(self._pool, silent, cutoff)
            offline.extend(await store.depart(self._redis, self.fleet, silent, cutoff, now))
            if len(silent) < SWEEP_BATCH:
                break
        return SweepResult(offline, time.perf_counter() - started)

    async def backstop(self, now: float | None = None) -> list[str]:
        """Devices online in PostgreSQL but silent there too (e.g. Redis lost its data)."""
        now = time.time() if now is None else now
        gone = await store.mark_silent_offline(self._pool, now - self.offline_after)
        await store.announce_offline(self._redis, self.fleet, gone, now)
        return [device.device_id for device in gone]
