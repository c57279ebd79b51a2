"""``device_samples`` → ``device_samples_1h``: one row per device per hour (docs/analytics.md 2.5).

Gauges keep the hour's average and, where the table has the column, its maximum; totals
and uptime keep the hour's last value. Each call recomputes whole (device, hour) rows from
the raw samples and overwrites them, so running it twice over the same hour is harmless.
"""

from __future__ import annotations

import datetime as dt

from fleetd.storage.types import Queryable

_AGGREGATES = (
    ("cpu_usage_avg", "avg(cpu_usage)"),
    ("cpu_usage_max", "max(cpu_usage)"),
    ("memory_usage_avg", "avg(memory_usage)"),
    ("memory_usage_max", "max(memory_usage)"),
    ("memory_used_mb_avg", "avg(memory_used_mb)"),
    ("memory_total_mb", "(array_agg(memory_total_mb ORDER BY seen_at DESC))[1]"),
    ("disk_usage_avg", "avg(disk_usage)"),
    ("disk_usage_max", "max(disk_usage)"),
    ("disk_used_gb", "(array_agg(disk_used_gb ORDER BY seen_at DESC))[1]"),
    ("disk_total_gb", "(array_agg(disk_total_gb ORDER BY seen_at DESC))[1]"),
    ("uptime_seconds", "(array_agg(uptime_seconds ORDER BY seen_at DESC))[1]"),
    ("load_avg_1m_avg", "avg(load_avg_1m)"),
    ("load_avg_1m_max", "max(load_avg_1m)"),
    ("load_avg_5m_avg", "avg(load_avg_5m)"),
    ("load_avg_15m_avg", "avg(load_avg_15m)"),
    # avg/max skip NULLs: a device without a sensor (or an unknown rate) stays NULL.
    ("temperature_avg", "avg(temperature)"),
    ("temperature_max", "max(temperature)"),
    ("network_rx_rate_avg", "avg(network_rx_rate)"),
    ("network_rx_rate_max", "max(network_rx_rate)"),
    ("network_tx_rate_avg", "avg(network_tx_rate)"),
    ("network_tx_rate_max", "max(network_tx_rate)"),
)

_COLUMNS = ", ".join(c for c, _ in _AGGREGATES)
_EXPRESSIONS = ", ".join(e for _, e in _AGGREGATES)
_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c, _ in _AGGREGATES)
# Built from the constants above only.
_DOWNSAMPLE = f"""
INSERT INTO device_samples_1h (hour_start, device_key, samples, {_COLUMNS})
SELECT $1::timestamptz, device_key, least(count(*), 32767), {_EXPRESSIONS}
  FROM device_samples
 WHERE seen_at >= $1::timestamptz AND seen_at < $1::timestamptz + interval '1 hour'
   AND device_key >= $2::bigint AND device_key < $3::bigint
 GROUP BY device_key
    ON CONFLICT (device_key, hour_start) DO UPDATE
   SET samples = EXCLUDED.samples, {_UPDATES}
"""  # noqa: S608


async def oldest_sample(db: Queryable) -> dt.datetime | None:
    """When the oldest raw sample was taken (None: there is none)."""
    value: dt.datetime | None = await db.fetchval("SELECT min(seen_at) FROM device_samples")
    return value


async def device_key_bounds(db: Queryable) -> tuple[int, int] | None:
    """The smallest and largest ``devices.device_key`` (None: no device ever registered):
    the range the downsampler walks in chunks."""
    row = await db.fetchrow("SELECT min(device_key) AS lo, max(device_key) AS hi FROM devices")
    if row is None or row["lo"] is None:
        return None
    return int(row["lo"]), int(row["hi"])


async def downsample(db: Queryable, hour_start: dt.datetime, key_from: int, key_to: int) -> int:
    """(Re)compute the hourly rows of devices ``key_from <= device_key < key_to`` for the
    hour starting at ``hour_start``; returns how many rows were written."""
    status: str = await db.execute(_DOWNSAMPLE, hour_start, key_from, key_to)
    return int(status.rsplit(" ", 1)[-1])
