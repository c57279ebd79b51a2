"""Pushes a changed desired state down the heartbeat streams open in this process, and
hears of revoked certificates.

Writers of desired state publish the ids of the devices they changed on
``redis_keys.DESIRED_CHANGED_CHANNEL`` (``fleetd.storage.desired.mark_changed``). Every
gateway process subscribes once (``fleetd.storage.push_notices``) and calls the ``notify``
of each listed device whose stream it holds; devices with no open stream here are ignored.
Best effort by design: a notice lost while Redis is away is made up by the device's next
heartbeat, which compares revisions anyway.

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

from fleetd.services.periodic import stop_task
from fleetd.storage.errors import REDIS_ERRORS
from fleetd.storage.push_notices import listen
from fleetd.storage.types import Redis

log = logging.getLogger(__name__)

Notify = Callable[[], None]


class PushHub:
    def __init__(
        self,
        redis: Redis,
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
        await stop_task(self._task)
        self._task = None

    def deliver(self, device_ids: list[str]) -> None:
        """Notify the local streams of devices whose desired state changed."""
        if self.on_changed is not None:  # before the pushes: they look the state up
            self.on_changed(device_ids)
        for device_id in device_ids:
            notify = self._streams.get(device_id)
            if notify is not None:
                self.notices += 1
                notify()

    def revoked(self, device_ids: list[str]) -> None:
        """Devices whose certificates were revoked: their cached standing goes."""
        if self._on_revoked is not None:
            self._on_revoked(device_ids)

    def _subscription(self, up: bool) -> None:
        # Set before the first notice is handled, cleared before a broken subscription is
        # torn down: what was verified outside this window is not trusted.
        self.subscribed_at = time.monotonic() if up else None
        if up:
            self.subscribed.set()
        else:
            self.subscribed.clear()

    async def _run(self) -> None:
        while True:
            try:
                async with contextlib.aclosing(listen(self._redis, self._subscription)) as notices:
                    async for notice in notices:
                        if notice.revoked:
                            self.revoked(notice.device_ids)
                        else:
                            self.deliver(notice.device_ids)
            except REDIS_ERRORS as exc:
                log.warning("desired-state notices interrupted, resubscribing: %s", exc)
            finally:
                self.subscribed_at = None
            await asyncio.sleep(self._retry_after)
