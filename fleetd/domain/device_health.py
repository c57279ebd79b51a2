"""Device health: a pure function of what fleetd knows about a device, no IO.

The rules are data: :meth:`Thresholds.rules` is the table of checks, each with its kind
and its DEGRADED / UNHEALTHY limits, and the per-device :func:`evaluate` below and the SQL
classification that counts a whole fleet (``fleetd/storage/analytics/health.py``) are both
derived from it, so a changed limit changes both (a differential test runs the two over
generated devices and compares them device by device).

| check_type | check | DEGRADED | UNHEALTHY |
|---|---|---|---|
| BASIC | heartbeat | — | — (none within ``offline_after``, or never: UNREACHABLE) |
| RESOURCES | + cpu | > 90 % | — (sustained CPU is a symptom, not a failure) |
| | + memory | > 90 % | > 97 % |
| | + disk | > 85 % | > 95 % |
| | + temperature | > 75 °C | > 85 °C (SoCs throttle at 80-85) |
| COMPREHENSIVE | + certificate | expires within 14 days | expired, or none valid |
| | + artifacts | an assignment stalled 1 h | one FAILED / ROLLED_BACK in an active deployment |
| | + agent_version | older than ``FLEETD_MIN_AGENT_VERSION`` | — (unset: not checked) |

The device's status is the worst of its checks, UNREACHABLE above all: without a recent
heartbeat the other checks describe the past. A missing reading (no heartbeat yet, no
temperature sensor, an agent that does not say its version) is not a failure: that check
answers HEALTH_STATUS_UNSPECIFIED. ``HEALTH_CHECK_TYPE_UNSPECIFIED`` means COMPREHENSIVE.

Severity is the HealthStatus number itself (UNSPECIFIED 0 < HEALTHY 1 < DEGRADED 2 <
UNHEALTHY 3 < UNREACHABLE 4), so the worst check is the greatest number, in Python and in
SQL alike.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from dataclasses import dataclass, field
from typing import TypeAlias

from fleetd.settings import Settings
from fleetd.v1 import device_pb2

HealthStatus: TypeAlias = device_pb2.HealthStatus
"""A ``fleetd.v1.HealthStatus`` number; larger is worse."""
CheckType: TypeAlias = device_pb2.HealthCheckType
"""A ``fleetd.v1.HealthCheckType`` number."""

NO_READING: HealthStatus = device_pb2.HEALTH_STATUS_UNSPECIFIED
HEALTHY: HealthStatus = device_pb2.HEALTHY
DEGRADED: HealthStatus = device_pb2.DEGRADED
UNHEALTHY: HealthStatus = device_pb2.UNHEALTHY
UNREACHABLE: HealthStatus = device_pb2.UNREACHABLE

FAILING: HealthStatus = DEGRADED
"""A check at or above this severity counts as failing (HealthSummary.failing_checks)."""

DAY = 86_400.0

AGENT_VERSION_PATTERN = r"^v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?"
"""The leading ``[v]MAJOR[.MINOR[.PATCH]]`` of an agent version; what follows (a
pre-release or build suffix) is ignored and missing parts are 0. The same expression is
given to PostgreSQL's ``regexp_match`` (ASCII digits only: Python's ``\\d`` would also match
other scripts' digits)."""

_AGENT_VERSION = re.compile(AGENT_VERSION_PATTERN)

Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    """``(major, minor, patch)`` of an agent version, None when it does not start like one."""
    match = _AGENT_VERSION.match(text)
    if match is None:
        return None
    return int(match[1]), int(match[2] or 0), int(match[3] or 0)


