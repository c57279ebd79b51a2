"""The heartbeat pipeline: compiled batcher in, Redis every few tens of ms, PostgreSQL ~1/s.

Per heartbeat the gateway does one ``HeartbeatBatcher.add``; everything else is the
batcher's (compiled) work, done per flush:

* every ``redis_interval`` (or at once when ``max_pending`` devices are pending) the Redis
  loop drains the batcher's flush window into a ``Flush``, whose ``redis_commands`` (one
  ZADD to the fleet's last-seen ZSET, run through ``fleetd.storage.liveness.ARRIVE`` so
  devices coming online get their event, then HSET + EXPIRE of each device's stats hash)
  are fed to one pipeline (``fleetd.storage.heartbeat_flush.write_latest``), whose
  per-group rollup sketches are merged for PostgreSQL, and which goes to the ``on_flush``
  hook;
* every ``postgres_interval`` the PostgreSQL loop takes the batcher's COPY window: one
  ready record per device drained since (coalesced by the batcher, ``seen_at`` already a
  UTC datetime, every DeviceStats field, network rates, the ``sample`` flag), written with
  COPY, one merging UPDATE and the samples' INSERT, and every ``rollup_flush_interval``
  the merged per-minute rollup partials (``fleetd.storage.heartbeat_flush.write_records``;
  docs/analytics.md 2.3, 2.4).

Nothing per heartbeat touches PostgreSQL. Heartbeats are liveness, not transactions: a
crash can lose the last flush interval of them (the device's next heartbeat restores it).
A clean shutdown flushes everything. A failed PostgreSQL write is retried on the next tick
with its records kept (merged with the newer ones per device, so the retry buffer is
bounded by the fleet size) and its rollup partials kept (merged into the newer ones, so
bounded by minutes x groups x metrics); a failed Redis write is dropped after logging,
since PostgreSQL still receives the same data. Samples that ``device_samples`` refuses (no
partition for their time) are dropped with a warning and counted in ``samples_dropped``:
liveness never waits for analytics.
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
from fleetd.storage.rollups import Partials, combine, combine_partials, writer_id
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
    must not block. The rollups' sketches belong to the pipeline once the hook returns
    (they are merged into across drains): a hook that keeps one merges it into its own
    ``Sketch``. The rollups are appended to PostgreSQL's ``metric_rollup_partials`` every
    ``rollup_flush_interval`` seconds and at ``close`` (kept for a retry if that fails).

    ``sample_interval`` is the batcher's per-device sampling period (``FLEETD_SAMPLE_INTERVAL``).
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
        sample_interval: float = 300.0,
        rollup_flush_interval: float = 10.0,
        on_flush: Callable[[Flush], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self._redis = redis
        self._pool = pool
        self._redis_interval = redis_interval
        self._postgres_interval = postgres_interval
        self._rollup_flush_interval = rollup_flush_interval
        self._rollups_due = time.monotonic() + rollup_flush_interval
        self.on_flush = on_flush
        self._batcher = HeartbeatBatcher(
            max_pending,
            last_seen_key=redis_keys.last_seen(fleet),
            stats_key_prefix=redis_keys.DEVICE_STATS_PREFIX,
            stats_key_suffix=redis_keys.DEVICE_STATS_SUFFIX,
            stats_ttl=STATS_TTL_SECONDS,
            rollup_interval=ROLLUP_INTERVAL_SECONDS,
            sample_interval=sample_interval,
        )
        self._unknown_group = self._batcher.group_id(*UNKNOWN_GROUP)
        self._retry: list[CopyRecord] = []
        self._rollups: Partials = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.flushed_to_redis = 0
        self.flushed_to_postgres = 0
        self.samples_written = 0
        self.samples_dropped = 0
        """Samples ``device_samples`` refused (no partition for their time), since start."""
        self.partials_written = 0

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
        memory_used_mb: int,
        memory_total_mb: int,
        disk_used_gb: float,
        disk_total_gb: float,
        load_avg_1m: float,
        load_avg_5m: float,
        load_avg_15m: float,
        temperature: float,
        network_rx_bytes: int,
        network_tx_bytes: int,
    ) -> None:
        """One heartbeat, stamped with this process's clock (``HeartbeatBatcher.add``:
        ``temperature`` NaN when the device has no sensor, counters in bytes since boot)."""
        full = self._batcher.add(
            device_id,
            group,
            time.time(),
            state,
            cpu_percent,
            memory_percent,
            disk_percent,
            uptime_seconds,
            memory_used_mb,
            memory_total_mb,
            disk_used_gb,
            disk_total_gb,
            load_avg_1m,
            load_avg_5m,
            load_avg_15m,
            temperature,
            network_rx_bytes,
            network_tx_bytes,
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
        await self.flush_postgres(rollups=True)

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

    async def flush_postgres(self, *, rollups: bool | None = None) -> int:
        """Write the COPY window to PostgreSQL, and the rollup partials when they are due
        (every ``rollup_flush_interval``; ``rollups=True`` forces them, False holds them);
        keep both for a retry on failure. Returns the number of records written."""
        rows = self._batcher.drain_copy_records()
        if self._retry:
            rows = _latest_per_device(self._retry, rows)
            self._retry = []
        now = time.monotonic()
        if rollups is None:
            rollups = now >= self._rollups_due
        partials: Partials = {}
        if rollups:
            partials, self._rollups = self._rollups, {}
            self._rollups_due = now + self._rollup_flush_interval
        if not rows and not partials:
            return 0
        try:
            merged = await write_records(
                self._pool, rows, partials, writer=writer_id(), fleet=self.fleet
            )
        except WRITE_ERRORS as exc:
            log.warning(
                "postgres flush of %d devices and %d rollup partials failed, will retry: %s",
                len(rows),
                len(partials),
                exc,
            )
            self._keep_for_retry(rows, partials)
            return 0
        except asyncio.CancelledError:  # cancelled mid-write: keep the data for whoever goes on
            self._keep_for_retry(rows, partials)
            raise
        if merged is not None:
            self.samples_written += merged.samples
            if merged.samples_dropped:
                self.samples_dropped += merged.samples_dropped
                log.warning(
                    "dropped %d device samples (devices updated): %s",
                    merged.samples_dropped,
                    merged.error,
                )
        self.partials_written += len(partials)
        self.flushed_to_postgres += len(rows)
        return len(rows)

    def _keep_for_retry(self, rows: list[CopyRecord], partials: Partials) -> None:
        self._retry = _latest_per_device(self._retry, rows) if self._retry else rows
        if partials:  # merged with any newer ones, written at the next due flush
            combine_partials(partials, self._rollups)
            self._rollups = partials


def _latest_per_device(older: list[CopyRecord], newer: list[CopyRecord]) -> list[CopyRecord]:
    """One record per device from both batches: the later ``seen_at``, ``newer`` on a tie,
    a sample if either was (the batcher's COPY-window rule).

    Only a retry after a failed write gets here, so this per-record Python is off the
    steady-state path.
    """
    merged = {record[0]: record for record in older}
    for record in newer:
        kept = merged.get(record[0])
        if kept is None:
            merged[record[0]] = record
            continue
        later, other = (record, kept) if record[1] >= kept[1] else (kept, record)
        merged[record[0]] = later if later[-1] or not other[-1] else (*later[:-1], True)
    return list(merged.values())
