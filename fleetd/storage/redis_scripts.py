"""Lua scripts run by EVALSHA in packed batches, loaded again after a NOSCRIPT.

redis-py's registered scripts check SCRIPT EXISTS on every pipeline execution: a round
trip per batch on the hot path, which this avoids. Commands are packed by
``fleetd.storage.resp`` (one write per batch). A Redis restarted (or SCRIPT FLUSHed)
since the last call answers NOSCRIPT; the batch is then sent again once after loading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from fleetd.storage.resp import Arg, execute_packed, pack_args, pack_prefix


class LuaScript:
    """A Lua script taking ``keys`` keys, then its arguments."""

    def __init__(self, source: str, *, keys: int = 1) -> None:
        self._source = source
        self._keys = keys
        # SHA-1 is how Redis names scripts (EVALSHA), not a security measure.
        self._sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self._prefixes: dict[int, bytes] = {}

    def pack(self, *call: Arg) -> bytes:
        """One run (``*keys, *args``) as packed EVALSHA."""
        total = 3 + len(call)
        prefix = self._prefixes.get(total)
        if prefix is None:
            prefix = self._prefixes[total] = pack_prefix(("EVALSHA", self._sha, self._keys), total)
        return prefix + pack_args(call)

    async def load(self, redis: aioredis.Redis) -> None:
        await redis.script_load(self._source)

    async def run_many(self, redis: aioredis.Redis, calls: Sequence[Sequence[Arg]]) -> list[object]:
        """Run once per ``(*keys, *args)`` in one batch; the replies, in order.

        Raises the first error reply (after one reload if the script was missing)."""
        payload = b"".join([self.pack(*call) for call in calls])
        return await execute(redis, payload, len(calls), (self,))


async def execute(
    redis: aioredis.Redis, payload: bytes, commands: int, scripts: Sequence[LuaScript]
) -> list[object]:
    """Send ``commands`` packed commands, some running ``scripts``; on NOSCRIPT load them
    and send the batch once more (a script that answered NOSCRIPT did nothing; the
    batch's other commands run twice, so they must be idempotent). Raises the first error
    reply; returns the replies in order."""
    replies = await execute_packed(redis, payload, commands)
    if any(isinstance(r, NoScriptError) for r in replies):
        for script in scripts:
            await script.load(redis)
        replies = await execute_packed(redis, payload, commands)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