class Kind(enum.Enum):
    """How a check turns its reading into a status (one Python and one SQL form each)."""

    HEARTBEAT = "heartbeat"
    """Seconds since the last heartbeat above ``unhealthy`` (``offline_after``), or no
    heartbeat ever: UNREACHABLE."""
    ABOVE = "above"
    """A reading above ``unhealthy``: UNHEALTHY; above ``degraded``: DEGRADED; none: no
    reading."""
    EXPIRY = "expiry"
    """Expired or absent: UNHEALTHY; fewer than ``degraded`` seconds left: DEGRADED."""
    ARTIFACTS = "artifacts"
    """A failed or rolled-back assignment of an active deployment: UNHEALTHY; an active
    assignment under way whose last progress is more than ``degraded`` seconds old:
    DEGRADED."""
    VERSION = "version"
    """An agent version below the minimum: DEGRADED; an unparseable one: no reading."""


@dataclass(frozen=True, slots=True)
class Limits:
    """A reading's limits: strictly above ``degraded`` is DEGRADED, strictly above
    ``unhealthy`` UNHEALTHY; None: that level is never reached."""

    degraded: float | None = None
    unhealthy: float | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table of checks."""

    name: str
    """``HealthCheck.name``, also the key of ``HealthSummary.failing_checks``."""
    kind: Kind
    level: CheckType
    """The least HealthCheckType (BASIC 1 < RESOURCES 2 < COMPREHENSIVE 3) that runs it."""
    degraded: float | None = None
    unhealthy: float | None = None
    minimum: Version | None = None
    """VERSION only: the oldest agent version that is not DEGRADED."""


class InvalidThresholds(ValueError):
    """A threshold is not a finite number, or a DEGRADED limit is above its UNHEALTHY one."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The configurable limits (defaults: the table in the module docstring).

    Every duration is in seconds. ``min_agent_version`` empty means the agent_version
    check is not made.
    """

    offline_after: float = 90.0
    cpu: Limits = field(default_factory=lambda: Limits(degraded=90.0))
    memory: Limits = field(default_factory=lambda: Limits(90.0, 97.0))
    disk: Limits = field(default_factory=lambda: Limits(85.0, 95.0))
    temperature: Limits = field(default_factory=lambda: Limits(75.0, 85.0))
    certificate_warning: float = 14 * DAY
    stalled_after: float = 3600.0
    min_agent_version: str = ""

    def __post_init__(self) -> None:
        for name in ("offline_after", "certificate_warning", "stalled_after"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidThresholds(f"{name} must be a finite number of seconds >= 0")
        for name in ("cpu", "memory", "disk", "temperature"):
            limits: Limits = getattr(self, name)
            for level in (limits.degraded, limits.unhealthy):
                if level is not None and not math.isfinite(level):
                    raise InvalidThresholds(f"{name}: limits must be finite numbers")
            if (
                limits.degraded is not None
                and limits.unhealthy is not None
                and limits.degraded > limits.unhealthy
            ):
                raise InvalidThresholds(f"{name}: the DEGRADED limit is above the UNHEALTHY one")
        if self.min_agent_version and parse_version(self.min_agent_version) is None:
            raise InvalidThresholds(
                f"min_agent_version {self.min_agent_version!r} is not a version "
                "([v]MAJOR[.MINOR[.PATCH]], e.g. 1.4.0)"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """The defaults with the deployment's ``offline_after`` (the liveness rule GetDevice
        and the offline sweep use) and ``min_agent_version``.

        Raises:
            InvalidThresholds: ``FLEETD_MIN_AGENT_VERSION`` is not a version.
        """
        return cls(
            offline_after=settings.offline_after, min_agent_version=settings.min_agent_version
        )

    def rules(self, check_type: CheckType = device_pb2.COMPREHENSIVE) -> tuple[Rule, ...]:
        """The checks ``check_type`` runs, in the order a DeviceHealth lists them."""
        level = effective_check_type(check_type)
        minimum = parse_version(self.min_agent_version) if self.min_agent_version else None
        table = (
            Rule("heartbeat", Kind.HEARTBEAT, device_pb2.BASIC, unhealthy=self.offline_after),
            Rule("cpu", Kind.ABOVE, device_pb2.RESOURCES, *_pair(self.cpu)),
            Rule("memory", Kind.ABOVE, device_pb2.RESOURCES, *_pair(self.memory)),
            Rule("disk", Kind.ABOVE, device_pb2.RESOURCES, *_pair(self.disk)),
            Rule("temperature", Kind.ABOVE, device_pb2.RESOURCES, *_pair(self.temperature)),
            Rule(
                "certificate",
                Kind.EXPIRY,
                device_pb2.COMPREHENSIVE,
                degraded=self.certificate_warning,
            ),
            Rule(
                "artifacts",
                Kind.ARTIFACTS,
                device_pb2.COMPREHENSIVE,
                degraded=self.stalled_after,
            ),
            Rule("agent_version", Kind.VERSION, device_pb2.COMPREHENSIVE, minimum=minimum),
        )
        return tuple(
            rule
            for rule in table
            if rule.level <= level and (rule.kind is not Kind.VERSION or rule.minimum)
        )


def _pair(limits: Limits) -> tuple[float | None, float | None]:
    return limits.degraded, limits.unhealthy


def effective_check_type(check_type: CheckType) -> CheckType:
    """``check_type`` with UNSPECIFIED read as COMPREHENSIVE (the health GetDevice shows)."""
    if check_type == device_pb2.HEALTH_CHECK_TYPE_UNSPECIFIED:
        return device_pb2.COMPREHENSIVE
    if check_type not in (device_pb2.BASIC, device_pb2.RESOURCES, device_pb2.COMPREHENSIVE):
        raise ValueError(f"unknown HealthCheckType {check_type}")
    return check_type


@dataclass(frozen=True, slots=True)
class Observed:
    """What the checks look at (``fleetd/storage/analytics/health.py`` reads it)."""

    device_id: str
    last_seen: dt.datetime | None
    cpu_usage: float | None
    memory_usage: float | None
    disk_usage: float | None
    certificate_not_after: dt.datetime | None
    """When the newest unrevoked certificate expires; None: the device has none."""
    temperature: float | None = None
    agent_version: str = ""
    failed_assignments: int = 0
    """Assignments FAILED or ROLLED_BACK in a deployment that is still active."""
    stalled_since: dt.datetime | None = None
    """The oldest last progress of the device's active assignments still under way
    (pending to applying); None when none is under way."""


def evaluate(
    observed: Observed,
    *,
    now: dt.datetime,
    thresholds: Thresholds,
    check_type: CheckType = device_pb2.COMPREHENSIVE,
) -> device_pb2.DeviceHealth:
    """The device's health under ``thresholds`` at ``now`` (checks in table order)."""
    checks = [_check(rule, observed, now) for rule in thresholds.rules(check_type)]
    health = device_pb2.DeviceHealth(
        device_id=observed.device_id,
        status=max(c.status for c in checks),
        checks=checks,
        check_type=effective_check_type(check_type),
    )
    health.checked_at.FromDatetime(now)
    if observed.last_seen is not None:
        health.last_seen.FromDatetime(observed.last_seen)
    return health


