"""Partition maintenance: the analytics tables' partitions made ahead and dropped after retention.

Decisions are the planner's (``fleetd.domain.analytics.partitions``) over the table of
tiers (``fleetd.domain.analytics.tiers``); the DDL is ``fleetd.storage.analytics.partitions``.
Every step holds the partition advisory lock, so two processes (control API and gateway
replicas all run this) never race on the same DDL: :func:`ensure_partitions` waits for it
(a server must have its partitions before it serves), a maintenance round tries it and
skips when another process is at it.

Raw samples are dropped only once the device downsampler's watermark has passed the
partition's end (the planner's ``keep_from``); before its first round nothing of that tier
is dropped, so no sample is lost to a downsampler that has not run yet.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from fleetd.domain.analytics import partitions as planner
from fleetd.domain.analytics.tiers import Tier, tiers
from fleetd.services.analytics.clock import utcnow
from fleetd.settings import Settings
from fleetd.storage.advisory_locks import session_lock
from fleetd.storage.analytics import locks, watermarks
from fleetd.storage.analytics import partitions as ddl
from fleetd.storage.types import Connection, Pool

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MaintenanceReport:
    """What a round did, by table name."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)
    """Partitions not created because another table under the parent covers their range."""
    unknown: list[str] = field(default_factory=list)
    """Tables under a parent that the planner does not name: left alone."""


def _plan(
    tier: Tier, now: dt.datetime, existing: list[ddl.AttachedTable], keep_from: dt.datetime | None
) -> planner.Plan:
    return planner.plan(
        tier.parent,
        now=now,
        width=tier.width,
        ahead=tier.ahead,
        retention=tier.retention,
        existing=[t.name for t in existing],
        keep_from=keep_from,
    )


async def _create_missing(
    conn: Connection, all_tiers: tuple[Tier, ...], now: dt.datetime, report: MaintenanceReport
) -> None:
    for tier in all_tiers:
        existing = await ddl.existing(conn, tier.parent)
        for partition in _plan(tier, now, existing, None).create:
            if await ddl.create(conn, tier, partition):
                report.created.append(partition.name)
            else:
                report.overlapping.append(partition.name)


async def _drop_expired(
    conn: Connection, all_tiers: tuple[Tier, ...], now: dt.datetime, report: MaintenanceReport
) -> None:
    for tier in all_tiers:
        keep_from = None
        if tier.consumed_by is not None:
            keep_from = await watermarks.get(conn, tier.consumed_by)
            if keep_from is None:
                continue  # its consumer has not run yet: keep everything
        existing = await ddl.existing(conn, tier.parent)
        plan = _plan(tier, now, existing, keep_from)
        report.unknown.extend(plan.unknown)
        by_name = {t.name: t for t in existing}
        for partition in plan.drop:
            await ddl.drop(conn, tier.parent, by_name[partition.name])
            report.dropped.append(partition.name)


async def ensure_partitions(
    pool: Pool, settings: Settings, now: dt.datetime | None = None
) -> list[str]:
    """Create every partition that must exist at ``now`` (default: the clock) and is
    missing; returns the names created. Idempotent; concurrent callers wait for each other
    on the partition lock and the later one finds nothing to do."""
    report = MaintenanceReport()
    async with session_lock(pool, locks.PARTITIONS, wait=True) as conn:
        assert conn is not None  # a waiting lock is always ours in the end
        await _create_missing(conn, tiers(settings), now or utcnow(), report)
    _log(report)
    return report.created


async def maintain_once(
    pool: Pool, settings: Settings, now: dt.datetime | None = None
) -> MaintenanceReport | None:
    """One maintenance round: create what is missing, drop what expired (and was consumed).
    None when another process holds the partition lock."""
    report = MaintenanceReport()
    async with session_lock(pool, locks.PARTITIONS, wait=False) as conn:
        if conn is None:
            return None
        moment = now or utcnow()
        all_tiers = tiers(settings)
        await _create_missing(conn, all_tiers, moment, report)
        await _drop_expired(conn, all_tiers, moment, report)
    _log(report)
    return report


def _log(report: MaintenanceReport) -> None:
    if report.created or report.dropped:
        log.info(
            "analytics partitions: created %s; dropped %s",
            ", ".join(report.created) or "none",
            ", ".join(report.dropped) or "none",
        )
    if report.overlapping:
        log.warning(
            "analytics partitions not created, another table covers their range: %s",
            ", ".join(report.overlapping),
        )
