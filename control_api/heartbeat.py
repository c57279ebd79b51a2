"""``DeviceService/Heartbeat``: the seed's heartbeat, for devices that use an API key or
their certificate on the operator API instead of the gateway.

Same semantics as the gateway's: the caller's identity decides the device (a device may
only heartbeat as itself), the device goes online, its latest stats are recorded in Redis
(liveness ZSET, stats hash) and PostgreSQL. This path is rate-limited to 10 per minute per
device, so it writes through directly instead of batching
(``fleetd.storage.devices.record_heartbeat``).

Analytics: every call is a per-device sample (``device_samples``) when its memory and disk
usage are known: the rate limit already bounds it to 10 a minute, so this path applies no
``FLEETD_SAMPLE_INTERVAL`` sampling of its own (docs/analytics.md 2.3 planned a GCRA with
its TAT in the stats hash; not built). It keeps no previous counters, so its network rates
are unknown (NULL), and it feeds no group rollups: those come from the gateway.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from control_api.auth import Principal
from control_api.errors import invalid
from control_api.resources import Resources
from fleetd.domain import device_fields
from fleetd.storage.devices import get_device, record_heartbeat
from fleetd.v1 import device_pb2


def _percent(name: str, value: float) -> float:
    # The rule is device_fields'; the words are this API's, which its clients already see.
    if not device_fields.is_percent(value):
        raise invalid(f"stats.{name} must be between 0 and 100")
    return value


def _derived_percent(
    explicit: float, used: float, total: float, previous: float | None, name: str
) -> float | None:
    """The explicit percentage if sent, else ``used`` of ``total``, else the last known."""
    if explicit:
        return _percent(name, explicit)
    if used < 0:
        raise invalid(f"stats: used amount for {name} is negative")
    derived = device_fields.used_percent(used, total)
    return previous if derived is None else _percent(name, derived)


async def heartbeat(
    res: Resources, principal: Principal, request: device_pb2.HeartbeatRequest
) -> device_pb2.HeartbeatResponse:
    device_id = request.device_id or (principal.device_id or "")
    if principal.role == "device" and device_id != principal.device_id:
        raise ConnectError(Code.PERMISSION_DENIED, "a device may only heartbeat as itself")
    if not device_id:
        raise invalid("device_id is required")
    device = await get_device(res.pool, device_id)
    if device is None or device.offboarded_at is not None:
        raise ConnectError(Code.NOT_FOUND, f"device {device_id} not found")
    info: dict[str, Any] = device.system_info or {}
    stats = request.stats
    cpu = _percent("cpu_percent", stats.cpu_percent)
    memory = _derived_percent(
        stats.memory_percent,
        float(stats.memory_used_mb),
        float(stats.memory_total_mb or info.get("memory_mb") or 0),
        device.memory_usage,
        "memory_percent",
    )
    disk = _derived_percent(
        stats.disk_percent,
        stats.disk_used_gb,
        float(stats.disk_total_gb or info.get("disk_gb") or 0),
        device.disk_usage,
        "disk_percent",
    )
    uptime = request.status.uptime_seconds
    if uptime < 0:
        raise invalid("status.uptime_seconds must not be negative")
    now = dt.datetime.now(dt.UTC)
    # The other numbers' ranges were checked with the message (fleetd.domain.message_rules).
    await record_heartbeat(
        res.pool,
        res.redis,
        res.settings.fleet,
        (
            device_id,
            now,
            cpu,
            memory,
            disk,
            uptime,
            stats.memory_used_mb,
            stats.memory_total_mb,
            stats.disk_used_gb,
            stats.disk_total_gb,
            stats.load_avg_1m,
            stats.load_avg_5m,
            stats.load_avg_15m,
            stats.temperature_celsius if stats.HasField("temperature_celsius") else None,
            None,
            None,
            memory is not None and disk is not None,
        ),
        state=device_pb2.ONLINE,
    )
    return device_pb2.HeartbeatResponse(acknowledged=True)