def _check(rule: Rule, observed: Observed, now: dt.datetime) -> device_pb2.HealthCheck:
    match rule.kind:
        case Kind.HEARTBEAT:
            return _heartbeat(rule, observed.last_seen, now)
        case Kind.ABOVE:
            return _above(rule, getattr(observed, _READINGS[rule.name]))
        case Kind.EXPIRY:
            return _expiry(rule, observed.certificate_not_after, now)
        case Kind.ARTIFACTS:
            return _artifacts(rule, observed, now)
        case Kind.VERSION:
            return _version(rule, observed.agent_version)


_READINGS = {
    "cpu": "cpu_usage",
    "memory": "memory_usage",
    "disk": "disk_usage",
    "temperature": "temperature",
}
"""The Observed attribute (and devices column) an ABOVE check reads."""

_UNITS = {"cpu": "% used", "memory": "% used", "disk": "% used", "temperature": " °C"}


def _heartbeat(
    rule: Rule, last_seen: dt.datetime | None, now: dt.datetime
) -> device_pb2.HealthCheck:
    assert rule.unhealthy is not None
    if last_seen is None:
        return device_pb2.HealthCheck(
            name=rule.name, status=UNREACHABLE, message="never heartbeated"
        )
    age = now - last_seen
    reachable = age <= dt.timedelta(seconds=rule.unhealthy)
    return device_pb2.HealthCheck(
        name=rule.name,
        status=HEALTHY if reachable else UNREACHABLE,
        message=f"last heartbeat {age.total_seconds():.0f}s ago",
        value=age.total_seconds(),
        threshold=rule.unhealthy,
    )


