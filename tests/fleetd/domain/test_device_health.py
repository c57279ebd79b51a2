"""The table of checks, evaluated per device: each check at, just below and just above
each of its thresholds; missing readings; UNREACHABLE above all; check types."""

from __future__ import annotations

import datetime as dt

import pytest

from fleetd.domain.device_health import (
    InvalidThresholds,
    Limits,
    Observed,
    Thresholds,
    evaluate,
    parse_version,
)
from fleetd.v1 import device_pb2

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DEFAULTS = Thresholds()
EPSILON = 1e-6
A_MICROSECOND = dt.timedelta(microseconds=1)

HEALTHY = device_pb2.HEALTHY
DEGRADED = device_pb2.DEGRADED
UNHEALTHY = device_pb2.UNHEALTHY
UNREACHABLE = device_pb2.UNREACHABLE
NO_READING = device_pb2.HEALTH_STATUS_UNSPECIFIED


def _observed(**kw: object) -> Observed:
    base: dict[str, object] = {
        "device_id": "d",
        "last_seen": NOW - dt.timedelta(seconds=10),
        "cpu_usage": 20.0,
        "memory_usage": 40.0,
        "disk_usage": 50.0,
        "certificate_not_after": NOW + dt.timedelta(days=60),
        "temperature": 45.0,
        "agent_version": "1.4.0",
        "failed_assignments": 0,
        "stalled_since": None,
    }
    base.update(kw)
    return Observed(**base)  # type: ignore[arg-type]


def _checks(
    health: device_pb2.DeviceHealth,
) -> dict[str, device_pb2.HealthStatus]:
    return {c.name: c.status for c in health.checks}


def _status_of(check: str, thresholds: Thresholds = DEFAULTS, /, **kw: object) -> int:
    return _checks(evaluate(_observed(**kw), now=NOW, thresholds=thresholds))[check]


def test_a_well_device_is_healthy_with_every_comprehensive_check() -> None:
    health = evaluate(_observed(), now=NOW, thresholds=Thresholds(min_agent_version="1.0"))
    assert health.status == HEALTHY
    assert health.check_type == device_pb2.COMPREHENSIVE
    assert list(_checks(health)) == [
        "heartbeat",
        "cpu",
        "memory",
        "disk",
        "temperature",
        "certificate",
        "artifacts",
        "agent_version",
    ]


@pytest.mark.parametrize(
    ("check_type", "names"),
    [
        (device_pb2.BASIC, ["heartbeat"]),
        (device_pb2.RESOURCES, ["heartbeat", "cpu", "memory", "disk", "temperature"]),
        (
            device_pb2.HEALTH_CHECK_TYPE_UNSPECIFIED,
            ["heartbeat", "cpu", "memory", "disk", "temperature", "certificate", "artifacts"],
        ),
    ],
)
def test_check_types_run_their_rows_of_the_table(
    check_type: device_pb2.HealthCheckType, names: list[str]
) -> None:
    health = evaluate(_observed(), now=NOW, thresholds=DEFAULTS, check_type=check_type)
    assert list(_checks(health)) == names
    expected = check_type or device_pb2.COMPREHENSIVE
    assert health.check_type == expected


def test_basic_ignores_a_full_disk_that_resources_reports() -> None:
    full = _observed(disk_usage=99.0)
    assert evaluate(full, now=NOW, thresholds=DEFAULTS, check_type=device_pb2.BASIC).status == (
        HEALTHY
    )
    assert (
        evaluate(full, now=NOW, thresholds=DEFAULTS, check_type=device_pb2.RESOURCES).status
        == UNHEALTHY
    )


# (check, reading field, DEGRADED limit, UNHEALTHY limit or None)
LIMITS = [
    ("cpu", "cpu_usage", 90.0, None),
    ("memory", "memory_usage", 90.0, 97.0),
    ("disk", "disk_usage", 85.0, 95.0),
    ("temperature", "temperature", 75.0, 85.0),
]


@pytest.mark.parametrize(("check", "field", "degraded", "unhealthy"), LIMITS)
def test_readings_at_below_and_above_each_threshold(
    check: str, field: str, degraded: float, unhealthy: float | None
) -> None:
    assert _status_of(check, **{field: degraded - EPSILON}) == HEALTHY
    assert _status_of(check, **{field: degraded}) == HEALTHY  # the limit itself is fine
    assert _status_of(check, **{field: degraded + EPSILON}) == DEGRADED
    if unhealthy is None:
        assert _status_of(check, **{field: 100.0}) == DEGRADED  # never worse
        return
    assert _status_of(check, **{field: unhealthy - EPSILON}) == DEGRADED
    assert _status_of(check, **{field: unhealthy}) == DEGRADED
    assert _status_of(check, **{field: unhealthy + EPSILON}) == UNHEALTHY


@pytest.mark.parametrize(("check", "field", "degraded", "unhealthy"), LIMITS)
def test_a_missing_reading_is_not_a_failure(
    check: str, field: str, degraded: float, unhealthy: float | None
) -> None:
    health = evaluate(_observed(**{field: None}), now=NOW, thresholds=DEFAULTS)
    assert _checks(health)[check] == NO_READING
    assert health.status == HEALTHY


