"""The analytics background roles, started and stopped by the servers.

``control_api/app.py`` awaits :func:`prepare` before serving (a server must have the
partitions for the rows it writes) and calls :func:`start` / :func:`stop` around serving;
``gateway/server.py`` does the same with ``roles=("partition_maintenance",)``, so a
deployment running only gateways still has partitions. Each role runs on
:class:`~fleetd.services.periodic.PeriodicRole` (a round at once, then every interval, one
task per event loop) and takes its own advisory lock each round, so however many loops and
replicas run it, one acts at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from fleetd.services.analytics.census import census_once
from fleetd.services.analytics.device_downsampler import downsample_once
from fleetd.services.analytics.partition_maintenance import ensure_partitions, maintain_once
from fleetd.services.analytics.rollup_compactor import compact_once
from fleetd.services.periodic import PeriodicRole
from fleetd.settings import Settings
from fleetd.storage.types import Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Intervals:
    """Seconds between two rounds of each role (docs/analytics.md 2.5); tests shorten them."""

    partition_maintenance: float = 600.0
    rollup_compactor: float = 10.0
    device_downsampler: float = 60.0
    census: float = 60.0


ALL: Final = ("partition_maintenance", "rollup_compactor", "device_downsampler", "census")


def _reporter(name: str) -> Callable[[Exception], None]:
    def report(exc: Exception) -> None:
        log.error("analytics %s round failed", name, exc_info=exc)

    return report


_roles: Final = {name: PeriodicRole(_reporter(name)) for name in ALL}


def _rounds(pool: Pool, settings: Settings) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "partition_maintenance": lambda: maintain_once(pool, settings),
        "rollup_compactor": lambda: compact_once(pool),
        "device_downsampler": lambda: downsample_once(pool),
        "census": lambda: census_once(pool),
    }


async def prepare(pool: Pool, settings: Settings) -> None:
    """Make the partitions that must exist now (waits for another process doing the same):
    await it before serving."""
    await ensure_partitions(pool, settings)


def start(
    pool: Pool,
    settings: Settings,
    *,
    intervals: Intervals = Intervals(),
    roles: Iterable[str] = ALL,
) -> None:
    """Start this event loop's tasks of ``roles`` (default: all of them); nothing for a
    role this loop runs already."""
    names = list(roles)
    for name in names:
        if name not in _roles:
            raise ValueError(f"unknown analytics role {name!r}: one of {', '.join(ALL)}")
    rounds = _rounds(pool, settings)
    for name in names:
        _roles[name].start(rounds[name], getattr(intervals, name))


async def stop() -> None:
    """Stop this event loop's analytics tasks (a round in progress is cancelled: each
    commits per transaction, so a cancelled round leaves nothing half-done)."""
    for role in _roles.values():
        await role.stop()
