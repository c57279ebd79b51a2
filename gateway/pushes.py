"""Pushes a changed desired state down the heartbeat streams open in this process, and
hears of revoked certificates.

Writers of desired state publish the ids of the devices they changed on
``redis_keys.DESIRED_CHANGED_CHANNEL`` (``fleetd.storage.desired.mark_changed``). Every
gateway process subscribes once and calls the ``notify`` of each listed device whose
stream it holds; devices with no open stream here are ignored. Best effort by design: a
notice lost while Redis is away is made up by the device's next heartbeat, which compares
revisions anyway.

On ``redis_keys.CERTIFICATES_REVOKED_CHANNEL`` the control API announces offboarded
devices; ``on_revoked`` (the authenticator's ``forget_devices``) drops their cached
standing so that the next call sees the revocation, not the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from fleetd.storage import redis_keys

log = logging.getLogger(__name__)

Notify = Callable[[], None]


class PushHub:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        on_revoked: Callable[[list[str]], None] | None = None,
        on_changed: Callable[[list[str]], None] | None = None,
        retry_after: float = 1.0,
    ) -> None:
        self._redis = redis
        self._on_revoked = on_revoked
        self.on_changed = on_changed
        """Called with every notice's device ids (before any push): the verified-revision
        cache (``gateway.verified``) forgets them."""
        self._retry_after = retry_after
        self._streams: dict[str, Notify] = {}
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.subscribed_at: float | None = None
        """``time.monotonic()`` when the current subscription started; None while not
        subscribed. An answer verified in Redis after it stays current until a notice."""
        self.notices = 0

    def register(self, device_id: str, notify: Notify) -> None:
        """The device's stream, replacing an older one of the same device."""
        self._streams[device_id] = notify

    def unregister(self, device_id: str, notify: Notify) -> None:
        if self._streams.get(device_id) is notify:
            del self._streams[device_id]

    def __len__(self) -> int:
        return len(self._streams)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="desired-state-pushes")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def deliver(self, message: bytes | str) -> None:
        """Notify the local streams of the devices listed in one published message."""
        text = message.decode() if isinstance(message, bytes) else message
        device_ids = text.split()
        if self.on_changed is not None:  # before the pushes: they look the state up
            self.on_changed(device_ids)
        for device_id in device_ids:
            notify = self._streams.get(device_id)
            if notify is not None:
                self.notices += 1
                notify()

    def revoked(self, message: bytes | str) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        if self._on_revoked is not None:
            self._on_revoked(text.split())

    async def _run(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(
                    redis_keys.DESIRED_CHANGED_CHANNEL, redis_keys.CERTIFICATES_REVOKED_CHANNEL
                )
                self.subscribed_at = time.monotonic()
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message["type"] != "message":
                        continue
                    channel = message["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    if channel == redis_keys.CERTIFICATES_REVOKED_CHANNEL:
                        self.revoked(message["data"])
                    else:
                        self.deliver(message["data"])
            except (aioredis.RedisError, OSError) as exc:
                self.subscribed_at = None
                self.subscribed.clear()
                log.warning("desired-state notices interrupted, resubscribing: %s", exc)
            finally:
                self.subscribed_at = None
                with contextlib.suppress(aioredis.RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(self._retry_after)
