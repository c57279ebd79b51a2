"""Online/offline transitions: arrivals in each Redis flush, departures by one sweeper.

The fleet's last-seen ZSET (``redis_keys.last_seen``) holds exactly the devices believed
online, scored by their last heartbeat. Both transitions happen inside Redis, atomically
with the ZSET change, so two gateway processes can never both announce the same one:

* **online**: each heartbeat flush runs ``ARRIVE`` instead of a plain ZADD. A member that
  was absent is a device coming online: a ``device.online`` event goes on the fleet's
  event stream (``redis_keys.events``). PostgreSQL's status follows from the heartbeat
  merge (``merge_heartbeats`` turns offline/unknown into online).
* **offline**: one sweeper at a time across every gateway process and node (a Redis lease,
  ``redis_keys.sweeper_lease``) takes the members scored below ``now - offline_after``,
  marks them offline in PostgreSQL first, then runs ``DEPART``, which removes each member
  still below the cutoff and emits ``device.offline``. A crash between the two steps
  repeats the round; a device that heartbeats meanwhile is not removed (PostgreSQL is
  back to online with its next merge).

A backstop round every ``backstop_interval`` catches devices that are online in
PostgreSQL but absent from Redis (a Redis that lost its data): those are marked offline
from PostgreSQL alone, with their events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from fleetd.storage import redis_keys
from fleetd.storage.redis_scripts import LuaScript, execute
from fleetd.storage.resp import pack_command

log = logging.getLogger(__name__)

EVENTS_MAXLEN = 1_000_000
"""Approximate cap of the event stream (XADD MAXLEN ~)."""

SWEEP_BATCH = 5000

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


def arrivals(fleet: str, zadd: Sequence[str | float | int]) -> bytes:
    """``ARRIVE`` packed for the batcher's ``("ZADD", key, score, member, ...)`` command."""
    return ARRIVE.pack(zadd[1], redis_keys.events(fleet), EVENTS_MAXLEN, *zadd[2:])


@dataclass
class SweepResult:
    offline: list[str]
    seconds: float


class LivenessSweeper:
    """Runs in every gateway process; sweeps only while it holds the fleet's lease."""

    def __init__(
        self,
        fleet: str,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        *,
        offline_after: float,
        interval: float = 1.0,
        backstop_interval: float = 60.0,
    ) -> None:
        self.fleet = fleet
        self._redis = redis
        self._pool = pool
        self.offline_after = offline_after
        self._interval = interval
        self._backstop_interval = backstop_interval
        self._token = secrets.token_hex(16)
        self._lease_ms = int(max(3 * interval, 2.0) * 1000)
        self._task: asyncio.Task[None] | None = None
        self._last_backstop = 0.0
        self.holding = False
        self.last_sweep: SweepResult | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="liveness-sweeper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.holding:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await _RELEASE.run_many(
                    self._redis, [(redis_keys.sweeper_lease(self.fleet), self._token)]
                )
            self.holding = False

    async def _run(self) -> None:
        while True:
            try:
                if await self.hold_lease():
                    self.last_sweep = await self.sweep()
                    if time.monotonic() - self._last_backstop >= self._backstop_interval:
                        self._last_backstop = time.monotonic()
                        await self.backstop()
            except (aioredis.RedisError, OSError, asyncpg.PostgresError) as exc:
                log.warning("liveness sweep failed, will retry: %s", exc)
            except asyncpg.InterfaceError as exc:
                log.warning("liveness sweep failed, will retry: %s", exc)
            await asyncio.sleep(self._interval)

    async def hold_lease(self) -> bool:
        """Take or renew the fleet's sweeper lease; whether this process holds it."""
        (held,) = await _HOLD.run_many(
            self._redis, [(redis_keys.sweeper_lease(self.fleet), self._token, self._lease_ms)]
        )
        self.holding = held == 1
        return self.holding

    async def sweep(self, now: float | None = None) -> SweepResult:
        """One round: every device silent for ``offline_after`` goes offline."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        cutoff = now - self.offline_after
        key = redis_keys.last_seen(self.fleet)
        offline: list[str] = []
        while True:
            raw = await self._redis.zrangebyscore(key, "-inf", cutoff, start=0, num=SWEEP_BATCH)
            if not raw:
                break
            candidates = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
            await self._pool.execute(
                """UPDATE devices SET status = 'offline', updated_at = now()
                   WHERE device_id = ANY($1::text[]) AND status = 'online'
                     AND (last_seen IS NULL OR last_seen <= to_timestamp($2))""",
                candidates,
                cutoff,
            )
            (gone,) = await DEPART.run_many(
                self._redis,
                [(key, redis_keys.events(self.fleet), cutoff, EVENTS_MAXLEN, now, *candidates)],
            )
            assert isinstance(gone, list)
            offline.extend(m.decode() if isinstance(m, bytes) else str(m) for m in gone)
            if len(raw) < SWEEP_BATCH:
                break
        return SweepResult(offline, time.perf_counter() - started)

    async def backstop(self, now: float | None = None) -> list[str]:
        """Devices online in PostgreSQL but silent there too (e.g. Redis lost its data)."""
        now = time.time() if now is None else now
        rows = await self._pool.fetch(
            """UPDATE devices SET status = 'offline', updated_at = now()
               WHERE status = 'online' AND (last_seen IS NULL OR last_seen < to_timestamp($1))
               RETURNING device_id, extract(epoch FROM last_seen)::float8 AS last_seen""",
            now - self.offline_after,
        )
        if not rows:
            return []
        stream = redis_keys.events(self.fleet)
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
                        row["device_id"],
                        "at",
                        now,
                        "last_seen",
                        row["last_seen"] or 0.0,
                    )
                )
                for row in rows
            ]
        )
        await execute(self._redis, payload, len(rows), ())
        return [row["device_id"] for row in rows]
