"""Lookups batched per event-loop iteration: many concurrent callers, one round trip.

Under load (and above all in a reconnect storm) many calls need the same kind of lookup
at once; each paying its own PostgreSQL round trip queues them on a small pool. Here the
keys asked for during one loop iteration are fetched together, ``max_batch`` at a time,
with at most ``max_in_flight`` fetches at once (later keys wait for the next batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BatchedLookup(Generic[K, V]):
    """``await get(key)`` -> the value ``fetch_many`` found for it, or None.

    An exception from ``fetch_many`` is raised to every caller of that batch.
    """

    def __init__(
        self,
        fetch_many: Callable[[list[K]], Awaitable[dict[K, V]]],
        *,
        max_batch: int = 512,
        max_in_flight: int = 4,
    ) -> None:
        self._fetch_many = fetch_many
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: dict[K, asyncio.Future[V | None]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0

    async def get(self, key: K) -> V | None:
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._start)
        # shield: one caller giving up must not cancel the others' shared future
        return await asyncio.shield(future)

    def _start(self) -> None:
        self._scheduled = False
        # At most max_in_flight fetches at once: under load, later keys wait and join a
        # larger batch rather than each loop iteration taking its own connection.
        while self._pending and len(self._tasks) < self._max_in_flight:
            batch: dict[K, asyncio.Future[V | None]] = {}
            for key in list(self._pending)[: self._max_batch]:
                batch[key] = self._pending.pop(key)
            task = asyncio.create_task(self._resolve(batch))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    async def _resolve(self, batch: dict[K, asyncio.Future[V | None]]) -> None:
        self.batches += 1
        try:
            found = await self._fetch_many(list(batch))
        except Exception as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for key, future in batch.items():
            if not future.done():
                future.set_result(found.get(key))
