"""The heartbeat pipeline: compiled batcher in, Redis every few tens of ms, PostgreSQL ~1/s.

Per heartbeat the gateway does one ``HeartbeatBatcher.add``; everything else is the
batcher's (compiled) work, done per flush:

* every ``redis_interval`` (or at once when ``max_pending`` devices are pending) the Redis
  loop drains the batcher's flush window into a ``Flush``, whose ``redis_commands`` (one
  ZADD to the fleet's last-seen ZSET, run through ``fleetd.storage.liveness.ARRIVE`` so
  devices coming online get their event, then HSET + EXPIRE of each device's stats hash)
  are fed to one pipeline (``fleetd.storage.heartbeat_flush.write_latest``), whose
  per-group rollups are combined for PostgreSQL, and which goes to the ``on_flush`` hook;
* every ``postgres_interval`` the PostgreSQL loop takes the batcher's COPY window: one
  ready record per device drained since (coalesced by the batcher, ``seen_at`` already a
  UTC datetime), written with COPY and one merging UPDATE, then the combined per-minute
  rollups (``fleetd.storage.heartbeat_flush.write_records``).

Nothing per heartbeat touches PostgreSQL. Heartbeats are liveness, not transactions: a
crash can lose the last flush interval of them (the device's next heartbeat restores it).
A clean shutdown flushes everything. A failed PostgreSQL write is retried on the next tick
with its records kept (merged with the newer ones per device, so the retry buffer is
bounded by the fleet size); a failed Redis write is dropped after logging, since
PostgreSQL still receives the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from core_ext import CopyRecord, Flush, HeartbeatBatcher
from fleetd.storage import redis_keys
from fleetd.storage.errors import REDIS_ERRORS
from fleetd.storage.heartbeat_flush import WRITE_ERRORS, write_latest, write_records
from fleetd.storage.redis_keys import STATS_TTL_SECONDS
from fleetd.storage.rollups import RollupKey, combine, combine_one
from fleetd.storage.types import Pool, Redis

log = logging.getLogger(__name__)

ROLLUP_INTERVAL_SECONDS = 60
UNKNOWN_GROUP = ("", "")
"""The group of devices without a type and version, and of any beyond the batcher's
``MAX_GROUPS`` distinct groups."""


class HeartbeatPipeline:
    """Owns the batcher and the two flush loops of one gateway process.

    ``on_flush`` (settable at any time), if not None, receives every ``Flush`` that carries
    heartbeats, for its transitions and per-minute group rollups, on the event loop: it
    must not block. The rollups are also combined here and merged into PostgreSQL's
    ``fleet_rollups`` with each PostgreSQL flush (kept for a retry if it fails).
    """

    def __init__(
        self,
        fleet: str,
        redis: Redis,
        pool: Pool,
        *,
        redis_interval: float = 0.05,
        postgres_interval: float = 1.0,
        max_pending: int = 65536,
        on_flush: Callable[[Flush], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self._redis = redis
        self._pool = pool
        self._redis_interval = redis_interval
        self._postgres_interval = postgres_interval
        self.on_flush = on_flush
        self._batcher = HeartbeatBatcher(
            max_pending,
            last_seen_key=redis_keys.last_seen(fleet),
            stats_key_prefix=redis_keys.DEVICE_STATS_PREFIX,
            stats_key_suffix=redis_keys.DEVICE_STATS_SUFFIX,
            stats_ttl=STATS_TTL_SECONDS,
            rollup_interval=ROLLUP_INTERVAL_SECONDS,
        )
        self._unknown_group = self._batcher.group_id(*UNKNOWN_GROUP)
        self._retry: list[CopyRecord] = []
        self._rollups: dict[RollupKey, list[float]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.flushed_to_redis = 0
        self.flushed_to_postgres = 0

    def group_id(self, device_type: str, version: str) -> int:
        """The batcher's id for a device group, for ``add``; look it up once per device."""
        try:
            return self._batcher.group_id(device_type, version)
        except ValueError:  # more distinct groups than the batcher keeps
            return self._unknown_group

    def add(
        self,
        device_id: str,
        group: int,
        state: int,
        cpu_percent: float,
        memory_percent: float,
        disk_percent: float,
        uptime_seconds: int,
    ) -> None:
        full = self._batcher.add(
            device_id,
            group,
            time.time(),
            state,
            cpu_percent,
            memory_percent,
            disk_percent,
            uptime_seconds,
        )
        if full:
            self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._redis_loop(), name="heartbeats-redis"),
            asyncio.create_task(self._postgres_loop(), name="heartbeats-postgres"),
        ]

    async def close(self) -> None:
        """Stop the loops, letting a flush in progress finish, then flush everything."""
        self._stopping.set()
        self._wake.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush_redis()  # moves the last records into the COPY window
        await self.flush_postgres()

    async def _redis_loop(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as its timeout fires, and the loop would then never stop.
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._redis_interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush_redis()

    async def _postgres_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._postgres_interval):
                    await self._stopping.wait()
            await self.flush_postgres()

    async def flush_redis(self) -> int:
        """Drain the batcher into one Redis pipeline; return the number of devices written.

        The drained records wait in the batcher's COPY window for ``flush_postgres``.
        """
        flush = self._batcher.drain()
        if self.on_flush is not None and flush.heartbeats:
            try:
                self.on_flush(flush)
            except Exception:  # a broken hook must not stop the heartbeat pipeline
                log.exception("heartbeat on_flush hook failed")
        if flush.rollups:
            combine(self._rollups, flush.rollups)
        if not flush.redis_commands:
            return 0
        try:
            await write_latest(self._redis, self.fleet, flush.redis_commands)
        except REDIS_ERRORS as exc:  # PostgreSQL still gets the records: dropped, not retried
            log.warning("redis flush of %d devices failed: %s", flush.devices, exc)
            return 0
        self.flushed_to_redis += flush.devices
        return flush.devices

    async def flush_postgres(self) -> int:
        """Write the COPY window to PostgreSQL; keep the records for a retry on failure."""
        rows = self._batcher.drain_copy_records()
        if self._retry:
            rows = _latest_per_device(self._retry, rows)
            self._retry = []
        rollups, self._rollups = self._rollups, {}
        if not rows and not rollups:
            return 0
        try:
            await write_records(self._pool, rows, rollups)
        except WRITE_ERRORS as exc:
            log.warning("postgres flush of %d devices failed, will retry: %s", len(rows), exc)
            self._keep_for_retry(rows, rollups)
            return 0
        except asyncio.CancelledError:  # cancelled mid-write: keep the data for whoever goes on
            self._keep_for_retry(rows, rollups)
            raise
        self.flushed_to_postgres += len(rows)
        return len(rows)

    def _keep_for_retry(
        self, rows: list[CopyRecord], rollups: dict[RollupKey, list[float]]
    ) -> None:
        self._retry = _latest_per_device(self._retry, rows) if self._retry else rows
        for key, value in rollups.items():  # merged with any newer ones
            combine_one(self._rollups, key, value)


def _latest_per_device(older: list[CopyRecord], newer: list[CopyRecord]) -> list[CopyRecord]:
    """One record per device from both batches: the later ``seen_at``, ``newer`` on a tie.

    Only a retry after a failed write gets here, so this per-record Python is off the
    steady-state path.
    """
    merged = {record[0]: record for record in older}
    for record in newer:
        kept = merged.get(record[0])
        if kept is None or record[1] >= kept[1]:
            merged[record[0]] = record
    return list(merged.values())
