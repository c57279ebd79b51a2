"""Lookups batched per event-loop iteration: many concurrent callers, one round trip.

Under load (and above all in a reconnect storm) many calls need the same kind of lookup
at once; each paying its own PostgreSQL round trip queues them on a small pool. Here the
keys asked for during one loop iteration are fetched together, ``max_batch`` at a time.
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
        self, fetch_many: Callable[[list[K]], Awaitable[dict[K, V]]], *, max_batch: int = 512
    ) -> None:
        self._fetch_many = fetch_many
        self._max_batch = max_batch
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
        pending, self._pending = self._pending, {}
        items = list(pending.items())
        for start in range(0, len(items), self._max_batch):
            task = asyncio.create_task(self._resolve(dict(items[start : start + self._max_batch])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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
