"""Gateway work against fleet size: the offline sweep, and a heartbeat's server-side cost.

    python -m bench.gateway_fleet_size [--devices N] [--small M]

Two fleets side by side, each a real PostgreSQL database and Redis with every device
registered, online in PostgreSQL and present in the last-seen ZSET: the large one (default
1,000,000 devices) and a small one (default 10,000). Measured, interleaved:

- **one offline sweep** (``gateway.liveness.LivenessSweeper.sweep``) in which 1 % of the
  large fleet (10,000 devices) went silent: PostgreSQL update, ZSET removal and one
  ``device.offline`` event each. Target <= 1 s. Also the no-op sweep (nobody silent).
- **a heartbeat's cost** (everything the gateway does per heartbeat after TLS and gRPC
  decoding: the batcher's ``add``, the desired-state answer from Redis, its share of the
  Redis flush and of the PostgreSQL merge) for a batch of 5,000 heartbeats, in the large
  fleet and in the small one: the ratio shows whether the cost grows with the fleet.

Before timing, it asserts that the sweep took exactly the silent devices offline (in
PostgreSQL, in the ZSET, with one event each) and that heartbeats reached both stores.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg
import redis.asyncio as aioredis

from bench.harness import Report
from fleetd.storage import redis_keys
from fleetd.storage.postgres import connect
from gateway.desired_state import DesiredStateLookup
from gateway.heartbeats import HeartbeatPipeline
from gateway.liveness import LivenessSweeper
from tests.support.storage import StorageServers, drop_database, fresh_database, storage_servers

OFFLINE_AFTER = 90.0
BATCH = 5000
ROUNDS = 5


class Fleet:
    """One fleet: its database, its Redis database, and the gateway parts under test."""

    def __init__(self, name: str, size: int, url: str, redis_url: str) -> None:
        self.name = name
        self.size = size
        self.url = url
        self.fleet = name
        self.redis = aioredis.Redis.from_url(redis_url)
        self.pool: asyncpg.Pool

    async def load(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(
                """INSERT INTO devices (device_id, fleet, device_type, version, status, last_seen)
                   SELECT $1 || '-' || lpad(i::text, 7, '0'), $2, 'raspberry-pi', '1.0',
                          'online', now()
                   FROM generate_series(0, $3 - 1) AS i""",
                self.name,
                self.fleet,
                self.size,
            )
            await conn.execute("VACUUM ANALYZE devices")
        finally:
            await conn.close()
        self.pool = await connect(self.url, run_migrations=False, min_size=2, max_size=4)
        key = redis_keys.last_seen(self.fleet)
        await self.redis.delete(key, redis_keys.events(self.fleet))
        now = time.time()
        for start in range(0, self.size, 50_000):
            members = {self.device(i): now for i in range(start, min(start + 50_000, self.size))}
            await self.redis.zadd(key, members)

    def device(self, i: int) -> str:
        return f"{self.name}-{i:07d}"

    async def silence(self, count: int) -> list[str]:
        """Make ``count`` devices (spread over the fleet) look silent for too long."""
        step = self.size // count
        silent = [self.device(i * step) for i in range(count)]
        old = time.time() - OFFLINE_AFTER - 10
        await self.redis.zadd(redis_keys.last_seen(self.fleet), dict.fromkeys(silent, old))
        await self.pool.execute(
            "UPDATE devices SET status = 'online', last_seen = to_timestamp($2) "
            "WHERE device_id = ANY($1::text[])",
            silent,
            old,
        )
        return silent

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()


async def sweep_once(fleet: Fleet, silent_count: int) -> tuple[float, int]:
    silent = await fleet.silence(silent_count) if silent_count else []
    sweeper = LivenessSweeper(fleet.fleet, fleet.redis, fleet.pool, offline_after=OFFLINE_AFTER)
    result = await sweeper.sweep()
    if sorted(result.offline) != sorted(silent):
        raise AssertionError(f"swept {len(result.offline)} devices, expected {len(silent)}")
    return result.seconds, len(result.offline)


async def heartbeat_batch(fleet: Fleet, pipeline: HeartbeatPipeline) -> float:
    """Seconds per heartbeat for BATCH heartbeats of distinct devices, flushed to both
    (the same devices every round: at steady state their desired state is cached)."""
    lookup = DesiredStateLookup(fleet.redis, fleet.pool)
    group = pipeline.group_id("raspberry-pi", "1.0")
    step = max(1, fleet.size // BATCH)
    devices = [fleet.device((i * step) % fleet.size) for i in range(BATCH)]
    start = time.perf_counter()
    answers = []
    for device in devices:
        pipeline.add(
            device, group, 1, 10.0, 20.0, 30.0, 100, 512, 1024, 1.5, 64.0, 0.5, 0.4, 0.3, 45.0,
            1000, 100,
        )  # fmt: skip
        answers.append(lookup.answer(device, 0))
    await asyncio.gather(*answers)
    flushed = await pipeline.flush_redis()
    written = await pipeline.flush_postgres()
    elapsed = time.perf_counter() - start
    if flushed != BATCH or written != BATCH:
        raise AssertionError(f"flushed {flushed} to Redis and {written} to PostgreSQL")
    return elapsed / BATCH


async def run(servers: StorageServers, devices: int, small: int) -> None:
    report = Report(
        "gateway_fleet_size",
        f"python -m bench.gateway_fleet_size --devices {devices} --small {small}",
    )
    urls = [await fresh_database(servers), await fresh_database(servers)]
    large = Fleet("large", devices, urls[0], servers.redis_url)
    little = Fleet("small", small, urls[1], servers.redis_url)
    try:
        for fleet in (large, little):
            started = time.perf_counter()
            await fleet.load()
            print(f"loaded {fleet.size} devices in {time.perf_counter() - started:.1f}s")
        silent = devices // 100
        sweeps: dict[str, list[float]] = {"large": [], "large-noop": [], "small": []}
        for _ in range(ROUNDS):
            sweeps["large"].append((await sweep_once(large, silent))[0])
            sweeps["large-noop"].append((await sweep_once(large, 0))[0])
            sweeps["small"].append((await sweep_once(little, min(silent, small // 2)))[0])
        sweep = statistics.median(sweeps["large"])
        noop = statistics.median(sweeps["large-noop"])
        report.add(
            "offline sweep, 1% of 1M silent",
            f"{sweep * 1000:.0f} ms for {silent} devices offline; {noop * 1000:.1f} ms when none",
            "<= 1 s",
            sweep <= 1.0,
            sweep_seconds=sweep,
            noop_seconds=noop,
            offline=silent,
            fleet=devices,
        )
        pipelines = {
            f.name: HeartbeatPipeline(f.fleet, f.redis, f.pool, max_pending=BATCH * 2)
            for f in (large, little)
        }
        costs: dict[str, list[float]] = {"large": [], "small": []}
        for r in range(ROUNDS + 1):
            for fleet in (large, little):
                cost = await heartbeat_batch(fleet, pipelines[fleet.name])
                if r:  # the first round warms caches (desired state, statements)
                    costs[fleet.name].append(cost)
        big = statistics.median(costs["large"])
        base = statistics.median(costs["small"])
        ratio = big / base
        report.add(
            "heartbeat cost vs fleet size",
            f"{big * 1e6:.0f} µs/heartbeat at {devices}, {base * 1e6:.0f} µs at {small}: "
            f"x{ratio:.2f}",
            "does not grow (<= x1.5)",
            ratio <= 1.5,
            large_us=big * 1e6,
            small_us=base * 1e6,
            ratio=ratio,
        )
        report.write()
    finally:
        for fleet in (large, little):
            if hasattr(fleet, "pool"):
                await fleet.close()
        for url in urls:
            await drop_database(servers, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    args = parser.parse_args()
    with storage_servers() as servers:
        asyncio.run(run(servers, args.devices, args.small))


if __name__ == "__main__":
    main()
