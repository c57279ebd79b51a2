"""Pub/sub notices as the gateway hears them."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis

from fleetd.storage import redis_keys
from fleetd.storage.push_notices import Notice, listen


async def test_both_channels_are_heard_once_subscribed(redis: aioredis.Redis) -> None:
    states: list[bool] = []
    subscribed = asyncio.Event()

    def on_subscription(up: bool) -> None:
        states.append(up)
        subscribed.set()

    async with contextlib.aclosing(listen(redis, on_subscription)) as notices:
        first = asyncio.ensure_future(anext(notices))
        await asyncio.wait_for(subscribed.wait(), 5)
        assert states == [True]
        await redis.publish(redis_keys.DESIRED_CHANGED_CHANNEL, "rpi-1 rpi-2")
        await redis.publish(redis_keys.CERTIFICATES_REVOKED_CHANNEL, "rpi-3")
        assert await asyncio.wait_for(first, 5) == Notice(["rpi-1", "rpi-2"], revoked=False)
        assert await asyncio.wait_for(anext(notices), 5) == Notice(["rpi-3"], revoked=True)
    assert states == [True]  # closed by the caller, not broken
