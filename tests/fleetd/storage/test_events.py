"""fleetd.storage.events: the stream entry encoding and publishing to a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from fleetd.storage import events, redis_keys


def test_encode_then_decode_gives_the_event_back() -> None:
    event = events.Event(events.OFFLINE, "rpi-001", 1700000000.25, {"previous": "online"})
    fields = events.encode(event)
    assert fields == {
        "type": "device.offline",
        "device_id": "rpi-001",
        "at": "1700000000.25",
        "previous": "online",
    }
    assert events.decode({k.encode(): v.encode() for k, v in fields.items()}) == event
    assert events.decode(fields) == event


def test_event_specific_fields_may_not_shadow_the_common_ones() -> None:
    with pytest.raises(ValueError, match="reserved"):
        events.encode(events.Event(events.UPDATED, "rpi-001", 1.0, {"at": "2"}))
    with pytest.raises(ValueError, match="type and a device_id"):
        events.encode(events.Event("", "rpi-001"))


@pytest.mark.parametrize(
    "entry",
    [
        {"device_id": "rpi-001", "at": "1"},
        {"type": "device.online", "at": "1"},
        {"type": "device.online", "device_id": "rpi-001"},
        {"type": "device.online", "device_id": "rpi-001", "at": "soon"},
        {"type": "device.online", "device_id": "rpi-001", "at": "nan"},
        {"type": "device.online", "device_id": "rpi-001", "at": "inf"},
    ],
)
def test_malformed_entries_are_invalid_events(entry: dict[str, str]) -> None:
    with pytest.raises(events.InvalidEvent):
        events.decode(entry)


def test_non_utf8_fields_are_invalid_events() -> None:
    with pytest.raises(events.InvalidEvent):
        events.decode({b"type": b"\xff", b"device_id": b"x", b"at": b"1"})


async def test_publish_appends_in_order_to_the_fleets_stream(redis: aioredis.Redis) -> None:
    batch = [
        events.Event(events.REGISTERED, "rpi-001", 10.0),
        events.Event(events.ONLINE, "rpi-001", 11.5, {"last_seen": "11.5"}),
        events.Event(events.DELETED, "rpi-001", 12.0),
    ]
    await events.publish(redis, "default", batch)
    await events.publish(redis, "default", [])
    entries = await redis.xrange(redis_keys.events("default"))
    assert entries is not None
    assert [events.decode(fields or {}) for _, fields in entries] == batch
    assert await redis.exists(redis_keys.events("other")) == 0


async def test_publish_to_an_unreachable_redis_raises() -> None:
    client = aioredis.Redis(unix_socket_path="/nonexistent/redis.sock")
    with pytest.raises((aioredis.RedisError, OSError)):
        await events.publish(client, "default", [events.Event(events.UPDATED, "rpi-001")])
    await client.aclose()
