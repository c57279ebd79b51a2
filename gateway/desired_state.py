"""What a heartbeat answers: "unchanged" from Redis, or the desired state when it changed.

A device echoes the revision of the desired state it holds. The gateway keeps, per device,
a Redis hash (``redis_keys.desired_state``) with the current revision and the answer's body
(a serialized ``HeartbeatResponse`` carrying ``desired_state`` and ``log_requests``). One
Lua call per heartbeat decides: the same revision is "unchanged" (no body sent back, no
PostgreSQL); a different one with a body is that body; a miss (no entry, or a revision
whose body a writer dropped) loads the state from PostgreSQL in one statement (one
snapshot: revision, active assignments and pending log requests agree) and fills the
cache — never over a newer revision (writers bump revisions with
``fleetd.storage.desired``).

Lookups are batched: the heartbeats that arrive in one event-loop iteration share one
Redis pipeline, and all misses of a batch share one PostgreSQL query; with
``MAX_IN_FLIGHT`` batches resolving, later lookups wait and join a larger batch (the
batch size follows the load, the connections used stay few).

Outages: with Redis down every lookup goes to PostgreSQL (batched, so a fleet's worth of
heartbeats is tens of queries a second); with PostgreSQL down, cache hits are still
answered and misses raise ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2
from fleetd.storage import redis_keys
from fleetd.storage.desired import CACHE_TTL_SECONDS
from fleetd.storage.heartbeat_answers import load_heartbeat_answers
from fleetd.storage.redis_scripts import LuaScript

log = logging.getLogger(__name__)

MAX_BATCH = 512
"""Lookups per Redis pipeline / PostgreSQL query; larger batches are split."""

MAX_IN_FLIGHT = 4
"""Batches resolving at once; more lookups wait for the next batch."""

# KEYS[1] the device's hash; ARGV[1] the revision the device holds, ARGV[2] the TTL.
# Returns 0 when it is current, 1 when there is no usable entry, else the body.
_LOOKUP = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev then return 1 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if rev == ARGV[1] then return 0 end
local body = redis.call('HGET', KEYS[1], 'body')
if not body then return 1 end
return body
"""

# KEYS[1] the device's hash; ARGV[1] revision, ARGV[2] body, ARGV[3] TTL. Fills unless
# the entry holds a newer revision (a writer bumped it after our read).
_FILL = """
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '-1')
if rev > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'body', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class Unavailable(Exception):
    """Neither Redis nor PostgreSQL could answer; the heartbeat gets UNAVAILABLE."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the heartbeat response carries beyond liveness."""

    unchanged: bool
    body: bytes = b""
    """Serialized ``HeartbeatResponse`` with ``desired_state`` and ``log_requests``."""

    def apply(self, response: agent_pb2.HeartbeatResponse) -> None:
        if self.unchanged:
            response.unchanged = True
        else:
            response.MergeFromString(self.body)


UNCHANGED = Answer(True)


class DesiredStateLookup:
    """Batched desired-state lookups for one gateway process."""

    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
        self._redis = redis
        self._pool = pool
        self._lookup = LuaScript(_LOOKUP)
        self._fill = LuaScript(_FILL)
        self._pending: list[tuple[str, int, asyncio.Future[Answer]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.redis_hits = 0
        self.postgres_loads = 0

    async def answer(self, device_id: str, held_revision: int) -> Answer:
        """The answer for a device holding ``held_revision``; raises ``Unavailable``."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((device_id, held_revision, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_batch)
        return await future

    def _start_batch(self) -> None:
        self._scheduled = False
        # At most MAX_IN_FLIGHT batches at once: under load, lookups wait for a slot and
        # join a larger batch, instead of one small batch (and connection) per iteration.
        while self._pending and len(self._tasks) < MAX_IN_FLIGHT:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._tasks.add(task := asyncio.create_task(self._resolve(batch)))
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_batch)

    async def _resolve(self, batch: list[tuple[str, int, asyncio.Future[Answer]]]) -> None:
        try:
            await self._resolve_batch(batch)
        except Exception as exc:  # never leave a heartbeat waiting on a broken batch
            log.exception("desired-state batch failed")
            for _, _, future in batch:
                _fail(future, Unavailable(f"desired state unavailable: {exc.__class__.__name__}"))

    async def _resolve_batch(self, batch: list[tuple[str, int, asyncio.Future[Answer]]]) -> None:
        try:
            results = await self._from_redis(batch)
        except (aioredis.RedisError, OSError) as exc:
            log.debug("desired-state lookup from Redis failed: %s", exc)
            results = [None] * len(batch)
            redis_up = False
        else:
            redis_up = True
        misses: list[int] = []
        for index, result in enumerate(results):
            if result is None:
                misses.append(index)
            else:
                self.redis_hits += 1
                _settle(batch[index][2], result)
        if not misses:
            return
        try:
            loaded = await load_heartbeat_answers(self._pool, [batch[i][0] for i in misses])
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as exc:
            error = Unavailable(f"desired state unavailable: {exc.__class__.__name__}")
            for index in misses:
                _fail(batch[index][2], error)
            return
        self.postgres_loads += len(misses)
        fills: list[tuple[str, int, bytes]] = []
        for index in misses:
            device_id, held, future = batch[index]
            revision, body = loaded.get(device_id, (0, b""))
            fills.append((device_id, revision, body))
            _settle(future, UNCHANGED if revision == held else Answer(False, body))
        if redis_up:
            await self._fill_cache(fills)

    async def _from_redis(
        self, batch: Sequence[tuple[str, int, asyncio.Future[Answer]]]
    ) -> list[Answer | None]:
        replies = await self._lookup.run_many(
            self._redis,
            [(redis_keys.desired_state(d), held, CACHE_TTL_SECONDS) for d, held, _ in batch],
        )
        results: list[Answer | None] = []
        for reply in replies:
            if reply == 0:
                results.append(UNCHANGED)
            elif isinstance(reply, bytes):
                results.append(Answer(False, reply))
            else:
                results.append(None)
        return results

    async def _fill_cache(self, fills: Sequence[tuple[str, int, bytes]]) -> None:
        try:
            await self._fill.run_many(
                self._redis,
                [
                    (redis_keys.desired_state(d), rev, body, CACHE_TTL_SECONDS)
                    for d, rev, body in fills
                ],
            )
        except (aioredis.RedisError, OSError) as exc:
            log.debug("desired-state cache fill failed: %s", exc)


def _settle(future: asyncio.Future[Answer], answer: Answer) -> None:
    if not future.done():  # the call may have been cancelled meanwhile
        future.set_result(answer)


def _fail(future: asyncio.Future[Answer], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
