"""Reading the fleet's event stream for ``StreamEvents``, and the leases that bound it.

Reads: the stream is ``redis_keys.events(fleet)`` (written by ``fleetd.storage.events``);
:func:`newest_id` says where "from now" starts and :func:`read_after` returns the entries
after an id, decoded, blocking briefly when there are none.

Leases: each open stream holds one in its caller's ZSET (``redis_keys.event_streams``),
scored by its expiry in milliseconds. Admission drops expired leases, then admits the
stream only while the caller holds fewer than the maximum, in one Lua script (so two
replicas cannot both admit the last slot). A running stream renews its lease; a stream
whose process died simply stops renewing, and its lease expires.

Every Redis failure here raises :class:`~fleetd.storage.errors.StoreUnavailable` with a
message fit for the caller (the stream cannot go on; the client resumes later), except
:func:`release_lease`, which is best effort.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fleetd.storage import events, redis_keys
from fleetd.storage.errors import REDIS_ERRORS, StoreUnavailable
from fleetd.storage.types import Redis

log = logging.getLogger(__name__)

# KEYS[1] the caller's streams ZSET; ARGV: member, lease ms, max streams.
# Drops expired leases, then admits the stream if the caller is under the limit.
_ACQUIRE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

Entry = tuple[str, events.Event | None]
"""A stream entry: its id, and its event (None when the entry is malformed: skip it)."""


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the event stream is unavailable: {exc}")


async def acquire_lease(
    redis: Redis, caller: str, stream_id: str, *, lease_seconds: float, max_streams: int
) -> bool:
    """Admit stream ``stream_id`` of ``caller`` unless it already holds ``max_streams``."""
    try:
        admitted = await redis.eval(
            _ACQUIRE,
            1,
            redis_keys.event_streams(caller),
            stream_id,
            int(lease_seconds * 1000),
            max_streams,
        )
    except REDIS_ERRORS as exc:
        raise _unavailable(exc) from exc
    return bool(admitted)


async def renew_lease(redis: Redis, caller: str, stream_id: str, *, lease_seconds: float) -> None:
    """Push the lease's expiry ``lease_seconds`` ahead (only if it still exists)."""
    expiry_ms = (time.time() + lease_seconds) * 1000
    try:
        await redis.zadd(redis_keys.event_streams(caller), {stream_id: expiry_ms}, xx=True)
    except REDIS_ERRORS as exc:
        raise StoreUnavailable(f"the event stream was interrupted ({exc})") from exc


async def release_lease(redis: Redis, caller: str, stream_id: str) -> None:
    """Free the stream's slot; a failure is logged only (the lease expires by itself)."""
    try:
        await redis.zrem(redis_keys.event_streams(caller), stream_id)
    except REDIS_ERRORS as exc:
        log.warning("event stream lease %s not released: %s", stream_id, exc)


async def newest_id(redis: Redis, fleet: str) -> str:
    """The id of the stream's newest entry ("0-0" when empty): where "from now" starts."""
    try:
        newest = await redis.xrevrange(redis_keys.events(fleet), count=1)
    except REDIS_ERRORS as exc:
        raise _unavailable(exc) from exc
    if not newest:
        return "0-0"
    return _text(newest[0][0])


async def read_after(
    redis: Redis, fleet: str, after: str, *, count: int, block_ms: int
) -> list[Entry]:
    """Up to ``count`` entries after id ``after``, in order; waits up to ``block_ms`` for
    one when there are none yet (then returns an empty list)."""
    try:
        reply = await redis.xread({redis_keys.events(fleet): after}, count=count, block=block_ms)
    except REDIS_ERRORS as exc:
        raise StoreUnavailable(f"the event stream was interrupted ({exc})") from exc
    return _decode(reply) if reply else []


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(reply: Any) -> list[Entry]:
    """XREAD's reply as (entry id, event or None when malformed), in order."""
    batch: list[Entry] = []
    for _, entries in reply:
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            try:
                batch.append((entry_id, events.decode(fields or {})))
            except events.InvalidEvent as exc:
                log.warning("skipping malformed event %s: %s", entry_id, exc)
                batch.append((entry_id, None))
    return batch
