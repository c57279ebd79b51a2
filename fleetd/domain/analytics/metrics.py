"""The metric catalogue: every name GetMetrics, ExportData, /ws/metrics and the writers know.

One home (docs/analytics.md, 2.1): a metric's name, unit, where each tier keeps it and
which aggregations make sense. The ``metric_id`` of a rolled-up metric is the ``smallint``
stored in ``metric_rollup_partials`` / ``metric_rollups_1m`` / ``metric_rollups_1h``:
never renumber one, only add.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class Kind(Enum):
    RESOURCE = "resource"
    """A per-heartbeat reading: rollups (when ``metric_id`` is set) and per-device samples."""
    CENSUS = "census"
    """A count of devices, from the per-minute census."""
    HEARTBEAT_RATE = "heartbeat_rate"
    """Heartbeats per second, from the rollups' counts."""


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    kind: Kind
    metric_id: int | None = None
    """The rollup id; None when the metric is not rolled up per group."""
    sample_column: str | None = None
    """The ``device_samples`` column."""
    hourly_avg_column: str | None = None
    """The ``device_samples_1h`` column holding the hour's average (or last value)."""
    hourly_max_column: str | None = None
    """The ``device_samples_1h`` column holding the hour's maximum, where kept."""
    census_status: str | None = None
    """For census metrics: the device status counted; None counts every status."""


AGGREGATIONS: Final = ("AVG", "MIN", "MAX", "SUM", "COUNT", "P50", "P95", "P99")
PERCENTILES: Final = {"P50": 0.50, "P95": 0.95, "P99": 0.99}

CATALOGUE: Final[tuple[Metric, ...]] = (
    Metric("cpu_usage", "percent", Kind.RESOURCE, 1, "cpu_usage", "cpu_usage_avg", "cpu_usage_max"),
    Metric(
        "memory_usage",
        "percent",
        Kind.RESOURCE,
        2,
        "memory_usage",
        "memory_usage_avg",
        "memory_usage_max",
    ),
    Metric("memory_used_mb", "mebibytes", Kind.RESOURCE, 3, "memory_used_mb", "memory_used_mb_avg"),
    Metric(
        "disk_usage", "percent", Kind.RESOURCE, 4, "disk_usage", "disk_usage_avg", "disk_usage_max"
    ),
    Metric("disk_used_gb", "gibibytes", Kind.RESOURCE, 5, "disk_used_gb", "disk_used_gb"),
    Metric(
        "load_avg_1m", "load", Kind.RESOURCE, 6, "load_avg_1m", "load_avg_1m_avg", "load_avg_1m_max"
    ),
    Metric("load_avg_5m", "load", Kind.RESOURCE, 7, "load_avg_5m", "load_avg_5m_avg"),
    Metric("load_avg_15m", "load", Kind.RESOURCE, 8, "load_avg_15m", "load_avg_15m_avg"),
    Metric(
        "temperature",
        "celsius",
        Kind.RESOURCE,
        9,
        "temperature",
        "temperature_avg",
        "temperature_max",
    ),
    Metric(
        "network_rx_bytes",
        "bytes_per_second",
        Kind.RESOURCE,
        10,
        "network_rx_rate",
        "network_rx_rate_avg",
        "network_rx_rate_max",
    ),
    Metric(
        "network_tx_bytes",
        "bytes_per_second",
        Kind.RESOURCE,
        11,
        "network_tx_rate",
        "network_tx_rate_avg",
        "network_tx_rate_max",
    ),
    # Per device only: constant or monotonic, a group distribution says little.
    Metric(
        "memory_total_mb", "mebibytes", Kind.RESOURCE, None, "memory_total_mb", "memory_total_mb"
    ),
    Metric("disk_total_gb", "gibibytes", Kind.RESOURCE, None, "disk_total_gb", "disk_total_gb"),
    Metric("uptime_seconds", "seconds", Kind.RESOURCE, None, "uptime_seconds", "uptime_seconds"),
    # Fleet level.
    Metric("device_count", "count", Kind.CENSUS),
    Metric("device_online_count", "count", Kind.CENSUS, census_status="online"),
    Metric("device_offline_count", "count", Kind.CENSUS, census_status="offline"),
    Metric("heartbeat_rate", "per_second", Kind.HEARTBEAT_RATE),
)

BY_NAME: Final = {m.name: m for m in CATALOGUE}
BY_ID: Final = {m.metric_id: m for m in CATALOGUE if m.metric_id is not None}
ROLLED_UP: Final = tuple(m for m in CATALOGUE if m.metric_id is not None)
"""The rolled-up metrics in ``metric_id`` order: the order the batcher's rollup rows use."""

HEARTBEAT_COUNT_METRIC: Final = BY_NAME["cpu_usage"]
"""Every heartbeat carries a cpu reading, so its rollup ``count`` is the heartbeat count."""


def names() -> str:
    """The known names, for an error message."""
    return ", ".join(m.name for m in CATALOGUE)
