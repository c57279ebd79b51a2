"""Keeping the online roles fresh: the TUF timestamp refresher, a background role.

Every REFRESH_INTERVAL seconds each event loop of the control API (:func:`start` at its
start-up, :func:`stop` at its shutdown) calls ``TufRepository.refresh_if_due``: a small
read when nothing is due; when something is, the repository's writer lock makes one
replica do the work and the others find it done. The timestamp lives a day and is
re-signed past half its life, so a refresher that misses rounds for hours still leaves
clients a valid timestamp.
"""

from __future__ import annotations

import logging

from fleetd.services.periodic import PeriodicRole
from fleetd.services.tuf_repo.repository import TufRepository

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 300.0


def _round_failed(exc: Exception) -> None:
    log.warning("TUF timestamp refresh failed: %s", exc)


_role = PeriodicRole(_round_failed)


def start(repository: TufRepository, interval: float = REFRESH_INTERVAL) -> None:
    """Start this event loop's refresher (a server's start-up hook)."""
    _role.start(repository.refresh_if_due, interval)


async def stop() -> None:
    """Stop this event loop's refresher."""
    await _role.stop()
