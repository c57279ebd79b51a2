"""What a heartbeat answers: "unchanged" from Redis, or the desired state when it changed.

A device echoes the revision of the desired state it holds. The gateway keeps, per device,
a Redis hash (``redis_keys.desired_state``) with the current revision and the answer's body
(a serialized ``HeartbeatResponse`` carrying ``desired_state`` and ``log_requests``). One
Lua call per heartbeat (``fleetd.storage.desired_cache``) decides: the same revision is
"unchanged" (no body sent back, no PostgreSQL); a different one with a body is that body;
a miss (no entry, or a revision whose body a writer dropped) loads the state from
PostgreSQL in one statement (one snapshot: revision, active assignments and pending log
requests agree) and fills the cache — never over a newer revision (writers bump revisions
with ``fleetd.storage.desired``).

Lookups are batched: the heartbeats that arrive in one event-loop iteration share one
Redis pipeline, and all misses of a batch share one PostgreSQL query; with
``MAX_IN_FLIGHT`` batches resolving, later lookups wait and join a larger batch (the
batch size follows the load, the connections used stay few).

Outages: with Redis down every lookup goes to PostgreSQL (batched, so a fleet's worth of
heartbeats is tens of queries a second); with PostgreSQL down (``STORE_DOWN``), cache hits
are still answered and misses raise ``Unavailable``. Any other failure of a batch is
logged and every lookup of the batch raises ``Unavailable``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from fleetd.device.v1 import agent_pb2
from fleetd.storage import desired_cache
from fleetd.storage.errors import REDIS_ERRORS, STORE_DOWN, StoreUnavailable
from fleetd.storage.heartbeat_answers import load_heartbeat_answers
from fleetd.storage.types import Pool, Redis
from gateway.batching import BatchedLookup

log = logging.getLogger(__name__)

MAX_BATCH = 512
"""Lookups per Redis pipeline / PostgreSQL query; larger batches are split."""

MAX_IN_FLIGHT = 4
"""Batches resolving at once; more lookups wait for the next batch."""


class Unavailable(StoreUnavailable):
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
_CHANGED = functools.partial(Answer, False)
"""``_CHANGED(body)``: the answer carrying a changed state's body."""


class DesiredStateLookup:
    """Batched desired-state lookups for one gateway process."""

    def __init__(self, redis: Redis, pool: Pool) -> None:
        self._redis = redis
        self._pool = pool
        self._batches: BatchedLookup[tuple[str, int], Answer | Unavailable] = BatchedLookup(
            self._resolve_batch, max_batch=MAX_BATCH, max_in_flight=MAX_IN_FLIGHT
        )
        self.redis_hits = 0
        self.postgres_loads = 0

    async def answer(self, device_id: str, held_revision: int) -> Answer:
        """The answer for a device holding ``held_revision``; raises ``Unavailable``."""
        try:
            result = await self._batches.get((device_id, held_revision))
        except STORE_DOWN as exc:  # anything else is a bug: INTERNAL (gateway.aborts)
            raise Unavailable("desired state unavailable") from exc
        if isinstance(result, Answer):
            return result
        raise Unavailable(str(result) if result else "desired state unavailable")

    async def _resolve_batch(
        self, batch: list[tuple[str, int]]
    ) -> dict[tuple[str, int], Answer | Unavailable]:
        """Redis first; its misses from PostgreSQL (then filled into Redis)."""
        try:
            results = await desired_cache.lookup(self._redis, batch, UNCHANGED, _CHANGED)
        except REDIS_ERRORS as exc:
            log.debug("desired-state lookup from Redis failed: %s", exc)
            results = [None] * len(batch)
            redis_up = False
        else:
            redis_up = True
        answers: dict[tuple[str, int], Answer | Unavailable] = {}
        misses: list[tuple[str, int]] = []
        for key, result in zip(batch, results, strict=True):
            if result is None:
                misses.append(key)
            else:
                self.redis_hits += 1
                answers[key] = result
        if not misses:
            return answers
        try:
            loaded = await load_heartbeat_answers(self._pool, [device for device, _ in misses])
        except STORE_DOWN as exc:
            log.warning("desired-state load failed: %r", exc)
            error = Unavailable("desired state unavailable (PostgreSQL unreachable)")
            answers.update(dict.fromkeys(misses, error))
            return answers
        self.postgres_loads += len(misses)
        fills: list[tuple[str, int, bytes]] = []
        for device_id, held in misses:
            revision, body = loaded.get(device_id, (0, b""))
            fills.append((device_id, revision, body))
            answers[(device_id, held)] = UNCHANGED if revision == held else Answer(False, body)
        if redis_up:
            await self._fill_cache(fills)
        return answers

    async def _fill_cache(self, fills: Sequence[tuple[str, int, bytes]]) -> None:
        try:
            await desired_cache.fill(self._redis, fills)
        except REDIS_ERRORS as exc:  # the next lookup misses and loads again
            log.debug("desired-state cache fill failed: %s", exc)
