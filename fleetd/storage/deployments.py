"""Deployments in PostgreSQL: creation (targets resolved once, set-based), reads, and the
guarded state changes.

:func:`create_deployment` resolves the targets with one ``INSERT ... SELECT`` in a
REPEATABLE READ transaction: the matching devices are classified (no artifact for their
type, already running the update: SKIPPED with a reason); the others are ranked by a
stable hash of deployment id and device id (``hashtextextended``), and wave i ends at the
hash of rank ceil(p_i% of them) (one sort of bare integers, not of rows); the rows are
then inserted in primary-key order (appending to the index), and the counters follow
from the counts by arithmetic. Nothing is done per device in Python, and only the primary
key is maintained, so a million targets take seconds (bench/deploy_update.py).

State changes go through :func:`transition`, which changes the state only from the
states it names (under the row lock), so two callers (an operator and the engine) can
never both win; the callers map a refusal to FAILED_PRECONDITION.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from fleetd.domain.rollout.decide import Counts
from fleetd.storage.types import Connection, Queryable

SqlCondition = tuple[str, list[object]]

ACTIVE_STATES = ("pending", "running", "paused", "rolling_back")
ENDED_STATES = ("completed", "failed", "cancelled", "rolled_back")
SKIP_MESSAGES = {
    "NO_ARTIFACT_FOR_TYPE": "the update has no artifact for this device's type",
    "ALREADY_RUNNING": "the device already runs this version of every artifact",
}
SKIP_SUMMARY = {
    "NO_ARTIFACT_FOR_TYPE": "have no artifact for their type",
    "ALREADY_RUNNING": "already run this version",
}


CREATE_WORK_MEM = "256MB"


class NoTargets(LookupError):
    """No device matched, or every matching device would be skipped."""


class UnknownDevices(LookupError):
    """Listed device ids that do not exist (or were offboarded)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


@dataclass(frozen=True, slots=True)
class Artifact:
    """What targeting and assignment need of one artifact of the update."""

    artifact_id: str
    name: str
    platform: str
    version: str
    assignment_template: bytes


async def update_artifacts(conn: Queryable, update_id: str) -> list[Artifact] | None:
    """The update's artifacts in order; None when there is no such update."""
    exists = await conn.fetchval("SELECT 1 FROM updates WHERE update_id = $1", update_id)
    if exists is None:
        return None
    rows = await conn.fetch(
        """SELECT artifact_id, name, platform, version, assignment_template
           FROM update_artifacts WHERE update_id = $1 ORDER BY position, artifact_id""",
        update_id,
    )
    return [
        Artifact(r["artifact_id"], r["name"], r["platform"], r["version"], r["assignment_template"])
        for r in rows
    ]


