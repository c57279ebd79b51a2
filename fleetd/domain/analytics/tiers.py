"""The partitioned analytics tables: width, how many made ahead, retention, who consumes them.

One table (docs/analytics.md, 2.7) read by partition maintenance: each parent's partition
width, the partitions made ahead of ``now`` (two days of raw samples, two of everything
else, so a control plane down for a day loses nothing), its retention from
:class:`~fleetd.settings.Settings`, the storage parameters given to each partition
(PostgreSQL refuses them on the partitioned parent), and the role whose watermark must pass
a partition's end before it may be dropped (raw samples are only dropped once the device
downsampler has folded them into ``device_samples_1h``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from fleetd.domain.analytics.partitions import DAY, MONTH, Width, hours
from fleetd.settings import Settings

DEVICE_DOWNSAMPLER: Final = "device_downsampler"
"""The ``analytics_watermarks.role`` of the device downsampler: every raw sample before its
``upto`` is in ``device_samples_1h``."""

_PLAIN: Final = (("fillfactor", 100),)
"""Append-only tables: pages filled completely."""
_WITH_SKETCHES: Final = (("fillfactor", 100), ("toast_tuple_target", 8160))
"""Rollup rows carry a ~0.1-2 kB sketch: keep it inline (docs/analytics.md, 1.1)."""


@dataclass(frozen=True, slots=True)
class Tier:
    """One partitioned parent table and how its partitions are kept."""

    parent: str
    time_column: str
    """The partition key (range, UTC)."""
    width: Width
    ahead: int
    """Partitions made after the one holding ``now``."""
    retention: dt.timedelta
    storage: tuple[tuple[str, int], ...]
    """``WITH (...)`` parameters of each partition."""
    consumed_by: str | None = None
    """The watermark role that must have passed a partition's end before it is dropped."""


def tiers(settings: Settings) -> tuple[Tier, ...]:
    """Every partitioned analytics table, with the retentions of ``settings``."""

    def seconds(value: float) -> dt.timedelta:
        return dt.timedelta(seconds=value)

    rollups = seconds(settings.rollup_retention)
    rollups_hourly = seconds(settings.rollup_hourly_retention)
    return (
        Tier(
            "device_samples",
            "seen_at",
            hours(6),
            8,
            seconds(settings.raw_retention),
            _PLAIN,
            consumed_by=DEVICE_DOWNSAMPLER,
        ),
        Tier(
            "device_samples_1h",
            "hour_start",
            DAY,
            2,
            seconds(settings.device_hourly_retention),
            _PLAIN,
        ),
        Tier("metric_rollups_1m", "bucket_start", DAY, 2, rollups, _WITH_SKETCHES),
        Tier("metric_rollups_1h", "bucket_start", MONTH, 2, rollups_hourly, _WITH_SKETCHES),
        Tier("fleet_census_1m", "bucket_start", DAY, 2, rollups, _PLAIN),
        Tier("fleet_census_1h", "bucket_start", MONTH, 2, rollups_hourly, _PLAIN),
    )
