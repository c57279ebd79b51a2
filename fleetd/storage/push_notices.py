"""Notices the gateway hears on Redis pub/sub: desired state changed, certificates revoked.

Publishers send space-separated device ids on ``redis_keys.DESIRED_CHANGED_CHANNEL``
(``fleetd.storage.desired.mark_changed``) and ``redis_keys.CERTIFICATES_REVOKED_CHANNEL``
(``fleetd.storage.revocation_notices.announce``, on offboarding). :func:`listen` subscribes
to both and yields each message as a ``Notice``. Pub/sub is best effort: what is published
while nobody is subscribed is lost, so a subscriber knows of every change only between the
moment it subscribed and the moment the subscription broke (both reported to
``on_subscription``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from fleetd.storage import redis_keys
from fleetd.storage.errors import REDIS_ERRORS
from fleetd.storage.types import Redis


@dataclass(frozen=True, slots=True)
class Notice:
    """One published message: the devices it names, and what happened to them."""

    device_ids: list[str]
    revoked: bool
    """True: their certificates were revoked; False: their desired state changed."""


async def listen(
    redis: Redis, on_subscription: Callable[[bool], None]
) -> AsyncGenerator[Notice, None]:
    """Subscribe to both channels, then yield every notice as it arrives, for ever.

    ``on_subscription(True)`` is called once subscribed; ``on_subscription(False)`` as soon
    as a Redis failure breaks the subscription, before it is torn down and the failure
    (one of ``REDIS_ERRORS``) is raised. The subscription is closed however the iteration
    ends (wrap it in ``contextlib.aclosing`` to end it deterministically).
    """
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(
            redis_keys.DESIRED_CHANGED_CHANNEL, redis_keys.CERTIFICATES_REVOKED_CHANNEL
        )
        on_subscription(True)
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None or message["type"] != "message":
                continue
            channel, data = message["channel"], message["data"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            text = data.decode() if isinstance(data, bytes) else data
            yield Notice(text.split(), channel == redis_keys.CERTIFICATES_REVOKED_CHANNEL)
    except REDIS_ERRORS:
        on_subscription(False)
        raise
    finally:
        with contextlib.suppress(*REDIS_ERRORS):
            await pubsub.aclose()
