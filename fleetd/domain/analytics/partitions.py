"""Which time partitions of a table must exist and which may go: planning without IO.

The analytics tables are range-partitioned on a UTC timestamp (``docs/analytics.md``,
"Partitions"). pgserver's PostgreSQL has no pg_partman, so fleetd makes partitions ahead
of time and drops them after their retention itself; this module decides, storage does
the DDL.

Rules:

* **Alignment.** A partition covers ``[start, end)`` in UTC. Widths are a whole number of
  hours dividing a day (aligned to midnight: 6 h gives 00, 06, 12, 18), one day
  (midnight to midnight) or one calendar month (the 1st to the 1st).
* **Names** are the parent's name, ``_p`` and the start: ``pYYYYMMDDHH`` for hour widths,
  ``pYYYYMMDD`` for a day, ``pYYYYMM`` for a month (``device_samples_p2026120706``,
  ``device_samples_1h_p20261207``, ``metric_rollups_1h_p202612``). They are deterministic,
  sort in time order, and fit PostgreSQL's 63-byte identifiers.
* **Made ahead.** The partition holding ``now`` and the ``ahead`` partitions after it must
  exist; missing ones are to be created, oldest first. Past partitions are never created:
  rows are stamped with the server's clock, so nothing new can arrive for them.
* **Dropped after retention.** A partition whose ``end`` is at or before ``now -
  retention`` holds only rows older than the retention and is to be dropped, unless
  ``keep_from`` says its rows have not been consumed yet (a downsampler's watermark): then
  it waits until ``end <= keep_from``. So the data kept is at most retention plus one
  width.
* **Unknown names are never dropped.** A table under the parent whose name is not one this
  width would produce (another width, a hand-made table) is reported, not touched.

Everything is a pure function of its arguments, so running the plan twice, or from two
processes, asks for the same partitions: creating is idempotent in storage
(``IF NOT EXISTS``) and so is dropping.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["DAY", "MONTH", "Partition", "Plan", "Width", "hours", "partition_of", "plan"]

_UTC: Final = dt.UTC
_IDENTIFIER: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
_MAX_IDENTIFIER: Final = 63
"""PostgreSQL truncates identifiers beyond 63 bytes (NAMEDATALEN - 1)."""


@dataclass(frozen=True, slots=True)
class Width:
    """A partition width: ``hours`` hours (dividing 24), or one day, or one month.

    Build one with :func:`hours`, :data:`DAY` or :data:`MONTH`.
    """

    hours: int
    """Hours per partition; 24 for a day; 0 for a calendar month."""

    @property
    def suffix_format(self) -> str:
        if self.hours == 0:
            return "%Y%m"
        if self.hours == 24:
            return "%Y%m%d"
        return "%Y%m%d%H"


def hours(count: int) -> Width:
    """A width of ``count`` hours; ``count`` must divide 24 (24 is :data:`DAY`)."""
    if count < 1 or 24 % count:
        raise ValueError(
            f"a partition width of {count} hours does not divide a day: "
            "use 1, 2, 3, 4, 6, 8, 12 or 24 hours"
        )
    return Width(count)


DAY: Final = Width(24)
MONTH: Final = Width(0)


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: its table name and its bounds ``[start, end)``, UTC."""

    name: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one partitioned table now."""

    create: tuple[Partition, ...]
    """Missing partitions from the one holding ``now`` to ``ahead`` after it, oldest first."""

    drop: tuple[Partition, ...]
    """Existing partitions past retention (and consumed), oldest first."""

    unknown: tuple[str, ...]
    """Existing names this width would not produce, sorted; never dropped."""


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("partition planning needs timezone-aware datetimes (UTC)")
    return moment.astimezone(_UTC)


def _floor(moment: dt.datetime, width: Width) -> dt.datetime:
    if width.hours == 0:
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(
        hour=moment.hour - moment.hour % width.hours, minute=0, second=0, microsecond=0
    )


def _next(start: dt.datetime, width: Width) -> dt.datetime:
    if width.hours == 0:
        if start.month == 12:
            return start.replace(year=start.year + 1, month=1)
        return start.replace(month=start.month + 1)
    return start + dt.timedelta(hours=width.hours)


def _check_parent(parent: str, width: Width) -> None:
    longest = len(parent) + 2 + len(dt.datetime(2000, 1, 1).strftime(width.suffix_format))
    if not _IDENTIFIER.match(parent) or longest > _MAX_IDENTIFIER:
        raise ValueError(
            f"parent table name {parent!r} must be lower-case letters, digits and '_', "
            f"short enough that its partition names stay within {_MAX_IDENTIFIER} bytes"
        )


def partition_of(parent: str, moment: dt.datetime, width: Width) -> Partition:
    """The partition of ``parent`` that holds ``moment``."""
    _check_parent(parent, width)
    start = _floor(_utc(moment), width)
    return Partition(f"{parent}_p{start.strftime(width.suffix_format)}", start, _next(start, width))


def _parse(parent: str, name: str, width: Width) -> Partition | None:
    """The partition ``name`` stands for under this width, or None if it is not one."""
    prefix = f"{parent}_p"
    if not name.startswith(prefix):
        return None
    stamp = name[len(prefix) :]
    try:
        start = dt.datetime.strptime(stamp, width.suffix_format).replace(tzinfo=_UTC)
    except ValueError:
        return None
    # strptime accepts unpadded fields ("2026127"): only the canonical spelling counts,
    # and an hour off this width's grid is another width's partition.
    if start.strftime(width.suffix_format) != stamp or _floor(start, width) != start:
        return None
    return Partition(name, start, _next(start, width))


def plan(
    parent: str,
    *,
    now: dt.datetime,
    width: Width,
    ahead: int,
    retention: dt.timedelta,
    existing: Iterable[str],
    keep_from: dt.datetime | None = None,
) -> Plan:
    """The partitions of ``parent`` to create and to drop at ``now`` (see the module rules).

    ``existing`` names the partitions there are (any order, duplicates ignored);
    ``keep_from``, when given, keeps every partition ending after it, expired or not.
    """
    if ahead < 0:
        raise ValueError(f"ahead must be 0 or more partitions, not {ahead}")
    if retention <= dt.timedelta(0):
        raise ValueError(f"retention must be positive, not {retention}")
    now = _utc(now)
    floor = _utc(keep_from) if keep_from is not None else None
    current = partition_of(parent, now, width)
    wanted = [current]
    for _ in range(ahead):
        start = wanted[-1].end
        wanted.append(partition_of(parent, start, width))

    have: dict[str, Partition] = {}
    unknown: set[str] = set()
    for name in existing:
        parsed = _parse(parent, name, width)
        if parsed is None:
            unknown.add(name)
        else:
            have[name] = parsed

    cutoff = now - retention
    drop = sorted(
        (p for p in have.values() if p.end <= cutoff and (floor is None or p.end <= floor)),
        key=lambda p: p.start,
    )
    return Plan(
        create=tuple(p for p in wanted if p.name not in have),
        drop=tuple(drop),
        unknown=tuple(sorted(unknown)),
    )
