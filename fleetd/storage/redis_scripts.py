"""Lua scripts run by EVALSHA in pipelines, loaded again after a NOSCRIPT.

redis-py's registered scripts check SCRIPT EXISTS on every pipeline execution: a round
trip per batch on the hot path, which this avoids. A Redis restarted (or SCRIPT FLUSHed)
since the last call answers NOSCRIPT; the batch is then run again once after loading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError


class LuaScript:
    """A Lua script taking ``keys`` keys, then its arguments."""

    def __init__(self, source: str, *, keys: int = 1) -> None:
        self._source = source
        self._keys = keys
        # SHA-1 is how Redis names scripts (EVALSHA), not a security measure.
        self._sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def queue(self, pipe: Pipeline, *call: str | int | float | bytes) -> None:
        """Add one run (``*keys, *args``) to ``pipe``; execute it with ``execute``."""
        pipe.evalsha(self._sha, self._keys, *call)

    async def load(self, redis: aioredis.Redis) -> None:
        await redis.script_load(self._source)

    async def run_many(
        self, redis: aioredis.Redis, calls: Sequence[Sequence[str | int | float | bytes]]
    ) -> list[object]:
        """Run once per ``(*keys, *args)`` in one pipeline; the replies, in order.

        Raises the first error reply (after one reload if the script was missing)."""

        def build(pipe: Pipeline) -> None:
            for call in calls:
                self.queue(pipe, *call)

        return await execute(redis, build, (self,))


async def execute(
    redis: aioredis.Redis, build: Callable[[Pipeline], None], scripts: Sequence[LuaScript]
) -> list[object]:
    """Build and execute one pipeline that runs ``scripts``; on NOSCRIPT load them and
    run it once more (a script that answered NOSCRIPT did nothing; the pipeline's other
    commands run twice, so they must be idempotent). Raises the first error reply; returns
    the replies in order."""
    for attempt in (1, 2):
        pipe = redis.pipeline(transaction=False)
        build(pipe)
        replies: list[object] = await pipe.execute(raise_on_error=False)
        if attempt == 2 or not any(isinstance(r, NoScriptError) for r in replies):
            break
        for script in scripts:
            await script.load(redis)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
