"""The operator API's reads of deployments: pages of deployments, a deployment's devices
and its apply durations, as typed records (GetDeploymentStatus, ListDeployments).

Pages are keyset pages by ``(created_at, deployment_id)``: the caller passes the last
position it returned, never an offset, so a page costs the same however deep it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetd.storage.deployments import DEPLOYMENT_COLUMNS, DeploymentRecord, deployment_record
from fleetd.storage.types import Queryable

APPLY_SAMPLE = 10_000
"""Apply durations are measured over at most this many healthy devices."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One target of a deployment: where its device is in the rollout."""

    device_id: str
    device_name: str
    """'' when the device row is gone."""
    wave: int
    state: str
    assignment_id: str
    """Its first assignment of the deployment ('' before it was assigned)."""
    previous_version: str
    installed_version: str
    reason: str
    message: str
    assigned_at: dt.datetime | None
    updated_at: dt.datetime | None
    completed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ApplyDurations:
    """Assignment -> healthy times over a sample of the healthy devices."""

    median: dt.timedelta
    p95: dt.timedelta


async def list_deployments(
    conn: Queryable,
    *,
    limit: int,
    descending: bool,
    after: tuple[dt.datetime, str] | None,
    states: Sequence[str],
    update_id: str,
    created_by: str,
) -> list[DeploymentRecord]:
    """Deployments by (created_at, deployment_id), newest first when ``descending``,
    after the position ``after``; empty ``states``/``update_id``/``created_by`` match all."""
    params: list[Any] = [limit]
    where = ["TRUE"]
    if states:
        params.append(list(states))
        where.append(f"d.state = ANY(${len(params)}::text[])")
    if update_id:
        params.append(update_id)
        where.append(f"d.update_id = ${len(params)}")
    if created_by:
        params.append(created_by)
        where.append(f"d.created_by = ${len(params)}")
    if after is not None:
        params.extend(after)
        op = "<" if descending else ">"
        where.append(f"(d.created_at, d.deployment_id) {op} (${len(params) - 1}, ${len(params)})")
    order = "DESC" if descending else "ASC"
    # Built from constants and numbered placeholders; the values are bind parameters.
    rows = await conn.fetch(
        f"""SELECT {DEPLOYMENT_COLUMNS} FROM deployments d JOIN updates u USING (update_id)
            WHERE {" AND ".join(where)}
            ORDER BY d.created_at {order}, d.deployment_id {order} LIMIT $1""",  # noqa: S608
        *params,
    )
    return [deployment_record(row) for row in rows]


async def count_deployments(
    conn: Queryable, *, states: Sequence[str], update_id: str, created_by: str
) -> int:
    """How many deployments :func:`list_deployments` pages through with these filters."""
    count: int = await conn.fetchval(
        """SELECT count(*) FROM deployments
           WHERE (cardinality($1::text[]) = 0 OR state = ANY($1::text[]))
             AND ($2 = '' OR update_id = $2) AND ($3 = '' OR created_by = $3)""",
        list(states),
        update_id,
        created_by,
    )
    return count


async def device_statuses(conn: Queryable, deployment_id: str, limit: int) -> list[DeviceStatus]:
    """The first ``limit`` targets of the deployment, by device id."""
    rows = await conn.fetch(
        """SELECT t.device_id, coalesce(d.name, '') AS device_name, t.wave, t.state,
                  coalesce(t.assignment_ids[1], '') AS assignment_id, t.previous_version,
                  t.installed_version, t.reason, t.message, t.assigned_at, t.updated_at,
                  t.completed_at
           FROM deployment_targets t LEFT JOIN devices d USING (device_id)
           WHERE t.deployment_id = $1 ORDER BY t.device_id LIMIT $2""",
        deployment_id,
        limit,
    )
    return [DeviceStatus(**dict(row)) for row in rows]


async def apply_durations(conn: Queryable, deployment_id: str) -> ApplyDurations | None:
    """Median and 95th percentile of assignment -> healthy time; None before any device
    became healthy."""
    row = await conn.fetchrow(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY s) AS p95
           FROM (SELECT extract(epoch FROM completed_at - assigned_at) AS s
                 FROM deployment_targets
                 WHERE deployment_id = $1 AND state = 'healthy' AND assigned_at IS NOT NULL
                 LIMIT $2) AS sample""",
        deployment_id,
        APPLY_SAMPLE,
    )
    if row is None or row["p50"] is None:
        return None
    return ApplyDurations(
        dt.timedelta(seconds=float(row["p50"])), dt.timedelta(seconds=float(row["p95"]))
    )