def test_configured_limits_move_the_thresholds() -> None:
    strict = Thresholds(temperature=Limits(degraded=50.0, unhealthy=60.0))
    assert _status_of("temperature", strict, temperature=55.0) == DEGRADED
    assert _status_of("temperature", strict, temperature=61.0) == UNHEALTHY
    assert _status_of("temperature", DEFAULTS, temperature=61.0) == HEALTHY


def test_heartbeat_at_below_and_above_offline_after() -> None:
    window = dt.timedelta(seconds=DEFAULTS.offline_after)
    assert _status_of("heartbeat", last_seen=NOW - window + A_MICROSECOND) == HEALTHY
    assert _status_of("heartbeat", last_seen=NOW - window) == HEALTHY
    assert _status_of("heartbeat", last_seen=NOW - window - A_MICROSECOND) == UNREACHABLE
    assert _status_of("heartbeat", last_seen=None) == UNREACHABLE


def test_unreachable_wins_over_every_other_failure() -> None:
    health = evaluate(
        _observed(
            last_seen=NOW - dt.timedelta(minutes=10),
            disk_usage=99.0,
            certificate_not_after=None,
            failed_assignments=3,
        ),
        now=NOW,
        thresholds=DEFAULTS,
    )
    assert health.status == UNREACHABLE
    assert _checks(health)["disk"] == UNHEALTHY  # still reported, from the last readings


def test_certificate_at_below_and_above_the_warning_and_expiry() -> None:
    warning = dt.timedelta(seconds=DEFAULTS.certificate_warning)
    assert _status_of("certificate", certificate_not_after=NOW + warning) == HEALTHY
    assert _status_of("certificate", certificate_not_after=NOW + warning - A_MICROSECOND) == (
        DEGRADED
    )
    assert _status_of("certificate", certificate_not_after=NOW + A_MICROSECOND) == DEGRADED
    assert _status_of("certificate", certificate_not_after=NOW) == UNHEALTHY
    assert _status_of("certificate", certificate_not_after=NOW - A_MICROSECOND) == UNHEALTHY
    assert _status_of("certificate", certificate_not_after=None) == UNHEALTHY


def test_artifacts_failed_is_unhealthy_and_stalled_an_hour_is_degraded() -> None:
    hour = dt.timedelta(seconds=DEFAULTS.stalled_after)
    assert _status_of("artifacts", failed_assignments=1) == UNHEALTHY
    assert _status_of("artifacts", failed_assignments=1, stalled_since=NOW - 2 * hour) == (
        UNHEALTHY
    )
    assert _status_of("artifacts", stalled_since=NOW - hour - A_MICROSECOND) == DEGRADED
    assert _status_of("artifacts", stalled_since=NOW - hour) == HEALTHY
    assert _status_of("artifacts", stalled_since=NOW - hour + A_MICROSECOND) == HEALTHY
    assert _status_of("artifacts", stalled_since=None) == HEALTHY


def test_agent_version_below_at_and_above_the_minimum() -> None:
    minimum = Thresholds(min_agent_version="1.4.0")
    assert _status_of("agent_version", minimum, agent_version="1.3.9") == DEGRADED
    assert _status_of("agent_version", minimum, agent_version="1.4") == HEALTHY
    assert _status_of("agent_version", minimum, agent_version="v1.4.0-rc1") == HEALTHY
    assert _status_of("agent_version", minimum, agent_version="1.10.0") == HEALTHY
    assert _status_of("agent_version", minimum, agent_version="") == NO_READING
    assert _status_of("agent_version", minimum, agent_version="nightly") == NO_READING


def test_agent_version_is_not_checked_without_a_minimum() -> None:
    assert "agent_version" not in _checks(evaluate(_observed(), now=NOW, thresholds=DEFAULTS))


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1", (1, 0, 0)),
        ("1.2", (1, 2, 0)),
        ("v1.2.3", (1, 2, 3)),
        ("1.2.3.4", (1, 2, 3)),
        ("1.2.3-beta+7", (1, 2, 3)),
        ("10.0.0", (10, 0, 0)),
        ("", None),
        ("x1.2", None),
        ("\u0661.2", None),  # an Arabic-Indic digit is not a version digit
    ],
)
def test_parse_version(text: str, parsed: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize(
    "bad",
    [
        {"min_agent_version": "latest"},
        {"disk": Limits(degraded=96.0, unhealthy=95.0)},
        {"offline_after": float("nan")},
        {"cpu": Limits(degraded=float("inf"))},
    ],
)
def test_invalid_thresholds_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidThresholds):
        Thresholds(**bad)  # type: ignore[arg-type]


def test_checks_carry_values_and_thresholds() -> None:
    health = evaluate(_observed(disk_usage=96.0), now=NOW, thresholds=DEFAULTS)
    disk = next(c for c in health.checks if c.name == "disk")
    assert (disk.value, disk.threshold) == (96.0, 95.0)
    assert health.last_seen.ToDatetime(dt.UTC) == NOW - dt.timedelta(seconds=10)
    assert health.checked_at.ToDatetime(dt.UTC) == NOW