def _above(rule: Rule, value: float | None) -> device_pb2.HealthCheck:
    if value is None:
        return device_pb2.HealthCheck(
            name=rule.name, status=NO_READING, message=f"no {rule.name} reading yet"
        )
    threshold = rule.degraded if rule.degraded is not None else rule.unhealthy
    if rule.unhealthy is not None and value > rule.unhealthy:
        status, threshold = UNHEALTHY, rule.unhealthy
    elif rule.degraded is not None and value > rule.degraded:
        status = DEGRADED
    else:
        status = HEALTHY
    check = device_pb2.HealthCheck(
        name=rule.name,
        status=status,
        message=f"{rule.name} {value:.1f}{_UNITS.get(rule.name, '')}",
        value=value,
    )
    if threshold is not None:
        check.threshold = threshold
    return check


def _expiry(rule: Rule, not_after: dt.datetime | None, now: dt.datetime) -> device_pb2.HealthCheck:
    assert rule.degraded is not None
    warning_days = rule.degraded / DAY
    if not_after is None:
        return device_pb2.HealthCheck(
            name=rule.name, status=UNHEALTHY, message="no valid certificate"
        )
    days = (not_after - now).total_seconds() / DAY
    if not_after <= now:
        status, message = UNHEALTHY, "certificate expired"
    elif not_after < now + dt.timedelta(seconds=rule.degraded):
        status, message = DEGRADED, f"certificate expires in {days:.1f} days"
    else:
        status, message = HEALTHY, "certificate valid"
    return device_pb2.HealthCheck(
        name=rule.name, status=status, message=message, value=days, threshold=warning_days
    )


def _artifacts(rule: Rule, observed: Observed, now: dt.datetime) -> device_pb2.HealthCheck:
    assert rule.degraded is not None
    if observed.failed_assignments > 0:
        count = observed.failed_assignments
        return device_pb2.HealthCheck(
            name=rule.name,
            status=UNHEALTHY,
            message=f"{count} assignment{'s' if count != 1 else ''} failed or rolled back "
            "in an active deployment",
            value=count,
            threshold=0,
        )
    since = observed.stalled_since
    if since is not None and since < now - dt.timedelta(seconds=rule.degraded):
        hours = (now - since).total_seconds() / 3600
        return device_pb2.HealthCheck(
            name=rule.name,
            status=DEGRADED,
            message=f"an assignment has made no progress for {hours:.1f} h",
            value=(now - since).total_seconds(),
            threshold=rule.degraded,
        )
    return device_pb2.HealthCheck(
        name=rule.name, status=HEALTHY, message="no failed or stalled assignments"
    )


def _version(rule: Rule, agent_version: str) -> device_pb2.HealthCheck:
    assert rule.minimum is not None
    wanted = ".".join(map(str, rule.minimum))
    version = parse_version(agent_version)
    if version is None:
        return device_pb2.HealthCheck(
            name=rule.name, status=NO_READING, message="agent version unknown"
        )
    if version < rule.minimum:
        return device_pb2.HealthCheck(
            name=rule.name,
            status=DEGRADED,
            message=f"agent {agent_version} is older than the minimum {wanted}",
        )
    return device_pb2.HealthCheck(
        name=rule.name, status=HEALTHY, message=f"agent {agent_version} (minimum {wanted})"
    )
