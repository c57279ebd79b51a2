from __future__ import annotations

import datetime as dt

from fleetd.domain.device_health import Observed, evaluate
from fleetd.v1 import device_pb2

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _observed(**kw: object) -> Observed:
    base: dict[str, object] = {
        "device_id": "d",
        "last_seen": NOW - dt.timedelta(seconds=10),
        "cpu_usage": 20.0,
        "memory_usage": 40.0,
        "disk_usage": 50.0,
        "certificate_not_after": NOW + dt.timedelta(days=60),
    }
    base.update(kw)
    return Observed(**base)  # type: ignore[arg-type]


def _checks(health: device_pb2.DeviceHealth) -> dict[str, int]:
    return {c.name: c.status for c in health.checks}


def test_a_well_device_is_healthy() -> None:
    health = evaluate(_observed(), now=NOW, offline_after=90)
    assert health.status == device_pb2.HEALTHY
    assert set(_checks(health)) == {"heartbeat", "cpu", "memory", "disk", "certificate"}


def test_nearly_full_disk_degrades_and_full_disk_is_unhealthy() -> None:
    assert evaluate(_observed(disk_usage=90.0), now=NOW, offline_after=90).status == (
        device_pb2.DEGRADED
    )
    assert evaluate(_observed(disk_usage=96.0), now=NOW, offline_after=90).status == (
        device_pb2.UNHEALTHY
    )


def test_silent_device_is_unreachable_whatever_its_last_stats() -> None:
    old = NOW - dt.timedelta(minutes=10)
    health = evaluate(_observed(last_seen=old, disk_usage=99.0), now=NOW, offline_after=90)
    assert health.status == device_pb2.UNREACHABLE


def test_expiring_and_expired_certificates() -> None:
    soon = evaluate(
        _observed(certificate_not_after=NOW + dt.timedelta(days=3)), now=NOW, offline_after=90
    )
    assert _checks(soon)["certificate"] == device_pb2.DEGRADED
    gone = evaluate(
        _observed(certificate_not_after=NOW - dt.timedelta(days=1)), now=NOW, offline_after=90
    )
    assert gone.status == device_pb2.UNHEALTHY


def test_device_without_heartbeat_yet_has_no_readings() -> None:
    health = evaluate(
        _observed(last_seen=None, cpu_usage=None, memory_usage=None, disk_usage=None),
        now=NOW,
        offline_after=90,
    )
    assert health.status == device_pb2.UNREACHABLE
    assert _checks(health)["cpu"] == device_pb2.HEALTH_STATUS_UNSPECIFIED
