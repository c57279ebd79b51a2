"""Publishing the control API's device events after its changes commit.

A change is committed before its event is published (``fleetd.storage.events``), so a reader never
sees an event for a change that rolled back. Publishing is best effort: Redis being down
must not turn a committed change into an error for the caller, so a failure is logged
(loudly, with the request id) and the call still succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from control_api.auth import request_id_var
from control_api.resources import resources
from fleetd.storage import events, revocation_notices
from fleetd.storage.errors import REDIS_ERRORS

log = logging.getLogger(__name__)


async def publish(batch: Sequence[events.Event]) -> bool:
    """Publish ``batch`` on the fleet's stream; False (logged) if Redis could not take it."""
    res = resources()
    try:
        await events.publish(res.redis, res.settings.fleet, batch)
    except REDIS_ERRORS as exc:
        log.warning(
            "device events not published (%s for %s; request_id %s): %s",
            ", ".join(sorted({e.type for e in batch})),
            ", ".join(sorted({e.device_id for e in batch}))[:200],
            request_id_var.get(),
            exc,
        )
        return False
    return True


async def certificates_revoked(device_ids: Sequence[str]) -> bool:
    """Tell the gateways these devices' certificates were revoked (they drop the cached
    standing at once); best effort like events: the gateways' cache TTL bounds a miss."""
    try:
        await revocation_notices.announce(resources().redis, device_ids)
    except REDIS_ERRORS as exc:
        log.warning(
            "revocation notice not published for %s (request_id %s): %s",
            ", ".join(device_ids)[:200],
            request_id_var.get(),
            exc,
        )
        return False
    return True
