"""Watches Redis and PostgreSQL; drives the gateway's ``grpc.health.v1`` status.

Every ``interval`` both stores are pinged with a short timeout
(``fleetd.storage.reachability``). While either is down the gateway reports NOT_SERVING
(load balancers send new devices elsewhere) but keeps answering what it safely can; when
both answer again it reports SERVING, without a restart. The gateway's own code never
waits on this monitor: each call finds out for itself and answers UNAVAILABLE for what it
cannot do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fleetd.services.periodic import stop_task
from fleetd.storage.reachability import postgres_answers, redis_answers
from fleetd.storage.types import Pool, Redis

log = logging.getLogger(__name__)

StatusSink = Callable[[bool], Awaitable[None]]
"""Called with True (serving) or False (not serving) on every change."""


class StoreHealth:
    def __init__(
        self,
        redis: Redis,
        pool: Pool,
        on_change: StatusSink,
        *,
        interval: float = 1.0,
        timeout: float = 1.0,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._on_change = on_change
        self._interval = interval
        self._timeout = timeout
        self.redis_up = True
        self.postgres_up = True
        self._task: asyncio.Task[None] | None = None

    @property
    def serving(self) -> bool:
        return self.redis_up and self.postgres_up

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-health")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def check(self) -> bool:
        """Ping both stores once; report a change; return whether both answered."""
        was = self.serving
        redis_up, postgres_up = await asyncio.gather(
            redis_answers(self._redis, self._timeout),
            postgres_answers(self._pool, self._timeout),
        )
        if redis_up != self.redis_up:
            log.warning("redis is %s", "reachable again" if redis_up else "unreachable")
        if postgres_up != self.postgres_up:
            log.warning("postgresql is %s", "reachable again" if postgres_up else "unreachable")
        self.redis_up, self.postgres_up = redis_up, postgres_up
        if self.serving != was:
            await self._on_change(self.serving)
        return self.serving

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)
