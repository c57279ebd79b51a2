"""Device health: a pure function of what fleetd knows about a device, no IO.

Checks and thresholds (a check's status is the worst threshold it crosses):

| check | DEGRADED | UNHEALTHY |
|---|---|---|
| heartbeat | — | — (no heartbeat within ``offline_after``: UNREACHABLE) |
| cpu | > 90 % | — (sustained CPU is a symptom, not a failure) |
| memory | > 90 % | > 97 % |
| disk | > 85 % | > 95 % |
| certificate | expires within 14 days | expired, or none valid |

The device's status is the worst of its checks, UNREACHABLE above all: without a recent
heartbeat the other checks describe the past.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fleetd.v1 import device_pb2

_RANK = {
    device_pb2.HEALTHY: 0,
    device_pb2.DEGRADED: 1,
    device_pb2.UNHEALTHY: 2,
    device_pb2.UNREACHABLE: 3,
}
CERT_WARNING = dt.timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the checks look at."""

    device_id: str
    last_seen: dt.datetime | None
    cpu_usage: float | None
    memory_usage: float | None
    disk_usage: float | None
    certificate_not_after: dt.datetime | None


def _threshold_check(
    name: str, value: float | None, degraded: float, unhealthy: float | None
) -> device_pb2.HealthCheck:
    if value is None:
        return device_pb2.HealthCheck(
            name=name, status=device_pb2.HEALTH_STATUS_UNSPECIFIED, message=f"no {name} reading yet"
        )
    if unhealthy is not None and value > unhealthy:
        status, threshold = device_pb2.UNHEALTHY, unhealthy
    elif value > degraded:
        status, threshold = device_pb2.DEGRADED, degraded
    else:
        status, threshold = device_pb2.HEALTHY, degraded
    return device_pb2.HealthCheck(
        name=name,
        status=status,
        message=f"{name} {value:.1f}% used",
        value=value,
        threshold=threshold,
    )


def evaluate(
    observed: Observed, *, now: dt.datetime, offline_after: float
) -> device_pb2.DeviceHealth:
    checks: list[device_pb2.HealthCheck] = []
    if observed.last_seen is None:
        checks.append(
            device_pb2.HealthCheck(
                name="heartbeat", status=device_pb2.UNREACHABLE, message="never heartbeated"
            )
        )
    else:
        age = (now - observed.last_seen).total_seconds()
        reachable = age <= offline_after
        checks.append(
            device_pb2.HealthCheck(
                name="heartbeat",
                status=device_pb2.HEALTHY if reachable else device_pb2.UNREACHABLE,
                message=f"last heartbeat {age:.0f}s ago",
                value=age,
                threshold=offline_after,
            )
        )
    checks.append(_threshold_check("cpu", observed.cpu_usage, 90.0, None))
    checks.append(_threshold_check("memory", observed.memory_usage, 90.0, 97.0))
    checks.append(_threshold_check("disk", observed.disk_usage, 85.0, 95.0))
    not_after = observed.certificate_not_after
    if not_after is None:
        cert = device_pb2.HealthCheck(
            name="certificate", status=device_pb2.UNHEALTHY, message="no valid certificate"
        )
    elif not_after <= now:
        cert = device_pb2.HealthCheck(
            name="certificate", status=device_pb2.UNHEALTHY, message="certificate expired"
        )
    elif not_after - now < CERT_WARNING:
        days = (not_after - now).total_seconds() / 86400
        cert = device_pb2.HealthCheck(
            name="certificate",
            status=device_pb2.DEGRADED,
            message=f"certificate expires in {days:.1f} days",
        )
    else:
        cert = device_pb2.HealthCheck(
            name="certificate", status=device_pb2.HEALTHY, message="certificate valid"
        )
    checks.append(cert)
    worst = max((c.status for c in checks), key=lambda s: _RANK.get(s, 0))
    health = device_pb2.DeviceHealth(
        device_id=observed.device_id,
        status=worst,
        checks=checks,
        check_type=device_pb2.COMPREHENSIVE,
    )
    health.checked_at.FromDatetime(now)
    if observed.last_seen is not None:
        health.last_seen.FromDatetime(observed.last_seen)
    return health
