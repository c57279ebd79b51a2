"""Published JWT keys: publishing is idempotent, retiring happens once, and only active
keys are listed."""

from __future__ import annotations

import asyncpg

from fleetd.storage import jwt_keys


async def test_publish_retire_and_list(pool: asyncpg.Pool) -> None:
    await jwt_keys.publish(pool, "k-1", "EdDSA", "PEM ONE")
    await jwt_keys.publish(pool, "k-1", "EdDSA", "PEM CHANGED")  # kept as first published
    await jwt_keys.publish(pool, "k-2", "EdDSA", "PEM TWO")
    assert sorted(await jwt_keys.active(pool), key=lambda k: k.kid) == [
        jwt_keys.PublishedKey("k-1", "PEM ONE"),
        jwt_keys.PublishedKey("k-2", "PEM TWO"),
    ]
    assert await jwt_keys.retire(pool, "k-1")
    assert not await jwt_keys.retire(pool, "k-1")
    assert not await jwt_keys.retire(pool, "unknown")
    assert await jwt_keys.active(pool) == [jwt_keys.PublishedKey("k-2", "PEM TWO")]
