"""Lookups made in one loop iteration share one fetch."""

from __future__ import annotations

import asyncio

import pytest

from gateway.batching import BatchedLookup


async def test_concurrent_lookups_share_one_fetch() -> None:
    fetched: list[list[str]] = []

    async def fetch_many(keys: list[str]) -> dict[str, int]:
        fetched.append(sorted(keys))
        return {k: len(k) for k in keys if k != "missing"}

    lookup: BatchedLookup[str, int] = BatchedLookup(fetch_many, max_batch=3)
    results = await asyncio.gather(
        *(lookup.get(k) for k in ["a", "bb", "a", "ccc", "missing", "dddd"])
    )
    assert results == [1, 2, 1, 3, None, 4]
    assert sorted(map(len, fetched)) == [2, 3]  # five distinct keys, batches of at most 3
    assert await lookup.get("a") == 1
    assert len(fetched) == 3  # a later iteration fetches again (no caching here)


async def test_a_failed_fetch_fails_every_waiter_of_its_batch() -> None:
    async def fetch_many(keys: list[str]) -> dict[str, int]:
        raise ConnectionError("database away")

    lookup: BatchedLookup[str, int] = BatchedLookup(fetch_many)
    results = await asyncio.gather(lookup.get("a"), lookup.get("b"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_one_caller_cancelled_does_not_cancel_the_others() -> None:
    release = asyncio.Event()

    async def fetch_many(keys: list[str]) -> dict[str, int]:
        await release.wait()
        return dict.fromkeys(keys, 7)

    lookup: BatchedLookup[str, int] = BatchedLookup(fetch_many)
    first = asyncio.create_task(lookup.get("a"))
    second = asyncio.create_task(lookup.get("a"))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == 7
    with pytest.raises(asyncio.CancelledError):
        await first
