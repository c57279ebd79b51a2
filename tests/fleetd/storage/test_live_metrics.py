"""fleetd.storage.live_metrics: the live stream's entries, trimming and reads, on real Redis."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fleetd.storage import live_metrics as store
from fleetd.storage import redis_keys
from fleetd.storage.errors import StoreUnavailable

A = store.Aggregate


def _snapshot(groups: dict[store.GroupMetric, store.Aggregate]) -> store.Snapshot:
    return store.Snapshot(1700000000.5, store.fleet_wide(groups), groups)


def _text(value: object) -> str:
    assert isinstance(value, bytes)
    return value.decode()


def test_fleet_wide_merges_every_group_of_a_metric() -> None:
    groups = {
        ("rpi4", "1.0", "cpu_usage"): A(2, 30.0, 10.0, 20.0),
        ("rpi4", "1.1", "cpu_usage"): A(1, 50.0, 50.0, 50.0),
        ("rpi4", "1.0", "memory_usage"): A(2, 80.0, 30.0, 50.0),
    }
    assert store.fleet_wide(groups) == {
        "cpu_usage": A(3, 80.0, 10.0, 50.0),
        "memory_usage": A(2, 80.0, 30.0, 50.0),
    }


def test_encode_then_decode_gives_the_snapshot_back() -> None:
    snapshot = _snapshot({("", "", "cpu_usage"): A(3, 1.5, -0.25, 1.0)})
    fields = store.encode(snapshot)
    assert store.decode({k.encode(): v.encode() for k, v in fields.items()}) == snapshot


@pytest.mark.parametrize(
    "fields",
    [
        {"v": "2", "at": "1", "fleet": "{}", "groups": "[]"},
        {"v": "1", "at": "1", "fleet": "{}"},
        {"v": "1", "at": "1", "fleet": '{"cpu_usage": [0, 0, 0, 0]}', "groups": "[]"},
        {"v": "1", "at": "1", "fleet": '{"cpu_usage": [1.5, 0, 0, 0]}', "groups": "[]"},
        {"v": "1", "at": "1", "fleet": "{}", "groups": '[["t", "v", "cpu_usage", 1, 2]]'},
    ],
)
def test_malformed_entries_are_refused(fields: dict[bytes | str, bytes | str]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        store.decode(fields)


def test_an_infinite_aggregate_is_not_stored() -> None:
    assert store.finite(A(1, 2.0, 2.0, 2.0))
    assert not store.finite(A(1, float("inf"), 2.0, 2.0))
    assert not store.finite(A(0, 0.0, 0.0, 0.0))


async def test_entries_are_read_back_after_an_id_in_order(redis: aioredis.Redis) -> None:
    start = await store.start_id(redis, 0)
    first = _snapshot({("rpi4", "1.0", "cpu_usage"): A(1, 10.0, 10.0, 10.0)})
    second = _snapshot({("rpi4", "1.0", "cpu_usage"): A(2, 30.0, 12.0, 18.0)})
    first_id = await store.append(redis, "acme", first)
    second_id = await store.append(redis, "acme", second)
    assert await store.read_after(redis, "acme", start) == (second_id, [first, second])
    assert await store.read_after(redis, "acme", first_id) == (second_id, [second])
    assert await store.read_after(redis, "acme", second_id) == (second_id, [])
    # Another fleet's stream is another key.
    assert await store.read_after(redis, "other", start) == (start, [])


async def test_a_read_pages_past_read_count_entries(redis: aioredis.Redis) -> None:
    start = await store.start_id(redis, 0)
    snapshot = _snapshot({("", "", "cpu_usage"): A(1, 1.0, 1.0, 1.0)})
    written = store.READ_COUNT + 7
    async with redis.pipeline(transaction=False) as pipe:
        for _ in range(written):
            pipe.xadd(store.stream_key("acme"), store.encode(snapshot))  # type: ignore[arg-type]
        await pipe.execute()
    last, snapshots = await store.read_after(redis, "acme", start)
    assert len(snapshots) == written
    newest = await redis.xrevrange(store.stream_key("acme"), count=1)
    assert newest is not None
    assert last == _text(newest[0][0])


async def test_a_malformed_entry_is_skipped_but_read_past(redis: aioredis.Redis) -> None:
    start = await store.start_id(redis, 0)
    bad_id = _text(await redis.xadd(store.stream_key("acme"), {"v": "1", "at": "x"}))
    assert await store.read_after(redis, "acme", start) == (bad_id, [])


async def test_old_entries_are_trimmed_and_the_key_expires(redis: aioredis.Redis) -> None:
    key = store.stream_key("acme")
    old_ms = int(time.time() * 1000) - store.RETENTION_MS - 60_000
    snapshot = _snapshot({("", "", "cpu_usage"): A(1, 1.0, 1.0, 1.0)})
    # Enough old entries for Redis to drop whole nodes (MINID ~ trims by node).
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(500):
            pipe.xadd(key, store.encode(snapshot), id=f"{old_ms}-{i}")  # type: ignore[arg-type]
        await pipe.execute()
    await store.append(redis, "acme", snapshot)
    assert await redis.xlen(key) < 200
    ttl = await redis.ttl(key)
    assert 0 < ttl <= store.KEY_TTL_SECONDS


async def test_start_id_is_back_ms_before_redis_now(redis: aioredis.Redis) -> None:
    seconds, micros = await redis.time()
    start = await store.start_id(redis, 5_000)
    ms, seq = start.split("-")
    assert seq == str(2**64 - 1)  # the last id of the millisecond before
    assert abs(int(ms) + 1 - (seconds * 1000 + micros // 1000 - 5_000)) < 1_000


async def test_online_count_counts_devices_heard_from_after_the_cutoff(
    redis: aioredis.Redis,
) -> None:
    await redis.zadd(redis_keys.last_seen("acme"), {"a": 100.0, "b": 200.0, "c": 300.0})
    await redis.zadd(redis_keys.last_seen("other"), {"d": 300.0})
    assert await store.online_count(redis, "acme", 99.0) == 3
    assert await store.online_count(redis, "acme", 200.0) == 1  # at the cutoff is offline
    assert await store.online_count(redis, "acme", 300.0) == 0


async def test_an_unreachable_redis_is_store_unavailable() -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(StoreUnavailable, match="live metrics"):
            await store.read_after(dead, "acme", "0-0")
        with pytest.raises(StoreUnavailable):
            await store.append(dead, "acme", _snapshot({("", "", "x"): A(1, 1.0, 1.0, 1.0)}))
        with pytest.raises(StoreUnavailable):
            await store.online_count(dead, "acme", 0.0)
    finally:
        await dead.aclose()
