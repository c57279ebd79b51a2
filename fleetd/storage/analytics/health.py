"""GetDeviceHealth in PostgreSQL: what the checks observe, and the fleet-wide classification.

The classification SQL is generated from the domain's table of checks
(``fleetd.domain.device_health.Thresholds.rules``): one ``CASE`` per check whose result is
the check's HealthStatus number, exactly as the Python ``evaluate`` decides it (a
differential test compares the two device by device). So a summary over every matching
device is one pass over ``devices``, instead of a million evaluations in Python: each
device's per-check statuses are the base-5 digits of one integer, the pass counts devices
per integer (``GROUP BY``, a few hundred groups) and Python folds those counts into the
status and failing-check totals (``fold``).

What a check reads, per device:

* the ``devices`` row: last_seen, the latest cpu / memory / disk / temperature, the agent
  version (``agent_version_key``, a bytewise-comparable sort key computed once per write
  by a generated column) and the newest unrevoked certificate's expiry
  (``cert_not_after``, kept by triggers on ``device_certificates``): both denormalised by
  migration 0010, because computing them per device per summary cost 4x the 1 s budget at
  1,000,000 devices;
* artifacts: whether any of its assignments FAILED or ROLLED_BACK in a deployment that is
  still active (pending, running, paused, rolling back), found from the few active
  deployments; and whether an active assignment still under way has made no progress
  (``updated_at``) for too long. The summary joins one small relation holding the
  ARTIFACTS status of just the devices for which it is not HEALTHY; the map reads the
  failed count and the oldest stalled progress from one aggregate over the qualifying
  assignments (hash-joined: one pass, not a probe per device).

Every instant is derived from ``now`` passed as a parameter (never the database's own
clock), in Python with ``evaluate``'s own ``timedelta`` arithmetic, so the SQL and the
Python evaluation of one request agree at the boundaries. Every value is a bind
parameter; the SQL text holds only names from the table of checks and the filter's
whitelisted columns (hence the ``noqa: S608``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fleetd.domain import device_health
from fleetd.domain.device_health import Kind, Observed, Rule, Thresholds
from fleetd.storage.devices import IN_PROGRESS_STATES, SqlCondition
from fleetd.storage.types import Queryable
from fleetd.v1 import device_pb2

ACTIVE_DEPLOYMENT_STATES = ("pending", "running", "paused", "rolling_back")
"""A deployment in one of these states is still active (``deployments_active_idx``)."""

FAILED_ASSIGNMENT_STATES = ("failed", "rolled_back")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which devices: the listed ids, or those matching a compiled filter, or (neither)
    the whole fleet. Offboarded devices are never selected."""

    device_ids: Sequence[str] | None = None
    condition: Callable[[int], SqlCondition] | None = None
    """A WHERE fragment over ``devices`` (unqualified columns), given its first
    placeholder number: ``core_ext`` ``Filter.to_sql``."""


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over every selected device."""

    total: int
    by_status: dict[int, int]
    """HealthStatus number (HEALTHY..UNREACHABLE) -> devices with that overall status."""
    failing: dict[str, int]
    """Check name -> devices for which it is DEGRADED or worse (every check of the check
    type has an entry, 0 included)."""


class _Params:
    """Bind values in placeholder order."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


_READING_COLUMNS = {
    "cpu": "o.cpu_usage",
    "memory": "o.memory_usage",
    "disk": "o.disk_usage",
    "temperature": "o.temperature",
}


