"""The stores' side of online/offline: the last-seen ZSET, its events, the sweeper's lease.

``gateway.liveness`` decides when a device is online or offline; this module holds every
Redis script and SQL statement those decisions run. The invariants live in the scripts:

* ``ARRIVE`` (run by each heartbeat flush instead of a plain ZADD) emits ``device.online``
  for a member that was absent, atomically with adding it, so two gateway processes can
  never both announce the same arrival;
* ``DEPART`` removes only members still scored at or below the cutoff (a device that
  heartbeated since the sweeper read the ZSET stays), emitting ``device.offline`` for each;
* the lease is taken or renewed by its holder only, and released by its holder only.

PostgreSQL's status moves to offline only for devices whose ``last_seen`` is not newer
than the cutoff, so a sweep racing a heartbeat merge never undoes the merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetd.storage import redis_keys
from fleetd.storage.errors import POSTGRES_ERRORS, REDIS_ERRORS
from fleetd.storage.redis_scripts import LuaScript, execute
from fleetd.storage.resp import pack_command
from fleetd.storage.types import Queryable, Redis

EVENTS_MAXLEN = 1_000_000
"""Approximate cap of the event stream (XADD MAXLEN ~)."""

SWEEP_ERRORS: tuple[type[BaseException], ...] = (*POSTGRES_ERRORS, *REDIS_ERRORS)
"""Every store failure a sweep round can meet: Redis or PostgreSQL unreachable, or a
statement refused. The sweeper logs it and tries again next round (a round is idempotent)."""

# KEYS[1] last_seen ZSET, KEYS[2] event stream; ARGV[1] maxlen, then score/member pairs
# (the batcher's ZADD arguments). Returns the number of devices that came online.
ARRIVE = LuaScript(
    """
local online = 0
for i = 2, #ARGV, 2 do
  local member = ARGV[i + 1]
  if not redis.call('ZSCORE', KEYS[1], member) then
    online = online + 1
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*',
               'type', 'device.online', 'device_id', member, 'at', ARGV[i])
  end
  redis.call('ZADD', KEYS[1], ARGV[i], member)
end
return online
""",
    keys=2,
)

# KEYS[1] last_seen ZSET, KEYS[2] event stream; ARGV[1] cutoff, ARGV[2] maxlen, ARGV[3]
# now, then members. Removes those still at or below the cutoff; returns them.
DEPART = LuaScript(
    """
local gone = {}
local cutoff = tonumber(ARGV[1])
for i = 4, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= cutoff then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
               'type', 'device.offline', 'device_id', ARGV[i], 'at', ARGV[3],
               'last_seen', score)
    gone[#gone + 1] = ARGV[i]
  end
end
return gone
""",
    keys=2,
)

# KEYS[1] the lease; ARGV[1] holder token, ARGV[2] ttl ms. 1 if held (taken or renewed).
_HOLD = LuaScript(
    """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
""",
)

_RELEASE = LuaScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)


@dataclass(frozen=True, slots=True)
class OfflineDevice:
    """A device just marked offline, with its last heartbeat (Unix seconds; 0.0 if never)."""

    device_id: str
    last_seen: float


def arrivals(fleet: str, zadd: Sequence[str | float | int]) -> bytes:
    """``ARRIVE`` packed for the batcher's ``("ZADD", key, score, member, ...)`` command."""
    return ARRIVE.pack(zadd[1], redis_keys.events(fleet), EVENTS_MAXLEN, *zadd[2:])


async def hold_lease(redis: Redis, fleet: str, token: str, lease_ms: int) -> bool:
    """Take the fleet's sweeper lease for ``token``, or renew it if ``token`` holds it;
    whether ``token`` holds it now."""
    (held,) = await _HOLD.run_many(redis, [(redis_keys.sweeper_lease(fleet), token, lease_ms)])
    return held == 1


async def release_lease(redis: Redis, fleet: str, token: str) -> None:
    """Give up the lease if ``token`` holds it (another holder's lease is left alone)."""
    await _RELEASE.run_many(redis, [(redis_keys.sweeper_lease(fleet), token)])


async def silent_devices(redis: Redis, fleet: str, cutoff: float, limit: int) -> list[str]:
    """Up to ``limit`` devices of the last-seen ZSET scored at or below ``cutoff``."""
    raw = await redis.zrangebyscore(redis_keys.last_seen(fleet), "-inf", cutoff, start=0, num=limit)
    return [m.decode() if isinstance(m, bytes) else str(m) for m in raw]


async def mark_offline(db: Queryable, device_ids: Sequence[str], cutoff: float) -> None:
    """Mark offline those of ``device_ids`` online in PostgreSQL and silent since ``cutoff``
    (Unix seconds): a device whose newer heartbeat was merged meanwhile stays online."""
    await db.execute(
        """UPDATE devices SET status = 'offline', updated_at = now()
           WHERE device_id = ANY($1::text[]) AND status = 'online'
             AND (last_seen IS NULL OR last_seen <= to_timestamp($2))""",
        list(device_ids),
        cutoff,
    )


async def depart(
    redis: Redis, fleet: str, device_ids: Sequence[str], cutoff: float, now: float
) -> list[str]:
    """Remove from the last-seen ZSET those of ``device_ids`` still scored at or below
    ``cutoff``, each with a ``device.offline`` event at ``now``; the removed ones."""
    (gone,) = await DEPART.run_many(
        redis,
        [
            (
                redis_keys.last_seen(fleet),
                redis_keys.events(fleet),
                cutoff,
                EVENTS_MAXLEN,
                now,
                *device_ids,
            )
        ],
    )
    assert isinstance(gone, list)
    return [m.decode() if isinstance(m, bytes) else str(m) for m in gone]


async def mark_silent_offline(db: Queryable, cutoff: float) -> list[OfflineDevice]:
    """Mark offline every device online in PostgreSQL whose last heartbeat there is older
    than ``cutoff`` (Unix seconds), whatever Redis says; the devices marked."""
    rows = await db.fetch(
        """UPDATE devices SET status = 'offline', updated_at = now()
           WHERE status = 'online' AND (last_seen IS NULL OR last_seen < to_timestamp($1))
           RETURNING device_id, extract(epoch FROM last_seen)::float8 AS last_seen""",
        cutoff,
    )
    return [OfflineDevice(row["device_id"], row["last_seen"] or 0.0) for row in rows]


async def announce_offline(
    redis: Redis, fleet: str, devices: Sequence[OfflineDevice], now: float
) -> None:
    """One ``device.offline`` event per device on the fleet's stream, in one batch."""
    if not devices:
        return
    stream = redis_keys.events(fleet)
    payload = b"".join(
        [
            pack_command(
                (
                    "XADD",
                    stream,
                    "MAXLEN",
                    "~",
                    EVENTS_MAXLEN,
                    "*",
                    "type",
                    "device.offline",
                    "device_id",
                    device.device_id,
                    "at",
                    now,
                    "last_seen",
                    device.last_seen,
                )
            )
            for device in devices
        ]
    )
    await execute(redis, payload, len(devices), ())
