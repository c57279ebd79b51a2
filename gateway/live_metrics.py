"""Live metrics: each second, what this gateway worker's heartbeats said, for /ws/metrics.

The heartbeat pipeline hands every drain's rollup rows to :meth:`LiveMetrics.fold`
(cheap, synchronous, on the event loop: a drain has one row per group and metric); once a
second :meth:`LiveMetrics.publish` appends what was folded to the fleet's live stream
(``fleetd.storage.live_metrics``) as one entry, per group and fleet-wide, and starts
again. Readers merge the entries of every worker exactly, so a worker only ever says what
it saw since its last entry.

Only the first eight fields of a rollup row are read, ``(bucket_start, device_type,
version, metric, count, sum, min, max)``: the row may grow (a sketch), the live view does
not need it. The bucket is ignored: the live window is the publishing second, not the
rollup minute. Metric names are the catalogue's (``fleetd.domain.analytics.metrics``);
the batcher's older names (``cpu_percent``...) are read as theirs, and anything else is
skipped.

Live metrics are best effort, like the rest of the Redis side of heartbeats: a failed
append is logged and its second dropped (PostgreSQL's rollups still have it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from fleetd.domain.analytics.metrics import BY_NAME
from fleetd.storage import live_metrics as store
from fleetd.storage.errors import StoreUnavailable
from fleetd.storage.types import Redis

log = logging.getLogger(__name__)

PUBLISH_INTERVAL: Final = 1.0
"""Seconds between two entries of one worker (docs/analytics.md, 6)."""

BATCHER_NAMES: Final = {
    "cpu_percent": "cpu_usage",
    "memory_percent": "memory_usage",
    "disk_percent": "disk_usage",
}
"""The batcher's metric names that predate the catalogue, and the catalogue's names."""


def metric_name(name: str) -> str | None:
    """The catalogue's name for a rollup row's metric; None for a metric it does not know."""
    if name in BY_NAME:
        return name
    return BATCHER_NAMES.get(name)


class LiveMetrics:
    """count/sum/min/max per (type, version, metric) since the last publish, for one fleet.

    Call :meth:`fold` with each drain's rollup rows, and either :meth:`publish` once a
    second or :meth:`start` (a task that does) and, at shutdown, :meth:`stop` (which
    publishes what is left).
    """

    def __init__(self, redis: Redis, fleet: str, *, interval: float = PUBLISH_INTERVAL) -> None:
        self.redis = redis
        self.fleet = fleet
        self.interval = interval
        self._folded: dict[store.GroupMetric, list[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        """Entries appended so far (a test's and an operator's counter)."""

    def fold(self, rows: Iterable[Sequence[Any]]) -> None:
        """Add rollup rows ``(bucket_start, type, version, metric, count, sum, min, max,
        ...)``; rows of unknown metrics and rows without heartbeats are skipped."""
        folded = self._folded
        for row in rows:
            count = row[4]
            if count <= 0:
                continue
            metric = metric_name(row[3])
            if metric is None:
                continue
            key = (row[1], row[2], metric)
            kept = folded.get(key)
            if kept is None:
                folded[key] = [count, row[5], row[6], row[7]]
            else:
                kept[0] += count
                kept[1] += row[5]
                if row[6] < kept[2]:
                    kept[2] = row[6]
                if row[7] > kept[3]:
                    kept[3] = row[7]

    def take(self) -> store.Snapshot | None:
        """What was folded since the last take, as one snapshot (None if nothing was)."""
        folded, self._folded = self._folded, {}
        groups = {}
        for key, (count, total, minimum, maximum) in folded.items():
            aggregate = store.Aggregate(int(count), total, minimum, maximum)
            if store.finite(aggregate):
                groups[key] = aggregate
        if not groups:
            return None
        return store.Snapshot(time.time(), store.fleet_wide(groups), groups)

    async def publish(self) -> bool:
        """Append what was folded since the last publish (nothing if nothing was); whether
        an entry was appended. A Redis failure is logged and the second dropped."""
        snapshot = self.take()
        if snapshot is None:
            return False
        try:
            await store.append(self.redis, self.fleet, snapshot)
        except StoreUnavailable as exc:
            log.warning("live metrics of one second dropped: %s", exc)
            return False
        self.published += 1
        return True

    def start(self) -> None:
        """Publish every ``interval`` seconds in a task, until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-metrics")

    async def stop(self) -> None:
        """Stop the task, then publish what is left."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.publish()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish()
            except Exception:  # a bug here must not end live metrics for good
                log.exception("live metrics publish failed")
