"""The GetDeviceHealth summary and map SQL as they were before the rewrite (1.58 s at
1,000,000 devices), kept only so ``bench/analytics/device_health.py`` can time the old
shape against ``fleetd.storage.analytics.health`` in the same run and assert equal
answers. Not used by fleetd.

The old shape: two aggregate joins over assignments (failed count, oldest stalled
progress), every check's CASE in an ``OFFSET 0`` subquery with the thresholds' instants
computed per row (``now - make_interval(...)``), then ``greatest`` and one
``count(*) FILTER`` per status and per failing check. One change from the original:
the agent_version check reads the new ``agent_version_key`` (migration 0010 no longer
stores the numeric[] it compared), so the comparison slightly flatters the old shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fleetd.domain import device_health
from fleetd.domain.device_health import Kind, Observed, Rule, Thresholds
from fleetd.storage.analytics.health import (
    _OBSERVED_COLUMNS,
    ACTIVE_DEPLOYMENT_STATES,
    FAILED_ASSIGNMENT_STATES,
    Selection,
    Summary,
    version_key,
)
from fleetd.storage.devices import IN_PROGRESS_STATES
from fleetd.storage.types import Queryable


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


def check_sql(rule: Rule, param: _Params, now: str) -> str:
    """The SQL twin of ``device_health._check``: the check's HealthStatus number for the
    observed row ``o``."""
    healthy, degraded, unhealthy = (
        device_health.HEALTHY,
        device_health.DEGRADED,
        device_health.UNHEALTHY,
    )
    match rule.kind:
        case Kind.HEARTBEAT:
            assert rule.unhealthy is not None
            window = param(rule.unhealthy, "float8")
            return (
                f"CASE WHEN o.last_seen >= {now} - make_interval(secs => {window}) "
                f"THEN {healthy} ELSE {device_health.UNREACHABLE} END"
            )
        case Kind.ABOVE:
            column = _READING_COLUMNS[rule.name]
            arms = [f"WHEN {column} IS NULL THEN {device_health.NO_READING}"]
            if rule.unhealthy is not None:
                arms.append(f"WHEN {column} > {param(rule.unhealthy, 'float8')} THEN {unhealthy}")
            if rule.degraded is not None:
                arms.append(f"WHEN {column} > {param(rule.degraded, 'float8')} THEN {degraded}")
            return f"CASE {' '.join(arms)} ELSE {healthy} END"
        case Kind.EXPIRY:
            assert rule.degraded is not None
            warning = param(rule.degraded, "float8")
            return (
                "CASE WHEN o.certificate_not_after IS NULL "
                f"OR o.certificate_not_after <= {now} THEN {unhealthy} "
                f"WHEN o.certificate_not_after < {now} + make_interval(secs => {warning}) "
                f"THEN {degraded} ELSE {healthy} END"
            )
        case Kind.ARTIFACTS:
            assert rule.degraded is not None
            stalled = param(rule.degraded, "float8")
            return (
                f"CASE WHEN o.failed_assignments > 0 THEN {unhealthy} "
                f"WHEN o.stalled_since < {now} - make_interval(secs => {stalled}) "
                f"THEN {degraded} ELSE {healthy} END"
            )
        case Kind.VERSION:
            assert rule.minimum is not None
            minimum = param(version_key(rule.minimum), "text")
            return (
                f"CASE WHEN o.agent_version_key IS NULL THEN {device_health.NO_READING} "
                f'WHEN o.agent_version_key < {minimum} COLLATE "C" THEN {degraded} '
                f"ELSE {healthy} END"
            )


def _observed_sql(rules: Sequence[Rule], selection: Selection, param: _Params) -> str:
    """``SELECT`` of the Observed columns of every selected device, as relation ``o``."""
    where = ["offboarded_at IS NULL"]
    # Listed ids narrow the assignment aggregates too (GetDevice: one device).
    only_ids = only_ids_a = ""
    if selection.device_ids is not None:
        ids = param(list(selection.device_ids), "text[]")
        where.append(f"device_id = ANY({ids})")
        only_ids, only_ids_a = f"AND device_id = ANY({ids})", f"AND a.device_id = ANY({ids})"
    if selection.condition is not None:
        sql, values = selection.condition(len(param.values) + 1)
        param.values.extend(values)
        where.append(f"({sql})")
    kinds = {rule.kind for rule in rules}
    failed, stalled, joins = "0", "NULL::timestamptz", ""
    if Kind.ARTIFACTS in kinds:
        failed, stalled = "coalesce(f.failed, 0)", "s.stalled_since"
        joins = f"""
            LEFT JOIN (
                SELECT a.device_id, count(*) AS failed
                FROM deployments p JOIN assignments a USING (deployment_id)
                WHERE p.state = ANY({param(list(ACTIVE_DEPLOYMENT_STATES), "text[]")})
                  AND a.state = ANY({param(list(FAILED_ASSIGNMENT_STATES), "text[]")})
                  {only_ids_a}
                GROUP BY a.device_id
            ) f ON f.device_id = d.device_id
            LEFT JOIN (
                SELECT device_id, min(updated_at) AS stalled_since FROM assignments
                WHERE active AND state = ANY({param(list(IN_PROGRESS_STATES), "text[]")})
                  {only_ids}
                GROUP BY device_id
            ) s ON s.device_id = d.device_id"""
    # The filter names devices' columns unqualified: it is applied where devices is the
    # only relation in scope, before the joins.
    return f"""
        SELECT d.device_id, d.last_seen, d.cpu_usage, d.memory_usage, d.disk_usage,
               d.cert_not_after AS certificate_not_after, d.temperature, d.agent_version,
               {failed} AS failed_assignments, {stalled} AS stalled_since,
               d.agent_version_key
        FROM (SELECT * FROM devices WHERE {" AND ".join(where)}) d{joins}"""


def _classified_sql(
    rules: Sequence[Rule], selection: Selection, param: _Params, now: dt.datetime
) -> str:
    """Relation ``h``: the Observed columns, one status column per check (``c_<name>``)
    and the overall ``status`` (the greatest)."""
    at = param(now, "timestamptz")
    observed = _observed_sql(rules, selection, param)
    checks = ",\n               ".join(
        f"{check_sql(rule, param, at)} AS c_{rule.name}" for rule in rules
    )
    names = ", ".join(f"c_{rule.name}" for rule in rules)
    # OFFSET 0 keeps each subquery from being flattened into its parent, which would
    # repeat every check's CASE in ``greatest`` and in each ``count(*) FILTER`` (measured
    # 2x slower over 1,000,000 devices, even with parallel workers).
    return f"""
        SELECT c.*, greatest({names}) AS status FROM (
            SELECT o.*,
               {checks}
            FROM ({observed} OFFSET 0) o
            OFFSET 0
        ) c"""


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
    classified = _classified_sql(rules, selection, param, now)
    statuses = (
        device_health.HEALTHY,
        device_health.DEGRADED,
        device_health.UNHEALTHY,
        device_health.UNREACHABLE,
    )
    counts = [f"count(*) FILTER (WHERE status = {s}) AS s{s}" for s in statuses]
    counts += [
        f"count(*) FILTER (WHERE c_{rule.name} >= {device_health.FAILING}) AS f_{rule.name}"
        for rule in rules
    ]
    row = await conn.fetchrow(
        f"SELECT count(*) AS total, {', '.join(counts)} FROM ({classified}) h",
        *param.values,
    )
    assert row is not None
    return Summary(
        total=row["total"],
        by_status={s: row[f"s{s}"] for s in statuses},
        failing={rule.name: row[f"f_{rule.name}"] for rule in rules},
    )


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
    (overall status, UNREACHABLE first), then by device id."""
    param = _Params()
    classified = _classified_sql(thresholds.rules(check_type), selection, param, now)
    rows = await conn.fetch(
        f"""SELECT {_OBSERVED_COLUMNS} FROM ({classified}) h
            ORDER BY status DESC, device_id LIMIT {param(limit, "int")}""",
        *param.values,
    )
    return [Observed(*row) for row in rows]
