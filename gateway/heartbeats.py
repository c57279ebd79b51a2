"""The heartbeat pipeline: compiled batcher in, Redis every few tens of ms, PostgreSQL ~1/s.

Per heartbeat the gateway does one ``HeartbeatBatcher.add``. A flusher drains the batcher
into one Redis pipeline per flush (liveness ZSET + latest-stats hashes), and folds the
drained records into a per-device map that is written to PostgreSQL about once a second
with COPY and one merging UPDATE. Nothing per heartbeat touches PostgreSQL.

Heartbeats are liveness, not transactions: a crash can lose the last flush interval of
them (the device's next heartbeat restores it). A clean shutdown flushes everything.
A failed PostgreSQL write is retried on the next tick with the records kept (coalesced,
so the retry buffer is bounded by the fleet size); a failed Redis write is dropped after
logging, since PostgreSQL still receives the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

import asyncpg
import redis.asyncio as aioredis

from core_ext import HeartbeatBatcher
from fleetd.storage import redis_keys
from fleetd.storage.devices import HeartbeatRow, merge_heartbeats

log = logging.getLogger(__name__)

STATS_TTL_SECONDS = 24 * 3600
Record = tuple[str, float, int, float, float, float, int, int]


class HeartbeatPipeline:
    """Owns the batcher and the two flush loops of one gateway process."""

    def __init__(
        self,
        fleet: str,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        *,
        redis_interval: float = 0.05,
        postgres_interval: float = 1.0,
        max_pending: int = 65536,
    ) -> None:
        self.fleet = fleet
        self._redis = redis
        self._pool = pool
        self._redis_interval = redis_interval
        self._postgres_interval = postgres_interval
        self._batcher = HeartbeatBatcher(max_pending)
        self._for_postgres: dict[str, Record] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.flushed_to_redis = 0
        self.flushed_to_postgres = 0

    def add(
        self,
        device_id: str,
        state: int,
        cpu_percent: float,
        memory_percent: float,
        disk_percent: float,
        uptime_seconds: int,
    ) -> None:
        full = self._batcher.add(
            device_id,
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
        """Stop the loops and flush whatever is pending to both stores."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush_redis()
        await self.flush_postgres()

    async def _redis_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._redis_interval)
            self._wake.clear()
            await self.flush_redis()

    async def _postgres_loop(self) -> None:
        while True:
            await asyncio.sleep(self._postgres_interval)
            await self.flush_postgres()

    async def flush_redis(self) -> int:
        """Drain the batcher into one Redis pipeline; queue the records for PostgreSQL."""
        records, _transitions = self._batcher.drain()
        if not records:
            return 0
        pending = self._for_postgres
        for record in records:
            pending[record[0]] = record
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(redis_keys.last_seen(self.fleet), {r[0]: r[1] for r in records})
        for device_id, seen_at, state, cpu, mem, disk, uptime, count in records:
            key = redis_keys.device_stats(device_id)
            pipe.hset(
                key,
                mapping={
                    "seen_at": seen_at,
                    "state": state,
                    "cpu": cpu,
                    "mem": mem,
                    "disk": disk,
                    "uptime": uptime,
                    "count": count,
                },
            )
            pipe.expire(key, STATS_TTL_SECONDS)
        try:
            await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            log.warning("redis flush of %d heartbeats failed: %s", len(records), exc)
            return 0
        self.flushed_to_redis += len(records)
        return len(records)

    async def flush_postgres(self) -> int:
        """Write the coalesced records to PostgreSQL; keep them for a retry on failure."""
        if not self._for_postgres:
            return 0
        batch, self._for_postgres = self._for_postgres, {}
        rows: list[HeartbeatRow] = [
            (r[0], dt.datetime.fromtimestamp(r[1], dt.UTC), r[3], r[4], r[5], r[6])
            for r in batch.values()
        ]
        try:
            async with self._pool.acquire() as conn:
                await merge_heartbeats(conn, rows)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("postgres flush of %d devices failed, will retry: %s", len(rows), exc)
            for device_id, record in batch.items():
                newer = self._for_postgres.get(device_id)
                if newer is None or newer[1] < record[1]:
                    self._for_postgres[device_id] = record
            return 0
        self.flushed_to_postgres += len(rows)
        return len(rows)
