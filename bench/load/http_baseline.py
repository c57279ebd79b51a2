"""The comparison a typical Python team would build: FastAPI + uvicorn, JSON over TLS,
each heartbeat written to Redis.

    uvicorn bench.load.http_baseline:app --loop uvloop --http httptools \\
        --ssl-certfile ... --ssl-keyfile ... --ssl-ca-certs ... --ssl-cert-reqs 2

(``bench.load.stack`` starts it so, one worker process like one gateway process.) uvicorn
verifies the client certificate against the fleet CA; the device names itself in the body,
as such services usually do. Each heartbeat is validated by pydantic and written to Redis
in one pipeline per request: HSET of its latest stats and ZADD to a last-seen set — the
same two writes the gateway batches per flush. Redis is ``FLEETD_REDIS_URL``.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from pydantic import BaseModel, Field


class Stats(BaseModel):
    cpu_percent: float = Field(ge=0, le=100)
    memory_percent: float = Field(ge=0, le=100)
    disk_percent: float = Field(ge=0, le=100)
    uptime_seconds: int = Field(ge=0)


class HeartbeatIn(BaseModel):
    device_id: str = Field(min_length=1, max_length=128)
    desired_state_revision: int = 0
    agent_version: str = ""
    stats: Stats


class HeartbeatOut(BaseModel):
    unchanged: bool
    next_heartbeat_interval_ms: int
    server_time: float


_redis: list[aioredis.Redis] = []


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # A bounded, blocking pool: redis-py's default pool refuses past its size under load.
    pool = aioredis.BlockingConnectionPool.from_url(
        os.environ["FLEETD_REDIS_URL"], max_connections=64
    )
    _redis.append(aioredis.Redis(connection_pool=pool))
    yield
    await _redis.pop().aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/heartbeat")
async def heartbeat(hb: HeartbeatIn) -> HeartbeatOut:
    now = time.time()
    async with _redis[0].pipeline(transaction=False) as pipe:
        pipe.hset(
            f"baseline:device:{hb.device_id}",
            mapping={
                "cpu": hb.stats.cpu_percent,
                "mem": hb.stats.memory_percent,
                "disk": hb.stats.disk_percent,
                "uptime": hb.stats.uptime_seconds,
                "seen": now,
            },
        )
        pipe.zadd("baseline:last_seen", {hb.device_id: now})
        await pipe.execute()
    return HeartbeatOut(
        unchanged=hb.desired_state_revision == 0,
        next_heartbeat_interval_ms=30_000,
        server_time=now,
    )
