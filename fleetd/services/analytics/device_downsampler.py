"""The device downsampler: raw ``device_samples`` → hourly ``device_samples_1h``.

docs/analytics.md 2.5. Each round takes the closed hours (hour end + :data:`SETTLE` <= now:
the gateway's flush has landed every sample stamped in the hour) after the watermark
(``analytics_watermarks``, role ``device_downsampler``), oldest first, and recomputes each
hour's rows in chunks of device keys (short transactions, no long lock on the raw tier).
The chunk that finishes an hour advances the watermark to the hour's end in the same
transaction. A chunk recomputes whole (device, hour) rows and overwrites them, so a round
interrupted mid-hour just redoes that hour.

The first round (no watermark) starts at the hour of the oldest raw sample; with no sample
at all, it marks the hours up to the last closed one done. Partition maintenance drops a
raw partition only once this watermark has passed its end.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Final

from fleetd.domain.analytics.tiers import DEVICE_DOWNSAMPLER
from fleetd.services.analytics.clock import floor_hour, utcnow
from fleetd.storage.advisory_locks import session_lock
from fleetd.storage.analytics import device_hourly, locks, watermarks
from fleetd.storage.types import Pool

ROLE: Final = DEVICE_DOWNSAMPLER
HOUR: Final = dt.timedelta(hours=1)
SETTLE: Final = dt.timedelta(minutes=5)
"""How long after an hour ends its samples may still be arriving."""
CHUNK: Final = 100_000
"""Device keys per transaction."""
MAX_HOURS_PER_ROUND: Final = 24
"""A round after a long pause catches up a day at a time (the next round continues)."""
_KEY_MIN: Final = -(2**31)
_KEY_END: Final = 2**31


@dataclass(frozen=True, slots=True)
class DownsampleReport:
    hours: tuple[dt.datetime, ...]
    """The hours done, by their start."""
    rows: int
    """Hourly rows written."""


def last_closed_hour_end(now: dt.datetime) -> dt.datetime:
    """The end of the latest hour whose samples have all arrived at ``now``."""
    return floor_hour(now - SETTLE)


def _chunks(bounds: tuple[int, int] | None, size: int) -> list[tuple[int, int]]:
    """Half-open device-key ranges covering every integer key, ``size`` keys apart within
    the keys devices have (the first and last stretch to the ends of ``integer``, so a
    sample of a device whose row is gone is not missed)."""
    if bounds is None:
        return [(_KEY_MIN, _KEY_END)]
    low, high = bounds
    starts = list(range(low, high + 1, size))
    edges = [_KEY_MIN, *starts[1:], _KEY_END]
    return list(itertools.pairwise(edges))


async def downsample_once(
    pool: Pool,
    now: dt.datetime | None = None,
    *,
    chunk: int = CHUNK,
    max_hours: int = MAX_HOURS_PER_ROUND,
) -> DownsampleReport | None:
    """One round (see the module docstring). None when another holder has the lock."""
    upto = last_closed_hour_end(now or utcnow())
    async with session_lock(pool, locks.DEVICE_DOWNSAMPLER, wait=False) as conn:
        if conn is None:
            return None
        start = await watermarks.get(conn, ROLE)
        if start is None:
            oldest = await device_hourly.oldest_sample(conn)
            start = floor_hour(oldest) if oldest is not None else upto
            if start >= upto:
                await watermarks.advance(conn, ROLE, upto)
                return DownsampleReport((), 0)
        done: list[dt.datetime] = []
        rows = 0
        chunks = _chunks(await device_hourly.device_key_bounds(conn), chunk)
        hour = start
        while hour + HOUR <= upto and len(done) < max_hours:
            for i, (key_from, key_to) in enumerate(chunks):
                async with conn.transaction():
                    rows += await device_hourly.downsample(conn, hour, key_from, key_to)
                    if i == len(chunks) - 1:
                        await watermarks.advance(conn, ROLE, hour + HOUR)
            done.append(hour)
            hour += HOUR
    return DownsampleReport(tuple(done), rows)
