"""The device downsampler against a real PostgreSQL: hourly rows equal an independent
computation over the raw samples, closed hours only, chunked by device key, and a watermark
that makes a second run do nothing."""

from __future__ import annotations

import datetime as dt
import random
import struct
from pathlib import Path

import asyncpg
import pytest

from fleetd.services.analytics.device_downsampler import downsample_once
from fleetd.services.analytics.partition_maintenance import ensure_partitions
from fleetd.settings import Settings
from fleetd.storage.analytics import watermarks

UTC = dt.UTC
T0 = dt.datetime(2031, 3, 10, 13, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)

COLUMNS = (
    "cpu_usage",
    "memory_usage",
    "memory_used_mb",
    "memory_total_mb",
    "disk_usage",
    "disk_used_gb",
    "disk_total_gb",
    "uptime_seconds",
    "load_avg_1m",
    "load_avg_5m",
    "load_avg_15m",
    "temperature",
    "network_rx_rate",
    "network_tx_rate",
)
Sample = dict[str, float | int | None]


@pytest.fixture(autouse=True)
async def _partitions(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await ensure_partitions(pool, Settings(data_dir=tmp_path), now=T0)


def _real(x: float) -> float:
    """``x`` as PostgreSQL's ``real`` keeps it."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def _sample(rng: random.Random, uptime: int) -> Sample:
    return {
        "cpu_usage": rng.randrange(0, 400) / 4,
        "memory_usage": rng.randrange(0, 400) / 4,
        "memory_used_mb": rng.randrange(100, 4000),
        "memory_total_mb": rng.choice([4096, 8192]),
        "disk_usage": rng.randrange(0, 400) / 4,
        "disk_used_gb": rng.randrange(0, 4000) / 8,
        "disk_total_gb": rng.choice([512.0, 1024.0]),
        "uptime_seconds": uptime,
        "load_avg_1m": rng.randrange(0, 800) / 100,
        "load_avg_5m": rng.randrange(0, 800) / 100,
        "load_avg_15m": rng.randrange(0, 800) / 100,
        "temperature": rng.choice([None, rng.randrange(-80, 400) / 4]),
        "network_rx_rate": rng.choice([None, float(rng.randrange(0, 10**6))]),
        "network_tx_rate": float(rng.randrange(0, 10**6)),
    }


async def _insert(pool: asyncpg.Pool, key: int, seen_at: dt.datetime, sample: Sample) -> None:
    await pool.execute(
        f"""INSERT INTO device_samples (seen_at, device_key, {", ".join(COLUMNS)})
            VALUES ($1, $2, {", ".join(f"${i + 3}" for i in range(len(COLUMNS)))})""",
        seen_at,
        key,
        *(sample[c] for c in COLUMNS),
    )


def _hourly(samples: list[tuple[dt.datetime, Sample]]) -> dict[str, float | int | None]:
    """The hourly row, computed here from the samples (as ``real`` stores them)."""
    ordered = [s for _, s in sorted(samples, key=lambda item: item[0])]

    def values(column: str) -> list[float]:
        return [_real(float(v)) for s in ordered if (v := s[column]) is not None]

    def avg(column: str) -> float | None:
        got = values(column)
        return _real(sum(got) / len(got)) if got else None

    def peak(column: str) -> float | None:
        got = values(column)
        return max(got) if got else None

    last = ordered[-1]
    return {
        "samples": len(ordered),
        "cpu_usage_avg": avg("cpu_usage"),
        "cpu_usage_max": peak("cpu_usage"),
        "memory_usage_avg": avg("memory_usage"),
        "memory_usage_max": peak("memory_usage"),
        "memory_used_mb_avg": avg("memory_used_mb"),
        "memory_total_mb": last["memory_total_mb"],
        "disk_usage_avg": avg("disk_usage"),
        "disk_usage_max": peak("disk_usage"),
        "disk_used_gb": last["disk_used_gb"],
        "disk_total_gb": last["disk_total_gb"],
        "uptime_seconds": last["uptime_seconds"],
        "load_avg_1m_avg": avg("load_avg_1m"),
        "load_avg_1m_max": peak("load_avg_1m"),
        "load_avg_5m_avg": avg("load_avg_5m"),
        "load_avg_15m_avg": avg("load_avg_15m"),
        "temperature_avg": avg("temperature"),
        "temperature_max": peak("temperature"),
        "network_rx_rate_avg": avg("network_rx_rate"),
        "network_rx_rate_max": peak("network_rx_rate"),
        "network_tx_rate_avg": avg("network_tx_rate"),
        "network_tx_rate_max": peak("network_tx_rate"),
    }


async def _rows(pool: asyncpg.Pool) -> dict[tuple[int, dt.datetime], dict[str, object]]:
    records = await pool.fetch("SELECT * FROM device_samples_1h")
    return {
        (r["device_key"], r["hour_start"]): {
            k: v for k, v in dict(r).items() if k not in ("device_key", "hour_start")
        }
        for r in records
    }


async def _register(pool: asyncpg.Pool, count: int) -> list[int]:
    keys = await pool.fetch(
        """INSERT INTO devices (device_id, fleet)
           SELECT 'dev-' || i, 'default' FROM generate_series(1, $1) AS i
           RETURNING device_key""",
        count,
    )
    return sorted(r["device_key"] for r in keys)


async def test_hourly_rows_equal_an_independent_computation(pool: asyncpg.Pool) -> None:
    rng = random.Random(15)
    keys = await _register(pool, 7)
    raw: dict[tuple[int, dt.datetime], list[tuple[dt.datetime, Sample]]] = {}
    for key in keys:
        for hour in (T0, T0 + HOUR):
            for second in rng.sample(range(3600), rng.randrange(1, 13)):
                seen_at = hour + dt.timedelta(seconds=second)
                sample = _sample(rng, rng.randrange(10**6))
                await _insert(pool, key, seen_at, sample)
                raw.setdefault((key, hour), []).append((seen_at, sample))

    # 15:05 closes 14:00-15:00 too; chunks of 3 keys cover the 7 devices in 3 transactions.
    report = await downsample_once(pool, now=T0 + 2 * HOUR + dt.timedelta(minutes=5), chunk=3)

    assert report is not None and report.hours == (T0, T0 + HOUR)
    rows = await _rows(pool)
    assert rows.keys() == raw.keys()
    for cell, samples in raw.items():
        expected = _hourly(samples)
        got = rows[cell]
        assert got.keys() == expected.keys()
        for column, value in expected.items():
            if value is None:
                assert got[column] is None, (cell, column)
            else:
                assert got[column] == pytest.approx(value, rel=1e-6), (cell, column)
    assert await watermarks.get(pool, "device_downsampler") == T0 + 2 * HOUR


async def test_an_hour_is_done_only_once_it_has_settled(pool: asyncpg.Pool) -> None:
    (key,) = await _register(pool, 1)
    rng = random.Random(2)
    await _insert(pool, key, T0 + dt.timedelta(minutes=30), _sample(rng, 10))

    # 14:04: the hour 13-14 ended 4 minutes ago, samples may still be arriving.
    report = await downsample_once(pool, now=T0 + HOUR + dt.timedelta(minutes=4))
    assert report is not None and report.hours == ()
    assert await _rows(pool) == {}

    report = await downsample_once(pool, now=T0 + HOUR + dt.timedelta(minutes=5))
    assert report is not None and report.hours == (T0,)
    assert len(await _rows(pool)) == 1


async def test_a_second_run_does_nothing_new_and_later_runs_continue(pool: asyncpg.Pool) -> None:
    (key,) = await _register(pool, 1)
    rng = random.Random(3)
    first = _sample(rng, 100)
    await _insert(pool, key, T0 + dt.timedelta(minutes=10), first)
    now = T0 + HOUR + dt.timedelta(minutes=6)
    await downsample_once(pool, now=now)

    # A sample slipping into the done hour after the fact is not picked up again.
    await _insert(pool, key, T0 + dt.timedelta(minutes=20), _sample(rng, 200))
    again = await downsample_once(pool, now=now)
    assert again is not None and again.hours == () and again.rows == 0
    assert (await _rows(pool))[(key, T0)]["samples"] == 1

    second = _sample(rng, 300)
    await _insert(pool, key, T0 + HOUR + dt.timedelta(minutes=1), second)
    later = await downsample_once(pool, now=now + HOUR)
    assert later is not None and later.hours == (T0 + HOUR,)
    assert (await _rows(pool))[(key, T0 + HOUR)]["uptime_seconds"] == 300


async def test_the_first_run_starts_at_the_oldest_sample(pool: asyncpg.Pool) -> None:
    (key,) = await _register(pool, 1)
    rng = random.Random(4)
    await _insert(pool, key, T0 + dt.timedelta(hours=3, minutes=1), _sample(rng, 1))

    report = await downsample_once(pool, now=T0 + dt.timedelta(hours=5, minutes=30))

    assert report is not None and report.hours == (T0 + 3 * HOUR, T0 + 4 * HOUR)
    assert await watermarks.get(pool, "device_downsampler") == T0 + 5 * HOUR


async def test_with_no_samples_the_first_run_marks_the_closed_hours_done(
    pool: asyncpg.Pool,
) -> None:
    report = await downsample_once(pool, now=T0 + dt.timedelta(minutes=30))

    assert report is not None and report.hours == ()
    assert await watermarks.get(pool, "device_downsampler") == T0


async def test_a_round_catches_up_at_most_max_hours(pool: asyncpg.Pool) -> None:
    (key,) = await _register(pool, 1)
    await _insert(pool, key, T0, _sample(random.Random(5), 1))
    now = T0 + dt.timedelta(hours=4, minutes=10)

    first = await downsample_once(pool, now=now, max_hours=3)
    second = await downsample_once(pool, now=now, max_hours=3)

    assert first is not None and first.hours == (T0, T0 + HOUR, T0 + 2 * HOUR)
    assert second is not None and second.hours == (T0 + 3 * HOUR,)
