"""``DeviceService/Heartbeat``: the seed's heartbeat, for devices that use an API key or
their certificate on the operator API instead of the gateway.

Same semantics as the gateway's: the caller's identity decides the device (a device may
only heartbeat as itself), the device goes online, its latest stats are recorded in Redis
(liveness ZSET, stats hash) and PostgreSQL. This path is rate-limited to 10 per minute per
device, so it writes through directly instead of batching.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from control_api.auth import Principal
from control_api.resources import Resources
from fleetd.storage import redis_keys
from fleetd.storage.devices import get_device, merge_heartbeats
from fleetd.v1 import device_pb2

STATS_TTL_SECONDS = 24 * 3600


def _percent(name: str, value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise ConnectError(Code.INVALID_ARGUMENT, f"stats.{name} must be between 0 and 100")
    return value


def _derived_percent(
    explicit: float, used: float, total: float, previous: float | None, name: str
) -> float | None:
    if explicit:
        return _percent(name, explicit)
    if used < 0:
        raise ConnectError(Code.INVALID_ARGUMENT, f"stats: used amount for {name} is negative")
    if used and total > 0:
        return _percent(name, min(100.0, 100.0 * used / total))
    return previous


async def heartbeat(
    res: Resources, principal: Principal, request: device_pb2.HeartbeatRequest
) -> device_pb2.HeartbeatResponse:
    device_id = request.device_id or (principal.device_id or "")
    if principal.role == "device" and device_id != principal.device_id:
        raise ConnectError(Code.PERMISSION_DENIED, "a device may only heartbeat as itself")
    if not device_id:
        raise ConnectError(Code.INVALID_ARGUMENT, "device_id is required")
    row = await get_device(res.pool, device_id)
    if row is None or row["offboarded_at"] is not None:
        raise ConnectError(Code.NOT_FOUND, f"device {device_id} not found")
    info: dict[str, Any] = row["system_info"] or {}
    stats = request.stats
    cpu = _percent("cpu_percent", stats.cpu_percent)
    memory = _derived_percent(
        stats.memory_percent,
        float(stats.memory_used_mb),
        float(stats.memory_total_mb or info.get("memory_mb") or 0),
        row["memory_usage"],
        "memory_percent",
    )
    disk = _derived_percent(
        stats.disk_percent,
        stats.disk_used_gb,
        float(stats.disk_total_gb or info.get("disk_gb") or 0),
        row["disk_usage"],
        "disk_percent",
    )
    uptime = request.status.uptime_seconds
    if uptime < 0:
        raise ConnectError(Code.INVALID_ARGUMENT, "status.uptime_seconds must not be negative")
    now = dt.datetime.now(dt.UTC)
    pipe = res.redis.pipeline(transaction=False)
    pipe.zadd(redis_keys.last_seen(res.settings.fleet), {device_id: now.timestamp()})
    key = redis_keys.device_stats(device_id)
    pipe.hset(
        key,
        mapping={
            "seen_at": now.timestamp(),
            "state": device_pb2.ONLINE,
            "cpu": cpu,
            "mem": memory if memory is not None else "",
            "disk": disk if disk is not None else "",
            "uptime": uptime,
            "count": 1,
        },
    )
    pipe.expire(key, STATS_TTL_SECONDS)
    await pipe.execute()
    async with res.pool.acquire() as conn:
        await merge_heartbeats(
            conn,
            [(device_id, now, cpu, memory, disk, uptime)],  # type: ignore[list-item]
        )
    return device_pb2.HeartbeatResponse(acknowledged=True)
