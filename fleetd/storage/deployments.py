"""Deployments in PostgreSQL: creation (targets resolved once, set-based) and the reads
the engine and the operator API share, as typed records.

:func:`create_deployment` resolves the targets with one ``INSERT ... SELECT`` in a
REPEATABLE READ transaction: the matching devices are classified (no artifact for their
type, already running the update: SKIPPED with a reason); the others are ranked by a
stable hash of deployment id and device id (``hashtextextended``), and wave i ends at the
hash of rank ceil(p_i% of them) (one sort of bare integers, not of rows); the rows are
then inserted in primary-key order (appending to the index), and the counters follow
from the counts by arithmetic (``fleetd.domain.rollout.waves``, the same rule). Nothing is
done per device in Python, and only the primary key is maintained, so a million targets
take seconds (bench/deploy_update.py).

State changes are ``fleetd.storage.deployment_states``; the operator API's listings
``fleetd.storage.deployment_listing``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetd.domain.rollout import reasons
from fleetd.domain.rollout.artifacts import Artifact
from fleetd.domain.rollout.decide import Counts
from fleetd.domain.rollout.waves import wave_sizes
from fleetd.storage.types import Connection, Queryable
from fleetd.v1 import update_pb2

SqlCondition = tuple[str, list[object]]

CREATE_WORK_MEM = "256MB"


class NoTargets(LookupError):
    """No device matched, or every matching device would be skipped."""


class UnknownDevices(LookupError):
    """Listed device ids that do not exist (or were offboarded)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


async def update_strategy(conn: Queryable, update_id: str) -> update_pb2.UpdateStrategy | None:
    """The update's default UpdateStrategy; None when there is no such update."""
    strategy: bytes | None = await conn.fetchval(
        "SELECT strategy FROM updates WHERE update_id = $1", update_id
    )
    return None if strategy is None else update_pb2.UpdateStrategy.FromString(strategy)


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
            skipped[reasons.NO_ARTIFACT_FOR_TYPE] = row["no_artifact"]
        if row["already"]:
            skipped[reasons.ALREADY_RUNNING] = row["already"]
        eligible_count: int = row["n"]
        total = eligible_count + sum(skipped.values())
        per_wave = wave_sizes(new.percentages, eligible_count)
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
            detail = ", ".join(f"{n} {reasons.SKIP_SUMMARY[k]}" for k, n in sorted(skipped.items()))
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


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A deployment as stored, with its update's name and version."""

    deployment_id: str
    update_id: str
    state: str
    config: update_pb2.DeploymentConfig
    """The effective configuration, resolved when the deployment was created."""
    device_filter: str
    target_device_count: int
    """Every resolved target, skipped ones included."""
    wave_ends: tuple[int, ...]
    """Cumulative targets to update once wave i is done (one entry per wave)."""
    current_wave: int
    awaiting_approval: bool
    wave_settled_at: dt.datetime | None
    acknowledged_failures: int
    acknowledged_rolled_back: int
    message: str
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    updated_at: dt.datetime
    completed_at: dt.datetime | None
    update_name: str
    update_version: str

    @property
    def total_waves(self) -> int:
        return len(self.wave_ends)


DEPLOYMENT_COLUMNS = """d.deployment_id, d.update_id, d.state, d.config, d.device_filter,
    d.target_device_count, d.wave_ends, d.current_wave, d.awaiting_approval,
    d.wave_settled_at, d.acknowledged_failures, d.acknowledged_rolled_back, d.message,
    d.created_by, d.created_at, d.started_at, d.updated_at, d.completed_at,
    u.name AS update_name, u.version AS update_version"""
"""The columns :func:`deployment_record` reads (deployments ``d`` joined to updates ``u``)."""


def deployment_record(row: Any) -> DeploymentRecord:
    """A row of :data:`DEPLOYMENT_COLUMNS` as a record."""
    fields = dict(row)
    fields["config"] = update_pb2.DeploymentConfig.FromString(fields["config"])
    fields["wave_ends"] = tuple(fields["wave_ends"])
    return DeploymentRecord(**fields)


async def get_deployment(
    conn: Queryable, deployment_id: str, *, for_update: bool = False
) -> DeploymentRecord | None:
    """The deployment; with ``for_update`` its row stays locked until the transaction ends."""
    row = await conn.fetchrow(
        f"""SELECT {DEPLOYMENT_COLUMNS} FROM deployments d JOIN updates u USING (update_id)
            WHERE d.deployment_id = $1 {"FOR UPDATE OF d" if for_update else ""}""",
        deployment_id,
    )
    return None if row is None else deployment_record(row)


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
    """Deployments the engine steps (pending, running, paused, rolling back), oldest first."""
    rows = await conn.fetch(
        """SELECT deployment_id FROM deployments
           WHERE state IN ('pending', 'running', 'paused', 'rolling_back')
           ORDER BY created_at"""
    )
    return [r["deployment_id"] for r in rows]


async def database_now(conn: Queryable) -> dt.datetime:
    """PostgreSQL's clock: the one every stored timestamp (``wave_settled_at``) comes from,
    so the engine measures windows against it rather than against this host's."""
    now: dt.datetime = await conn.fetchval("SELECT now()")
    return now
