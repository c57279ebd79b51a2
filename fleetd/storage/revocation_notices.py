"""Telling the gateways that devices' certificates were just revoked (offboarding).

Published on ``redis_keys.CERTIFICATES_REVOKED_CHANNEL`` after the revocation commits; a
gateway drops its cached certificate standing for those devices at once
(gateway/pushes.py). A notice is a hint, never the record: the gateways' cache TTL bounds
how long a lost notice goes unseen.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetd.storage import redis_keys
from fleetd.storage.types import Redis


async def announce(redis: Redis, device_ids: Sequence[str]) -> None:
    """Publish one notice naming ``device_ids``.

    Raises redis-py's errors (``fleetd.storage.errors.REDIS_ERRORS``) when Redis cannot
    take it; the caller decides whether that matters.
    """
    await redis.publish(redis_keys.CERTIFICATES_REVOKED_CHANNEL, " ".join(device_ids))
