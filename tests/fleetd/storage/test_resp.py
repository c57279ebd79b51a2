"""Packed commands: byte-identical to redis-py's packing, and answered by a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from fleetd.storage.resp import execute_packed, pack_args, pack_command, pack_prefix

COMMANDS: list[tuple[str | bytes | int | float, ...]] = [
    ("PING",),
    ("HSET", "fleetd:dev:{rpi-001}:stats", "cpu", 12.5, "state", 1, "count", 3),
    ("ZADD", "k", 1763800000.123456, "rpi-ü", 0.1, b"\x00\xffbytes"),
    ("SET", "k", "", "PX", 1500),
    ("EVALSHA", "a" * 40, 1, "key", -7, 1e-300, 123456789012345678),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_packing_matches_redis_py(command: tuple[str | bytes | int | float, ...]) -> None:
    expected = b"".join(Connection().pack_command(*command))
    assert pack_command(command) == expected
    assert pack_prefix(command[:1], len(command)) + pack_args(command[1:]) == expected


def test_booleans_are_refused() -> None:
    with pytest.raises(TypeError):
        pack_command(("SET", "k", True))


async def test_a_packed_batch_is_answered_in_order_with_errors_as_values(
    redis: aioredis.Redis,
) -> None:
    payload = b"".join(
        pack_command(c)
        for c in (("SET", "a", "1"), ("INCR", "a"), ("HSET", "a", "f", "v"), ("GET", "a"))
    )
    replies = await execute_packed(redis, payload, 4)
    assert replies[:2] == [True, 2] or replies[:2] == [b"OK", 2]
    assert isinstance(replies[2], ResponseError)  # WRONGTYPE, as a value
    assert replies[3] == b"2"
    # The connection went back to the pool in a clean state.
    assert await redis.get("a") == b"2"