class _Bounds:
    """The instants the checks compare with, computed once in Python from ``now`` (the
    same ``timedelta`` arithmetic as ``evaluate``) and bound as parameters, instead of an
    interval subtracted from ``now`` per device (a stable, not constant, expression: it
    was evaluated for each of 1,000,000 rows). None: the shift leaves the datetime range,
    so no stored instant is on the far side of it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def before(self, seconds: float) -> dt.datetime | None:
        try:
            return self.now - dt.timedelta(seconds=seconds)
        except OverflowError:
            return None

    def after(self, seconds: float) -> dt.datetime | None:
        try:
            return self.now + dt.timedelta(seconds=seconds)
        except OverflowError:
            return None


def check_sql(
    rule: Rule,
    param: _Params,
    bounds: _Bounds,
    artifacts: str | None = None,
    scale: int = 1,
) -> str:
    """The SQL twin of ``device_health._check``: the check's HealthStatus number for the
    observed row ``o``. ``artifacts``: an expression already holding the ARTIFACTS check's
    status (the summary's per-device aggregate); None: decide it from ``o``'s
    ``failed_assignments`` and ``stalled_since``. ``scale``: every status number comes
    out multiplied by it (the summary's digit weights, folded into the constants rather
    than multiplied per device)."""
    healthy, degraded, unhealthy, unreachable, no_reading = (
        status * scale
        for status in (
            device_health.HEALTHY,
            device_health.DEGRADED,
            device_health.UNHEALTHY,
            device_health.UNREACHABLE,
            device_health.NO_READING,
        )
    )
    match rule.kind:
        case Kind.HEARTBEAT:
            assert rule.unhealthy is not None
            since = bounds.before(rule.unhealthy)
            reachable = (
                "o.last_seen IS NOT NULL"
                if since is None
                else f"o.last_seen >= {param(since, 'timestamptz')}"
            )
            return f"CASE WHEN {reachable} THEN {healthy} ELSE {unreachable} END"
        case Kind.ABOVE:
            column = _READING_COLUMNS[rule.name]
            arms = [f"WHEN {column} IS NULL THEN {no_reading}"]
            if rule.unhealthy is not None:
                arms.append(f"WHEN {column} > {param(rule.unhealthy, 'float8')} THEN {unhealthy}")
            if rule.degraded is not None:
                arms.append(f"WHEN {column} > {param(rule.degraded, 'float8')} THEN {degraded}")
            return f"CASE {' '.join(arms)} ELSE {healthy} END"
        case Kind.EXPIRY:
            assert rule.degraded is not None
            warning = bounds.after(rule.degraded)
            expiring = (
                "TRUE"
                if warning is None
                else f"o.certificate_not_after < {param(warning, 'timestamptz')}"
            )
            return (
                "CASE WHEN o.certificate_not_after IS NULL OR o.certificate_not_after "
                f"<= {param(bounds.now, 'timestamptz')} THEN {unhealthy} "
                f"WHEN {expiring} THEN {degraded} ELSE {healthy} END"
            )
        case Kind.ARTIFACTS:
            if artifacts is not None:
                return artifacts
            assert rule.degraded is not None
            return (
                f"CASE WHEN o.failed_assignments > 0 THEN {unhealthy} "
                f"WHEN {_stalled('o.stalled_since', rule, param, bounds)} "
                f"THEN {degraded} ELSE {healthy} END"
            )
        case Kind.VERSION:
            assert rule.minimum is not None
            minimum = param(version_key(rule.minimum), "text")
            return (
                f"CASE WHEN o.agent_version_key IS NULL THEN {no_reading} "
                f'WHEN o.agent_version_key < {minimum} COLLATE "C" THEN {degraded} '
                f"ELSE {healthy} END"
            )


def version_key(version: device_health.Version) -> str:
    """The sort key ``fleetd_agent_version_key`` (migration 0010) stores for a version:
    per part, its digits without leading zeros preceded by their count as 10 digits, so
    comparing keys bytewise compares the versions."""
    digits = (str(part).lstrip("0") for part in version)
    return "".join(f"{len(d):010d}{d}" for d in digits)


def _stalled(column: str, rule: Rule, param: _Params, bounds: _Bounds) -> str:
    """``column`` (a last progress) is older than the ARTIFACTS rule allows."""
    assert rule.degraded is not None
    since = bounds.before(rule.degraded)
    return "FALSE" if since is None else f"{column} < {param(since, 'timestamptz')}"


def _devices_sql(
    selection: Selection, param: _Params, ids: str | None = None
) -> tuple[str, str, str]:
    """The selected devices as relation ``o`` (a plain subquery the planner flattens), and
    the narrowing of assignment aggregates to listed ids (GetDevice: one device; the map:
    its ranked devices), unqualified and for alias ``a``. ``ids``: an SQL membership
    test (``IN (SELECT ...)``) listing the devices, instead of ``selection.device_ids``."""
    where = ["offboarded_at IS NULL"]
    only_ids = only_ids_a = ""
    if ids is None and selection.device_ids is not None:
        ids = f"= ANY({param(list(selection.device_ids), 'text[]')})"
    if ids is not None:
        where.append(f"device_id {ids}")
        only_ids, only_ids_a = f"AND device_id {ids}", f"AND a.device_id {ids}"
    if selection.condition is not None:
        sql, values = selection.condition(len(param.values) + 1)
        param.values.extend(values)
        where.append(f"({sql})")
    # The filter names devices' columns unqualified: it is applied where devices is the
    # only relation in scope, before the join.
    devices = (
        "(SELECT *, cert_not_after AS certificate_not_after FROM devices "  # noqa: S608
        f"WHERE {' AND '.join(where)}) o"
    )
    return devices, only_ids, only_ids_a


def _artifact_status_sql(
    rule: Rule, param: _Params, bounds: _Bounds, only_ids: str, only_ids_a: str, scale: int
) -> str:
    """Relation ``x``: the ARTIFACTS check's status of each device for which it is not
    HEALTHY (UNHEALTHY: a failed or rolled-back assignment in an active deployment, found
    from the few active deployments; DEGRADED: an active assignment under way whose last
    progress is too old), so the fleet-wide pass joins one small relation holding the
    answer instead of two aggregates it would still have to classify per device. The
    status comes out multiplied by ``scale`` (``check_sql``)."""
    unhealthy, degraded = device_health.UNHEALTHY * scale, device_health.DEGRADED * scale
    return f"""(
            SELECT device_id, max(status) AS status FROM (
                SELECT a.device_id, {unhealthy} AS status
                FROM deployments p JOIN assignments a USING (deployment_id)
                WHERE p.state = ANY({param(list(ACTIVE_DEPLOYMENT_STATES), "text[]")})
                  AND a.state = ANY({param(list(FAILED_ASSIGNMENT_STATES), "text[]")})
                  {only_ids_a}
                UNION ALL
                SELECT device_id, {degraded} FROM assignments
                WHERE active AND state = ANY({param(list(IN_PROGRESS_STATES), "text[]")})
                  AND {_stalled("updated_at", rule, param, bounds)} {only_ids}
            ) u GROUP BY device_id
        ) x"""  # noqa: S608


def _observed_sql(
    rules: Sequence[Rule],
    selection: Selection,
    param: _Params,
    bounds: _Bounds,
    ids: str | None = None,
) -> str:
    """``SELECT`` of the Observed columns of every selected device, as relation ``o``:
    with ARTIFACTS, one aggregate over the qualifying assignments gives both the failed
    count and the oldest stalled progress (one hash join, not two)."""
    devices, _, only_ids_a = _devices_sql(selection, param, ids)
    failed, stalled, joins = "0::bigint", "NULL::timestamptz", ""
    if any(rule.kind is Kind.ARTIFACTS for rule in rules):
        failed, stalled = "coalesce(f.failed, 0)", "f.stalled_since"
        active = param(list(ACTIVE_DEPLOYMENT_STATES), "text[]")
        failing = param(list(FAILED_ASSIGNMENT_STATES), "text[]")
        under_way = param(list(IN_PROGRESS_STATES), "text[]")
        joins = f"""
            LEFT JOIN (
                SELECT a.device_id,
                       count(*) FILTER (WHERE p.deployment_id IS NOT NULL
                                        AND a.state = ANY({failing})) AS failed,
                       min(a.updated_at) FILTER (WHERE a.active
                                                 AND a.state = ANY({under_way}))
                           AS stalled_since
                FROM assignments a
                LEFT JOIN deployments p
                  ON p.deployment_id = a.deployment_id AND p.state = ANY({active})
                WHERE (a.state = ANY({failing}) OR (a.active AND a.state = ANY({under_way})))
                  {only_ids_a}
                GROUP BY a.device_id
            ) f ON f.device_id = o.device_id"""  # noqa: S608
    return f"""
        SELECT o.device_id, o.last_seen, o.cpu_usage, o.memory_usage, o.disk_usage,
               o.certificate_not_after, o.temperature, o.agent_version,
               {failed} AS failed_assignments, {stalled} AS stalled_since,
               o.agent_version_key
        FROM {devices}{joins}"""  # noqa: S608


def _classified_sql(
    rules: Sequence[Rule], selection: Selection, param: _Params, now: dt.datetime
) -> str:
    """Relation ``h``: the Observed columns, one status column per check (``c_<name>``)
    and the overall ``status`` (the greatest). The map and the differential test read it;
    the summary has its own cheaper form (``_summary_sql``)."""
    bounds = _Bounds(now)
    observed = _observed_sql(rules, selection, param, bounds)
    checks = ",\n               ".join(
        f"{check_sql(rule, param, bounds)} AS c_{rule.name}" for rule in rules
    )
    names = ", ".join(f"c_{rule.name}" for rule in rules)
    # OFFSET 0 keeps the check columns from being inlined into ``greatest`` (each CASE
    # evaluated twice per row).
    return f"""
        SELECT c.*, greatest({names}) AS status FROM (
            SELECT o.*,
               {checks}
            FROM ({observed}) o
            OFFSET 0
        ) c"""  # noqa: S608


_STATUSES = (
    device_health.HEALTHY,
    device_health.DEGRADED,
    device_health.UNHEALTHY,
    device_health.UNREACHABLE,
)
"""The overall statuses a Summary counts (every device has a heartbeat check, so its
overall status is at least HEALTHY)."""

_BASE = 5
"""Every HealthStatus number is below 5: a device's per-check statuses are the base-5
digits of one integer (8 checks: < 5**8 = 390,625, an int4)."""


def _artifacts_join(
    rules: Sequence[Rule],
    param: _Params,
    bounds: _Bounds,
    only_ids: str,
    only_ids_a: str,
    scales: Sequence[int],
) -> tuple[str, str | None]:
    """The join of relation ``x`` (``_artifact_status_sql``) onto ``o``, and the ARTIFACTS
    check's (scaled) status expression over it; ``("", None)`` when no rule reads
    assignments (BASIC, RESOURCES)."""
    for rule, scale in zip(rules, scales, strict=True):
        if rule.kind is Kind.ARTIFACTS:
            x = _artifact_status_sql(rule, param, bounds, only_ids, only_ids_a, scale)
            join = f" LEFT JOIN {x} ON x.device_id = o.device_id"
            return join, f"coalesce(x.status, {device_health.HEALTHY * scale})"
    return "", None


def _summary_sql(
    rules: Sequence[Rule], selection: Selection, param: _Params, now: dt.datetime
) -> str:
    """``(k, n)``: ``n`` selected devices whose per-check statuses are the digits of ``k``
    (check ``i`` of ``rules`` is digit ``i``).

    Grouping by that one integer costs one int4 hash per device; the few hundred
    distinct combinations are folded into the summary in Python. It replaced
    ``greatest`` and one ``count(*) FILTER`` per status and per check per device, two
    assignment aggregates joined and the per-device interval arithmetic (1.58 s at
    1,000,000 devices; bench/analytics/device_health.py times both shapes)."""
    bounds = _Bounds(now)
    devices, only_ids, only_ids_a = _devices_sql(selection, param)
    scales = [_BASE**i for i in range(len(rules))]
    join, artifacts = _artifacts_join(rules, param, bounds, only_ids, only_ids_a, scales)
    digits = " + ".join(
        check_sql(rule, param, bounds, artifacts, scale)
        for rule, scale in zip(rules, scales, strict=True)
    )
    return f"SELECT {digits} AS k, count(*) AS n FROM {devices}{join} GROUP BY 1"  # noqa: S608


def fold(rules: Sequence[Rule], groups: Iterable[tuple[int, int]]) -> Summary:
    """The Summary of ``(k, n)`` groups (``_summary_sql``): the overall status is the
    greatest digit, a check fails at FAILING or worse."""
    by_status: dict[int, int] = dict.fromkeys(_STATUSES, 0)
    failing = dict.fromkeys((rule.name for rule in rules), 0)
    total = 0
    for key, count in groups:
        digits = [(key // _BASE**i) % _BASE for i in range(len(rules))]
        total += count
        worst = max(digits)
        if worst in by_status:
            by_status[worst] += count
        for rule, status in zip(rules, digits, strict=True):
            if status >= device_health.FAILING:
                failing[rule.name] += count
    return Summary(total=total, by_status=by_status, failing=failing)


async def summary(
    conn: Queryable,
    *,
    thresholds: Thresholds,
    check_type: device_health.CheckType,
    selection: Selection,
    now: dt.datetime,
) -> Summary:
    """Status and failing-check counts over every selected device, in one pass."""
    rules = thresholds.rules(check_type)
    param = _Params()
    sql = _summary_sql(rules, selection, param, now)
    rows = await conn.fetch(sql, *param.values)
    return fold(rules, ((row["k"], row["n"]) for row in rows))


async def worst(
    conn: Queryable,
    *,
    thresholds: Thresholds,
    check_type: device_health.CheckType,
    selection: Selection,
    now: dt.datetime,
    limit: int,
) -> list[Observed]:
    """What the checks observe of at most ``limit`` selected devices: the worst first
    (overall status, UNREACHABLE first), then by device id.

    Ranked like the summary counts (the ARTIFACTS status joined from the small relation
    ``x``, every instant a parameter), then only the ranked devices' Observed rows are
    read, assignment aggregates included: not the Observed columns of every device."""
    rules = thresholds.rules(check_type)
    param = _Params()
    bounds = _Bounds(now)
    devices, only_ids, only_ids_a = _devices_sql(selection, param)
    join, artifacts = _artifacts_join(rules, param, bounds, only_ids, only_ids_a, [1] * len(rules))
    checks = ", ".join(check_sql(rule, param, bounds, artifacts) for rule in rules)
    ranked = f"""
        SELECT o.device_id, greatest({checks}) AS status FROM {devices}{join}
        ORDER BY 2 DESC, 1 LIMIT {param(limit, "int")}"""  # noqa: S608
    observed = _observed_sql(
        rules, Selection(), param, bounds, ids="IN (SELECT device_id FROM ranked)"
    )
    columns = ", ".join(f"h.{name}" for name in _OBSERVED_COLUMNS.split(", "))
    rows = await conn.fetch(
        f"""WITH ranked AS MATERIALIZED ({ranked})
            SELECT {columns} FROM ranked r JOIN ({observed}) h USING (device_id)
            ORDER BY r.status DESC, r.device_id""",  # noqa: S608
        *param.values,
    )
    return [Observed(*row) for row in rows]


async def statuses(
    conn: Queryable,
    *,
    thresholds: Thresholds,
    check_type: device_health.CheckType,
    selection: Selection,
    now: dt.datetime,
) -> dict[str, tuple[int, dict[str, int]]]:
    """Every selected device's overall status and per-check statuses as the SQL
    classification decides them: what the differential test holds against ``evaluate``."""
    rules = thresholds.rules(check_type)
    param = _Params()
    classified = _classified_sql(rules, selection, param, now)
    columns = ", ".join(f"c_{rule.name}" for rule in rules)
    rows = await conn.fetch(
        f"SELECT device_id, status, {columns} FROM ({classified}) h",  # noqa: S608
        *param.values,
    )
    return {
        row["device_id"]: (row["status"], {rule.name: row[f"c_{rule.name}"] for rule in rules})
        for row in rows
    }


async def observe(conn: Queryable, device_id: str, *, now: dt.datetime) -> Observed | None:
    """What the checks observe of one device (GetDevice's include_health); None when it
    does not exist or was offboarded."""
    found = await worst(
        conn,
        thresholds=Thresholds(),
        check_type=device_pb2.COMPREHENSIVE,
        selection=Selection(device_ids=[device_id]),
        now=now,
        limit=1,
    )
    return found[0] if found else None


_OBSERVED_COLUMNS = (
    "device_id, last_seen, cpu_usage, memory_usage, disk_usage, certificate_not_after, "
    "temperature, agent_version, failed_assignments, stalled_since"
)
"""The Observed fields, in order (the dataclass converts positionally)."""