def _wave_sizes(percentages: Sequence[float], eligible: int) -> list[int]:
    """Devices per wave: wave i ends at rank ceil(p_i% of the eligible), computed like the
    SQL does (exact decimals), the last at all of them."""
    ends = [math.ceil(Decimal(str(p)) * eligible / 100) for p in percentages[:-1]]
    ends.append(eligible)
    return [end - start for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def applicable(artifacts: Sequence[Artifact], device_type: str) -> list[Artifact]:
    """The artifacts a device of ``device_type`` receives: per name, the one for its
    type, else the one for every type (platform '')."""
    exact = {a.name for a in artifacts if a.platform == device_type}
    return [
        a
        for a in artifacts
        if a.platform == device_type or (a.platform == "" and a.name not in exact)
    ]


@dataclass(frozen=True, slots=True)
class NewDeployment:
    deployment_id: str
    update_id: str
    config: bytes
    percentages: list[float]
    device_filter: str
    condition: Callable[[int], SqlCondition] | None
    device_ids: list[str] | None
    created_by: str


@dataclass(frozen=True, slots=True)
class Created:
    deployment_id: str
    target_device_count: int
    to_update: int
    skipped: dict[str, int]
    started_at: dt.datetime


async def create_deployment(
    conn: Connection, new: NewDeployment, artifacts: Sequence[Artifact]
) -> Created:
    """Insert the deployment, its targets (waves fixed) and counters; see the module doc.

    Raises:
        UnknownDevices: a listed device id does not exist.
        NoTargets: nothing matched, or every target would be skipped (nothing written).
    """
    async with conn.transaction(isolation="repeatable_read"):
        # The ranking sorts every eligible target's hash: in memory, not in temp files.
        await conn.execute(f"SET LOCAL work_mem = '{CREATE_WORK_MEM}'")
        if new.device_ids is not None:
            missing = await conn.fetchval(
                """SELECT array_agg(id ORDER BY id) FROM unnest($1::text[]) AS id
                   WHERE NOT EXISTS (SELECT 1 FROM devices d
                                     WHERE d.device_id = id AND d.offboarded_at IS NULL)""",
                new.device_ids,
            )
            if missing:
                raise UnknownDevices(list(missing))
        started_at: dt.datetime = await conn.fetchval(
            """INSERT INTO deployments (deployment_id, update_id, config, device_filter,
                                        target_device_count, wave_ends, created_by,
                                        started_at)
               VALUES ($1, $2, $3, $4, 0, '{}', $5, now()) RETURNING started_at""",
            new.deployment_id,
            new.update_id,
            new.config,
            new.device_filter,
            new.created_by,
        )
        # What a device of each type must receive, decided here from the few artifacts
        # (so the statement does no per-device join against them): per type with
        # artifacts of its own, the number of names it gets; every other type gets the
        # names of the artifacts for all types (0: nothing to deploy: skipped).
        generic = {a.name for a in artifacts if a.platform == ""}
        own = sorted({a.platform for a in artifacts if a.platform})
        wanted = [len(generic | {a.name for a in artifacts if a.platform == t}) for t in own]
        params: list[Any] = [
            new.deployment_id,
            own,
            wanted,
            len(generic),
            [a.name for a in artifacts],
            [a.version for a in artifacts],
        ]
        where = ["offboarded_at IS NULL"]
        if new.condition is not None:
            sql, values = new.condition(len(params) + 1)
            where.append(f"({sql})")
            params.extend(values)
        if new.device_ids is not None:
            params.append(new.device_ids)
            where.append(f"device_id = ANY(${len(params)}::text[])")
        params.append([str(p) for p in new.percentages[:-1]])
        percentages = f"${len(params)}::numeric[]"
        last = len(new.percentages) - 1
        wave = " ".join(f"WHEN h <= cuts.t[{i + 1}] THEN {i}" for i in range(last))
        wave = f"CASE {wave} ELSE {last} END" if last else "0"
        needs = "coalesce(($3::int[])[array_position($2::text[], d.device_type)], $4)"
        source = f"""FROM devices d LEFT JOIN current c USING (device_id)
                     WHERE {" AND ".join(where)}"""
        eligible = f"{needs} > 0 AND coalesce(c.n, 0) < {needs}"
        row = await conn.fetchrow(
            f"""
            WITH current AS (
                -- Devices already running some of these artifacts at these versions: few
                -- rows, found by scanning only the active healthy assignments of the names.
                SELECT s.device_id, count(*) AS n FROM assignments s
                JOIN unnest($5::text[], $6::text[]) AS a(name, version)
                  ON s.name = a.name AND s.version = a.version
                WHERE s.active AND s.state = 'healthy'
                GROUP BY s.device_id),
            sorted AS (
                -- The eligible devices' hashes in order (a sort of bare integers): the
                -- hash at rank ceil(p% of n) is where a wave ends. And the skip counts.
                SELECT array_agg(hashtextextended($1 || '/' || d.device_id, 0)
                                 ORDER BY hashtextextended($1 || '/' || d.device_id, 0))
                           FILTER (WHERE {eligible}) AS hs,
                       count(*) FILTER (WHERE {eligible}) AS n,
                       count(*) FILTER (WHERE {needs} = 0) AS no_artifact,
                       count(*) FILTER (WHERE {needs} > 0 AND coalesce(c.n, 0) >= {needs})
                           AS already
                {source}),
            cuts AS MATERIALIZED (  -- once, not once per row
                SELECT ARRAY(SELECT hs[ceil(p * n / 100)::bigint]
                             FROM unnest({percentages}) WITH ORDINALITY AS x(p, i)
                             ORDER BY i) AS t,
                       -- Two devices with the same hash astride a cut (a 64-bit collision)
                       -- would put one more device in the earlier wave than computed.
                       EXISTS (SELECT 1 FROM unnest({percentages}) AS x(p)
                               WHERE hs[ceil(p * n / 100)::bigint]
                                     = hs[ceil(p * n / 100)::bigint + 1]) AS tie
                FROM sorted),
            classified AS (
                SELECT d.device_id, hashtextextended($1 || '/' || d.device_id, 0) AS h,
                       CASE WHEN {needs} = 0 THEN 'NO_ARTIFACT_FOR_TYPE'
                            WHEN coalesce(c.n, 0) >= {needs} THEN 'ALREADY_RUNNING'
                            ELSE '' END AS skip
                {source}),
            inserted AS (
                INSERT INTO deployment_targets (deployment_id, device_id, wave, state,
                                                reason, updated_at, completed_at)
                SELECT $1, device_id,
                       CASE WHEN skip = '' THEN {wave} ELSE 0 END,
                       CASE WHEN skip = '' THEN 'waiting' ELSE 'skipped' END,
                       skip,
                       CASE WHEN skip = '' THEN NULL ELSE now() END,
                       CASE WHEN skip = '' THEN NULL ELSE now() END
                FROM classified, cuts
                ORDER BY device_id)  -- primary-key entries appended in order: far cheaper
            SELECT n, no_artifact, already, tie FROM sorted, cuts
            """,
            *params,
        )
        assert row is not None  # aggregates always return a row
        skipped: dict[str, int] = {}
        if row["no_artifact"]:
            skipped["NO_ARTIFACT_FOR_TYPE"] = row["no_artifact"]
        if row["already"]:
            skipped["ALREADY_RUNNING"] = row["already"]
        eligible_count: int = row["n"]
        total = eligible_count + sum(skipped.values())
        per_wave = _wave_sizes(new.percentages, eligible_count)
        if row["tie"]:
            waves = await conn.fetch(
                """SELECT wave, count(*) AS n FROM deployment_targets
                   WHERE deployment_id = $1 AND state = 'waiting' GROUP BY wave""",
                new.deployment_id,
            )
            per_wave = [0] * len(new.percentages)
            for w in waves:
                per_wave[w["wave"]] = w["n"]
        counter_rows = [(i, "waiting", n) for i, n in enumerate(per_wave) if n]
        counter_rows += [(0, "skipped", sum(skipped.values()))] if skipped else []
        to_update = sum(per_wave)
        if total == 0:
            raise NoTargets("no device matches the targets")
        if to_update == 0:
            detail = ", ".join(f"{n} {SKIP_SUMMARY[k]}" for k, n in sorted(skipped.items()))
            raise NoTargets(
                f"all {total} matching devices would be skipped (of them: {detail}); "
                "nothing to deploy"
            )
        await conn.executemany(
            """INSERT INTO deployment_counters AS c (deployment_id, wave, shard, state, count)
               VALUES ($1, $2, 0, $3, $4)
               ON CONFLICT (deployment_id, wave, shard, state)
               DO UPDATE SET count = c.count + excluded.count""",
            [(new.deployment_id, wave, state, n) for wave, state, n in counter_rows],
        )
        ends, running = [], 0
        for n in per_wave:
            running += n
            ends.append(running)
        await conn.execute(
            """UPDATE deployments SET target_device_count = $2, wave_ends = $3
               WHERE deployment_id = $1""",
            new.deployment_id,
            total,
            ends,
        )
    return Created(new.deployment_id, total, to_update, skipped, started_at)


DEPLOYMENT_COLUMNS = """d.deployment_id, d.update_id, d.state, d.config, d.device_filter,
    d.target_device_count, d.wave_ends, d.current_wave, d.awaiting_approval,
    d.wave_settled_at, d.acknowledged_failures, d.acknowledged_rolled_back, d.message,
    d.created_by, d.created_at, d.started_at, d.updated_at, d.completed_at,
    u.name AS update_name, u.version AS update_version"""


async def get_deployment(
    conn: Queryable, deployment_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""SELECT {DEPLOYMENT_COLUMNS} FROM deployments d JOIN updates u USING (update_id)
            WHERE d.deployment_id = $1 {"FOR UPDATE OF d" if for_update else ""}""",
        deployment_id,
    )
    return row


async def list_deployments(
    conn: Queryable,
    *,
    limit: int,
    descending: bool,
    after: tuple[dt.datetime, str] | None,
    states: Sequence[str],
    update_id: str,
    created_by: str,
) -> list[asyncpg.Record]:
    """Deployments by (created_at, deployment_id), newest first when ``descending``."""
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
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {DEPLOYMENT_COLUMNS} FROM deployments d JOIN updates u USING (update_id)
            WHERE {" AND ".join(where)}
            ORDER BY d.created_at {order}, d.deployment_id {order} LIMIT $1""",
        *params,
    )
    return rows


async def count_deployments(
    conn: Queryable, *, states: Sequence[str], update_id: str, created_by: str
) -> int:
    count: int = await conn.fetchval(
        """SELECT count(*) FROM deployments
           WHERE (cardinality($1::text[]) = 0 OR state = ANY($1::text[]))
             AND ($2 = '' OR update_id = $2) AND ($3 = '' OR created_by = $3)""",
        list(states),
        update_id,
        created_by,
    )
    return count


async def counts(conn: Queryable, deployment_id: str) -> Counts:
    """The deployment's counters, summed over shards: wave -> state -> devices."""
    rows = await conn.fetch(
        """SELECT wave, state, sum(count)::bigint AS n FROM deployment_counters
           WHERE deployment_id = $1 GROUP BY wave, state""",
        deployment_id,
    )
    by_wave: dict[int, dict[str, int]] = {}
    for r in rows:
        by_wave.setdefault(r["wave"], {})[r["state"]] = r["n"]
    return Counts(by_wave)


async def active_deployment_ids(conn: Queryable) -> list[str]:
    rows = await conn.fetch(
        """SELECT deployment_id FROM deployments
           WHERE state IN ('pending', 'running', 'paused', 'rolling_back')
           ORDER BY created_at"""
    )
    return [r["deployment_id"] for r in rows]


async def transition(
    conn: Connection,
    deployment_id: str,
    from_states: Sequence[str],
    to_state: str,
    **changes: Any,
) -> asyncpg.Record | None:
    """Move the deployment to ``to_state`` only if it is in one of ``from_states``; set
    the named columns too (``completed_at`` is set on entering an ended state). Returns
    the updated row, or None when it was not in one of those states (or does not exist).
    """
    sets = ["state = $3", "updated_at = now()"]
    params: list[Any] = [deployment_id, list(from_states), to_state]
    for column, value in changes.items():
        params.append(value)
        sets.append(f"{column} = ${len(params)}")
    if to_state in ENDED_STATES and "completed_at" not in changes:
        sets.append("completed_at = now()")
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""UPDATE deployments SET {", ".join(sets)}
            WHERE deployment_id = $1 AND state = ANY($2::text[])
            RETURNING deployment_id, state""",
        *params,
    )
    return row


async def device_statuses(conn: Queryable, deployment_id: str, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT t.device_id, coalesce(d.name, '') AS device_name, t.wave, t.state,
                  coalesce(t.assignment_ids[1], '') AS assignment_id, t.previous_version,
                  t.installed_version, t.reason, t.message, t.assigned_at, t.updated_at,
                  t.completed_at
           FROM deployment_targets t LEFT JOIN devices d USING (device_id)
           WHERE t.deployment_id = $1 ORDER BY t.device_id LIMIT $2""",
        deployment_id,
        limit,
    )
    return rows


APPLY_SAMPLE = 10_000
"""Apply durations are measured over at most this many healthy devices."""


async def apply_durations(
    conn: Queryable, deployment_id: str
) -> tuple[dt.timedelta | None, dt.timedelta | None]:
    """Median and 95th percentile of assignment -> healthy time."""
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
        return None, None
    return dt.timedelta(seconds=float(row["p50"])), dt.timedelta(seconds=float(row["p95"]))
