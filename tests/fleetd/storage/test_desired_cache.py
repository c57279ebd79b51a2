"""The gateway's side of the desired-state cache: hits, misses, fills that never go back."""

from __future__ import annotations

import redis.asyncio as aioredis

from fleetd.storage import redis_keys
from fleetd.storage.desired import mark_changed
from fleetd.storage.desired_cache import fill, lookup


def _changed(body: bytes) -> str:
    return f"changed:{body.decode()}"


async def test_lookups_tell_current_changed_and_missing_apart(redis: aioredis.Redis) -> None:
    await fill(redis, [("rpi-1", 3, b"three"), ("rpi-2", 5, b"five")])
    answers = await lookup(redis, [("rpi-1", 3), ("rpi-2", 4), ("rpi-3", 0)], "current", _changed)
    assert answers == ["current", "changed:five", None]
    assert await redis.ttl(redis_keys.desired_state("rpi-1")) > 0


async def test_a_revision_marked_changed_misses_until_filled(redis: aioredis.Redis) -> None:
    await fill(redis, [("rpi-1", 3, b"three")])
    await mark_changed(redis, {"rpi-1": 4})  # the body is dropped
    assert await lookup(redis, [("rpi-1", 3)], "current", _changed) == [None]
    assert await lookup(redis, [("rpi-1", 4)], "current", _changed) == ["current"]


async def test_a_fill_never_moves_a_revision_backwards(redis: aioredis.Redis) -> None:
    await mark_changed(redis, {"rpi-1": 7})
    await fill(redis, [("rpi-1", 6, b"six")])  # read before the change: ignored
    assert await redis.hget(redis_keys.desired_state("rpi-1"), "rev") == b"7"
    await fill(redis, [("rpi-1", 7, b"seven")])
    assert await lookup(redis, [("rpi-1", 6)], "current", _changed) == ["changed:seven"]
