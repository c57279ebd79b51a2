"""gateway.live_metrics: folding drains' rollup rows and publishing them to real Redis.

The rows are built as the batcher builds them (count/sum/min/max of one drain's heartbeats
of one group and metric); what is published is checked against the heartbeat values
themselves (mean, min, max over all of them), not against the rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fleetd.storage import live_metrics as store
from gateway.live_metrics import LiveMetrics, metric_name

BUCKET = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

Row = tuple[Any, ...]


def drain_rows(device_type: str, version: str, metric: str, values: Sequence[float]) -> Row:
    """The rollup row a batcher drain makes of ``values`` (one group, one metric)."""
    return (
        BUCKET,
        device_type,
        version,
        metric,
        len(values),
        sum(values),
        min(values),
        max(values),
    )


async def published(redis: aioredis.Redis, fleet: str) -> list[store.Snapshot]:
    _, snapshots = await store.read_after(redis, fleet, "0-0")
    return snapshots


def test_metric_names_are_the_catalogues_and_the_batchers_older_ones() -> None:
    assert metric_name("cpu_usage") == "cpu_usage"
    assert metric_name("temperature") == "temperature"
    assert metric_name("cpu_percent") == "cpu_usage"
    assert metric_name("memory_percent") == "memory_usage"
    assert metric_name("disk_percent") == "disk_usage"
    assert metric_name("fan_speed") is None


async def test_drains_of_one_second_are_published_as_one_entry(redis: aioredis.Redis) -> None:
    live = LiveMetrics(redis, "acme")
    cpu_a = [10.0, 20.0, 35.5]
    cpu_b = [5.0, 90.0]
    cpu_other = [40.0]
    mem = [50.0, 60.0]
    live.fold([drain_rows("rpi4", "1.0", "cpu_percent", cpu_a)])
    live.fold(
        [
            drain_rows("rpi4", "1.0", "cpu_percent", cpu_b),
            drain_rows("rpi4", "1.1", "cpu_usage", cpu_other),
            drain_rows("rpi4", "1.0", "memory_percent", mem),
        ]
    )
    assert await live.publish() is True
    (snapshot,) = await published(redis, "acme")

    same_group = cpu_a + cpu_b
    group = snapshot.groups[("rpi4", "1.0", "cpu_usage")]
    assert group.count == len(same_group)
    assert math.isclose(group.mean, sum(same_group) / len(same_group))
    assert (group.minimum, group.maximum) == (min(same_group), max(same_group))
    assert snapshot.groups[("rpi4", "1.1", "cpu_usage")] == store.Aggregate(1, 40.0, 40.0, 40.0)

    every_cpu = same_group + cpu_other
    fleet_cpu = snapshot.fleet["cpu_usage"]
    assert fleet_cpu.count == len(every_cpu)
    assert math.isclose(fleet_cpu.mean, sum(every_cpu) / len(every_cpu))
    assert (fleet_cpu.minimum, fleet_cpu.maximum) == (5.0, 90.0)
    assert snapshot.fleet["memory_usage"] == store.Aggregate(2, 110.0, 50.0, 60.0)

    # What was published is gone from the worker: the next second starts empty.
    assert await live.publish() is False
    assert len(await published(redis, "acme")) == 1


async def test_only_the_first_eight_fields_of_a_row_are_read(redis: aioredis.Redis) -> None:
    live = LiveMetrics(redis, "acme")
    live.fold([(*drain_rows("", "", "cpu_usage", [1.0, 3.0]), b"sketch bytes", "more")])
    await live.publish()
    (snapshot,) = await published(redis, "acme")
    assert snapshot.fleet == {"cpu_usage": store.Aggregate(2, 4.0, 1.0, 3.0)}


async def test_unknown_metrics_empty_rows_and_infinite_values_are_skipped(
    redis: aioredis.Redis,
) -> None:
    live = LiveMetrics(redis, "acme")
    live.fold(
        [
            drain_rows("", "", "fan_speed", [1.0]),
            (BUCKET, "", "", "temperature", 0, 0.0, math.inf, -math.inf),
            drain_rows("", "", "load_avg_1m", [math.inf]),
        ]
    )
    assert await live.publish() is False
    assert await published(redis, "acme") == []


async def test_workers_entries_merge_to_the_whole_fleets_numbers(redis: aioredis.Redis) -> None:
    first, second = LiveMetrics(redis, "acme"), LiveMetrics(redis, "acme")
    first.fold([drain_rows("rpi4", "1.0", "cpu_usage", [10.0, 30.0])])
    second.fold([drain_rows("rpi4", "1.0", "cpu_usage", [2.0])])
    await first.publish()
    await second.publish()
    snapshots = await published(redis, "acme")
    merged = snapshots[0].fleet["cpu_usage"].merge(snapshots[1].fleet["cpu_usage"])
    assert merged == store.Aggregate(3, 42.0, 2.0, 30.0)


async def test_the_task_publishes_every_interval_and_stop_publishes_the_rest(
    redis: aioredis.Redis,
) -> None:
    live = LiveMetrics(redis, "acme", interval=0.05)
    live.start()
    try:
        live.fold([drain_rows("", "", "cpu_usage", [1.0])])
        for _ in range(100):
            if live.published:
                break
            await asyncio.sleep(0.02)
        assert live.published == 1
        live.fold([drain_rows("", "", "cpu_usage", [2.0])])
    finally:
        await live.stop()
    assert live.published == 2
    assert [s.fleet["cpu_usage"].total for s in await published(redis, "acme")] == [1.0, 2.0]


async def test_a_redis_failure_drops_the_second_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        live = LiveMetrics(dead, "acme")
        live.fold([drain_rows("", "", "cpu_usage", [1.0])])
        assert await live.publish() is False
        assert "live metrics of one second dropped" in caplog.text
        assert live.take() is None  # dropped, not kept for a retry
    finally:
        await dead.aclose()
