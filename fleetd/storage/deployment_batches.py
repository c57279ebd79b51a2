"""The rollout engine's and the operator calls' bulk writes to a deployment's targets.

Every function here runs in one transaction and returns the desired-state revisions it
bumped: the caller passes them to ``fleetd.storage.desired.mark_changed`` after the
commit. They keep the lock order of ``fleetd.storage.deployment_progress`` (assignments,
then targets, then counters), so they never deadlock with status reports.

- :func:`assign_batch`: waiting -> pending for up to N devices of a wave, each given its
  assignments in the same transaction (the ``state = 'waiting'`` guard under ``FOR UPDATE
  SKIP LOCKED`` makes a second assignment of a device impossible, even across restarts);
- :func:`expire_timeouts`: devices past ``device_timeout`` -> failed (TIMEOUT), their
  assignments withdrawn so a late report cannot change the count;
- :func:`withdraw_unstarted`: waiting -> skipped, assigned-but-unstarted -> cancelled
  (CancelDeployment, RollbackDeployment);
- :func:`rollback_batch`: devices that applied (or are applying) the update get their
  previous version back as a new assignment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout.decide import IN_FLIGHT, ROLLBACK_PENDING, target_state
from fleetd.storage.assignments import new_assignment_id
from fleetd.storage.deployment_progress import move_counts
from fleetd.storage.deployments import Artifact, applicable
from fleetd.storage.desired import bump_revisions
from fleetd.storage.types import Connection

if TYPE_CHECKING:
    from fleetd.services.rollout.rollback_targets import RollbackTargets

ENGINE_SHARD = 0
"""Counter shard of the engine's and operators' moves (reports spread over the others)."""


@dataclass
class Batch:
    """What one batch did."""

    processed: int = 0
    """Targets it looked at (0: nothing left to do)."""
    changed: int = 0
    """Targets it assigned / expired / withdrew / rolled back."""
    skipped: int = 0
    revisions: dict[str, int] = field(default_factory=dict)
    last_device_id: str = ""


class _Moves:
    """Counter deltas per wave, applied at the end of the transaction (counters last)."""

    def __init__(self) -> None:
        self.by_wave: dict[int, list[tuple[str, int]]] = defaultdict(list)

    def move(self, wave: int, old: str, new: str, n: int = 1) -> None:
        if old != new:
            self.by_wave[wave] += [(old, -n), (new, n)]

    def add(self, wave: int, state: str, n: int) -> None:
        self.by_wave[wave].append((state, n))

    async def apply(self, conn: Connection, deployment_id: str) -> None:
        for wave in sorted(self.by_wave):
            await move_counts(conn, deployment_id, wave, ENGINE_SHARD, self.by_wave[wave])


def _previous_of(old: agent_pb2.ArtifactAssignment, state: str) -> agent_pb2.PreviousVersion:
    """What a device runs when ``old`` (its active assignment of a name) is superseded:
    ``old`` itself once healthy, else what ``old`` replaced (unset for a first install)."""
    if state == "healthy":
        return agent_pb2.PreviousVersion(
            version=old.version, sha256=old.sha256, target_path=old.target_path
        )
    return old.previous


async def _supersede_and_insert(
    conn: Connection,
    deployment_id: str,
    superseded: Sequence[str],
    rows: Sequence[tuple[str, str, str, str, bytes]],
) -> None:
    """Take ``superseded`` assignments out of the desired state and insert ``rows``
    (assignment id, device id, name, version, spec) as the deployment's, in bulk."""
    if superseded:
        await conn.execute(
            """UPDATE assignments SET active = false, updated_at = now()
               WHERE assignment_id = ANY($1::text[])""",
            list(superseded),
        )
    if rows:
        await conn.execute(
            """INSERT INTO assignments (assignment_id, device_id, deployment_id, name,
                                        version, spec)
               SELECT a, d, $1, n, v, s
               FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])
                    AS x(a, d, n, v, s)""",
            deployment_id,
            *(list(column) for column in zip(*rows, strict=True)),
        )


async def assign_batch(
    conn: Connection,
    deployment_id: str,
    wave: int,
    limit: int,
    artifacts: Sequence[Artifact],
    *,
    after_device_id: str = "",
) -> Batch:
    """Assign up to ``limit`` waiting devices of ``wave`` with ids above
    ``after_device_id`` (only while the deployment is running that wave); the caller
    passes the returned ``last_device_id`` next time, so a wave is walked once in
    primary-key order (``processed`` 0: no waiting device past the cursor). A device
    whose type no longer has an artifact, that was offboarded, or already runs every
    artifact is skipped instead."""
    batch = Batch()
    moves = _Moves()
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT state, current_wave FROM deployments WHERE deployment_id = $1 FOR SHARE",
            deployment_id,
        )
        if current is None or current["state"] != "running" or current["current_wave"] != wave:
            return batch
        picked = await conn.fetch(
            # MATERIALIZED: evaluated once. As a plain subquery the planner may rescan it,
            # and every rescan under SKIP LOCKED picks further rows past the LIMIT.
            """WITH pick AS MATERIALIZED (
                   SELECT device_id FROM deployment_targets
                   WHERE deployment_id = $1 AND device_id > $4 AND wave = $2
                     AND state = 'waiting'
                   ORDER BY device_id LIMIT $3 FOR UPDATE SKIP LOCKED)
               UPDATE deployment_targets t
               SET state = 'pending', assigned_at = now(), updated_at = now()
               FROM pick WHERE t.deployment_id = $1 AND t.device_id = pick.device_id
               RETURNING t.device_id""",
            deployment_id,
            wave,
            limit,
            after_device_id,
        )
        ids = sorted(r["device_id"] for r in picked)
        batch.processed = len(ids)
        if not ids:
            return batch
        types = {
            r["device_id"]: r["device_type"]
            for r in await conn.fetch(
                """SELECT device_id, device_type FROM devices
                   WHERE device_id = ANY($1::text[]) AND offboarded_at IS NULL""",
                ids,
            )
        }
        names = sorted({a.name for a in artifacts})
        actives = {
            (r["device_id"], r["name"]): r
            for r in await conn.fetch(
                """SELECT assignment_id, device_id, name, version, state, spec FROM assignments
                   WHERE device_id = ANY($1::text[]) AND active AND name = ANY($2::text[])
                   ORDER BY assignment_id FOR UPDATE""",
                ids,
                names,
            )
        }
        templates = {
            a.artifact_id: agent_pb2.ArtifactAssignment.FromString(a.assignment_template)
            for a in artifacts
        }
        rows: list[tuple[str, str, str, str, bytes]] = []
        superseded: list[str] = []
        per_target: list[tuple[str, str, str, int, str]] = []
        skipped: dict[str, list[str]] = defaultdict(list)
        for device_id in ids:
            if device_id not in types:
                skipped["DEVICE_OFFBOARDED"].append(device_id)
                continue
            fitting = applicable(artifacts, types[device_id])
            if not fitting:
                skipped["NO_ARTIFACT_FOR_TYPE"].append(device_id)
                continue
            index = 0
            for artifact in fitting:
                old = actives.get((device_id, artifact.name))
                if (
                    old is not None
                    and old["state"] == "healthy"
                    and (old["version"] == artifact.version)
                ):
                    continue  # this artifact is already in place
                spec = agent_pb2.ArtifactAssignment()
                spec.CopyFrom(templates[artifact.artifact_id])
                spec.assignment_id = new_assignment_id()
                spec.deployment_id = deployment_id
                previous_id, previous_version = "", ""
                if old is not None:
                    old_spec = agent_pb2.ArtifactAssignment.FromString(old["spec"])
                    previous = _previous_of(old_spec, old["state"])
                    if previous.version:
                        spec.previous.CopyFrom(previous)
                        previous_version = previous.version
                    if old["state"] == "healthy":
                        previous_id = old["assignment_id"]
                    superseded.append(old["assignment_id"])
                rows.append(
                    (
                        spec.assignment_id,
                        device_id,
                        spec.name,
                        spec.version,
                        spec.SerializeToString(deterministic=True),
                    )
                )
                per_target.append(
                    (device_id, spec.assignment_id, previous_id, index, previous_version)
                )
                index += 1
            if index == 0:
                skipped["ALREADY_RUNNING"].append(device_id)
        await _supersede_and_insert(conn, deployment_id, superseded, rows)
        if rows:
            await conn.execute(
                """UPDATE deployment_targets t
                   SET assignment_ids = u.ids, previous_assignment_ids = u.prev,
                       previous_version = u.pv
                   FROM (SELECT d, array_agg(a ORDER BY i) AS ids,
                                array_agg(p ORDER BY i) AS prev, max(v) AS pv
                         FROM unnest($2::text[], $3::text[], $4::text[], $5::int[],
                                     $6::text[]) AS x(d, a, p, i, v)
                         GROUP BY d) AS u
                   WHERE t.deployment_id = $1 AND t.device_id = u.d""",
                deployment_id,
                *(list(column) for column in zip(*per_target, strict=True)),
            )
        for reason, devices in skipped.items():
            await conn.execute(
                """UPDATE deployment_targets
                   SET state = 'skipped', reason = $3, completed_at = now(), updated_at = now()
                   WHERE deployment_id = $1 AND device_id = ANY($2::text[])""",
                deployment_id,
                devices,
                reason,
            )
            batch.skipped += len(devices)
        batch.changed = len(ids) - batch.skipped
        moves.add(wave, "waiting", -len(ids))
        moves.add(wave, "pending", batch.changed)
        moves.add(wave, "skipped", batch.skipped)
        await moves.apply(conn, deployment_id)
        assigned = sorted({d for _, d, *_ in rows})
        batch.revisions = await bump_revisions(conn, assigned)
        batch.last_device_id = ids[-1]
    return batch


async def expire_timeouts(
    conn: Connection, deployment_id: str, timeout_seconds: float, limit: int
) -> Batch:
    """Devices assigned more than ``timeout_seconds`` ago and still in flight become
    FAILED (reason TIMEOUT); their open assignments are withdrawn."""
    batch = Batch()
    candidates = await conn.fetch(
        """SELECT device_id, assignment_ids FROM deployment_targets
           WHERE deployment_id = $1 AND state = ANY($2::text[])
             AND assigned_at < now() - make_interval(secs => $3)
           ORDER BY device_id LIMIT $4""",
        deployment_id,
        list(IN_FLIGHT),
        timeout_seconds,
        limit,
    )
    if not candidates:
        return batch
    batch.processed = len(candidates)
    moves = _Moves()
    async with conn.transaction():
        withdrawn = await conn.fetch(
            """UPDATE assignments SET state = 'cancelled', active = false, reason = 'TIMEOUT',
                      updated_at = now()
               WHERE assignment_id = ANY($1::text[]) AND state = ANY($2::text[])
               RETURNING device_id""",
            [a for r in candidates for a in r["assignment_ids"] or ()],
            list(IN_FLIGHT),
        )
        expired = await conn.fetch(
            """WITH o AS MATERIALIZED (
                   SELECT device_id, wave, state FROM deployment_targets
                   WHERE deployment_id = $1 AND device_id = ANY($2::text[])
                     AND state = ANY($4::text[]) FOR UPDATE)
               UPDATE deployment_targets t
               SET state = 'failed', reason = 'TIMEOUT', completed_at = now(),
                   updated_at = now(),
                   message = 'no terminal state within device_timeout ('
                             || $3::text || ' s) of the assignment'
               FROM o WHERE t.deployment_id = $1 AND t.device_id = o.device_id
               RETURNING o.wave, o.state""",
            deployment_id,
            [r["device_id"] for r in candidates],
            f"{timeout_seconds:g}",
            list(IN_FLIGHT),
        )
        for row in expired:
            moves.move(row["wave"], row["state"], "failed")
        await moves.apply(conn, deployment_id)
        batch.changed = len(expired)
        batch.revisions = await bump_revisions(conn, sorted({r["device_id"] for r in withdrawn}))
    return batch


async def withdraw_unstarted(conn: Connection, deployment_id: str, reason: str) -> Batch:
    """In the caller's transaction: waiting devices -> SKIPPED, and assignments not
    started yet (pending) withdrawn; a device whose assignments were all withdrawn ->
    CANCELLED. ``changed`` counts both. Set-based: one pass whatever the size."""
    batch = Batch()
    moves = _Moves()
    skipped = await conn.fetch(
        """WITH s AS (
               UPDATE deployment_targets
               SET state = 'skipped', reason = $2, completed_at = now(), updated_at = now()
               WHERE deployment_id = $1 AND state = 'waiting' RETURNING wave)
           SELECT wave, count(*) AS n FROM s GROUP BY wave""",
        deployment_id,
        reason,
    )
    for row in skipped:
        moves.move(row["wave"], "waiting", "skipped", row["n"])
        batch.changed += row["n"]
    withdrawn = await conn.fetch(
        """UPDATE assignments a
           SET state = 'cancelled', active = false, reason = $2, updated_at = now()
           FROM (SELECT unnest(assignment_ids) AS id FROM deployment_targets
                 WHERE deployment_id = $1 AND state = 'pending') AS p
           WHERE a.assignment_id = p.id AND a.state = 'pending'
           RETURNING a.device_id""",
        deployment_id,
        reason,
    )
    devices = sorted({r["device_id"] for r in withdrawn})
    if devices:
        targets = await conn.fetch(
            """SELECT t.device_id, t.wave, t.state,
                      array(SELECT a.state FROM assignments a
                            WHERE a.assignment_id = ANY(t.assignment_ids)) AS states
               FROM deployment_targets t
               WHERE t.deployment_id = $1 AND t.device_id = ANY($2::text[]) FOR UPDATE""",
            deployment_id,
            devices,
        )
        changes: list[tuple[str, str]] = []
        for t in targets:
            new = target_state(list(t["states"]))
            if new != t["state"]:
                changes.append((t["device_id"], new))
                moves.move(t["wave"], t["state"], new)
                batch.changed += new == "cancelled"
        if changes:
            await conn.execute(
                """UPDATE deployment_targets t
                   SET state = c.s, reason = $2, updated_at = now(),
                       completed_at = CASE WHEN c.s = 'cancelled' THEN now() END
                   FROM unnest($3::text[], $4::text[]) AS c(d, s)
                   WHERE t.deployment_id = $1 AND t.device_id = c.d""",
                deployment_id,
                reason,
                [d for d, _ in changes],
                [s for _, s in changes],
            )
        batch.revisions = await bump_revisions(conn, devices)
    await moves.apply(conn, deployment_id)
    return batch


async def rollback_batch(
    conn: Connection,
    deployment_id: str,
    after_device_id: str,
    limit: int,
    targets: RollbackTargets | None = None,
) -> Batch:
    """Give up to ``limit`` devices (after ``after_device_id``, in id order) that applied
    or are applying the update their previous version back, as new assignments of this
    deployment (only while it is ROLLING_BACK). A device whose assignment of a name was
    superseded since (a newer deployment) keeps that; a first install (no previous
    version) keeps the update when applied, or has its assignment withdrawn when not."""
    batch = Batch()
    candidates = await conn.fetch(
        """SELECT device_id, assignment_ids, previous_assignment_ids FROM deployment_targets
           WHERE deployment_id = $1 AND device_id > $2
             AND state = ANY($3::text[]) AND rollback_assignment_ids IS NULL
             AND reason NOT IN ('NO_PREVIOUS_VERSION', 'SUPERSEDED')
           ORDER BY device_id LIMIT $4""",
        deployment_id,
        after_device_id,
        [*IN_FLIGHT, "healthy"],
        limit,
    )
    if not candidates:
        return batch
    batch.processed = len(candidates)
    batch.last_device_id = candidates[-1]["device_id"]
    moves = _Moves()
    async with conn.transaction():
        state = await conn.fetchval(
            "SELECT state FROM deployments WHERE deployment_id = $1 FOR SHARE", deployment_id
        )
        if state != "rolling_back":
            batch.processed = 0
            return batch
        main_ids = [a for r in candidates for a in r["assignment_ids"] or ()]
        previous_ids = [p for r in candidates for p in r["previous_assignment_ids"] or () if p]
        mains = {
            r["assignment_id"]: r
            for r in await conn.fetch(
                """SELECT assignment_id, state, active, spec FROM assignments
                   WHERE assignment_id = ANY($1::text[]) ORDER BY assignment_id FOR UPDATE""",
                main_ids,
            )
        }
        previous_specs = {
            r["assignment_id"]: agent_pb2.ArtifactAssignment.FromString(r["spec"])
            for r in await conn.fetch(
                "SELECT assignment_id, spec FROM assignments WHERE assignment_id = ANY($1::text[])",
                previous_ids,
            )
        }
        # The previous versions' targets, re-signed with a current release counter so
        # agents accept them (fleetd/services/rollout/rollback_targets.py).
        paths = (
            await targets.paths_for(conn, deployment_id, list(previous_specs.values()))
            if targets is not None
            else {}
        )
        rows = await conn.fetch(
            """SELECT device_id, wave, state, assignment_ids, previous_assignment_ids
               FROM deployment_targets
               WHERE deployment_id = $1 AND device_id = ANY($2::text[])
                 AND state = ANY($3::text[]) AND rollback_assignment_ids IS NULL
               FOR UPDATE""",
            deployment_id,
            [r["device_id"] for r in candidates],
            [*IN_FLIGHT, "healthy"],
        )
        inserts: list[tuple[str, str, str, str, bytes]] = []
        supersede: list[str] = []
        withdraw: list[str] = []
        withdrawn_devices: set[str] = set()
        rollback_ids: dict[str, list[str]] = {}
        notes: dict[str, tuple[str, str]] = {}
        for t in rows:
            device_id = t["device_id"]
            ids: list[str] = []
            kept = superseded = 0
            for main_id, prev_id in zip(
                t["assignment_ids"] or (), t["previous_assignment_ids"] or (), strict=True
            ):
                main = mains.get(main_id)
                if main is None:
                    continue
                if not main["active"]:
                    superseded += 1  # a newer assignment replaced it: leave that alone
                    continue
                current = agent_pb2.ArtifactAssignment.FromString(main["spec"])
                previous = previous_specs.get(prev_id)
                if previous is None:
                    if main["state"] in IN_FLIGHT:
                        withdraw.append(main_id)
                        withdrawn_devices.add(device_id)
                    else:
                        kept += 1
                    continue
                spec = agent_pb2.ArtifactAssignment()
                spec.CopyFrom(previous)
                spec.target_path = paths.get(previous.target_path, previous.target_path)
                spec.assignment_id = new_assignment_id()
                spec.deployment_id = deployment_id
                spec.previous.CopyFrom(
                    agent_pb2.PreviousVersion(
                        version=current.version,
                        sha256=current.sha256,
                        target_path=current.target_path,
                    )
                )
                supersede.append(main_id)
                inserts.append(
                    (
                        spec.assignment_id,
                        device_id,
                        spec.name,
                        spec.version,
                        spec.SerializeToString(deterministic=True),
                    )
                )
                ids.append(spec.assignment_id)
            if ids:
                rollback_ids[device_id] = ids
                moves.add(t["wave"], ROLLBACK_PENDING, 1)
            elif kept:
                notes[device_id] = (
                    "NO_PREVIOUS_VERSION",
                    "first install: there is no previous version to return to; "
                    "the device keeps the update",
                )
            elif superseded:
                notes[device_id] = ("SUPERSEDED", "a newer assignment replaced this one")
        if withdraw:
            await conn.execute(
                """UPDATE assignments SET state = 'cancelled', active = false,
                          reason = 'ROLLED_BACK', updated_at = now()
                   WHERE assignment_id = ANY($1::text[]) AND state = ANY($2::text[])""",
                withdraw,
                list(IN_FLIGHT),
            )
        await _supersede_and_insert(conn, deployment_id, supersede, inserts)
        if inserts:
            await conn.execute(
                """UPDATE deployment_targets t
                   SET rollback_assignment_ids = string_to_array(u.ids, ','),
                       message = 'rolling back to ' || t.previous_version, updated_at = now()
                   FROM unnest($2::text[], $3::text[]) AS u(d, ids)
                   WHERE t.deployment_id = $1 AND t.device_id = u.d""",
                deployment_id,
                list(rollback_ids),
                [",".join(v) for v in rollback_ids.values()],
            )
        if notes:
            await conn.execute(
                """UPDATE deployment_targets t SET reason = u.r, message = u.m,
                          updated_at = now()
                   FROM unnest($2::text[], $3::text[], $4::text[]) AS u(d, r, m)
                   WHERE t.deployment_id = $1 AND t.device_id = u.d""",
                deployment_id,
                list(notes),
                [r for r, _ in notes.values()],
                [m for _, m in notes.values()],
            )
        if withdraw:
            # Devices whose only open assignments were withdrawn end CANCELLED.
            rows = await conn.fetch(
                """SELECT t.device_id, t.wave, t.state,
                          array(SELECT a.state FROM assignments a
                                WHERE a.assignment_id = ANY(t.assignment_ids)) AS states
                   FROM deployment_targets t
                   WHERE t.deployment_id = $1 AND t.device_id = ANY($2::text[])
                     AND t.rollback_assignment_ids IS NULL""",
                deployment_id,
                sorted(withdrawn_devices),
            )
            for r in rows:
                new = target_state(list(r["states"]))
                if new != r["state"]:
                    await conn.execute(
                        """UPDATE deployment_targets SET state = $3, reason = 'ROLLED_BACK',
                                  completed_at = now(), updated_at = now()
                           WHERE deployment_id = $1 AND device_id = $2""",
                        deployment_id,
                        r["device_id"],
                        new,
                    )
                    moves.move(r["wave"], r["state"], new)
        await moves.apply(conn, deployment_id)
        batch.changed = len(rollback_ids)
        batch.revisions = await bump_revisions(conn, sorted({*rollback_ids, *withdrawn_devices}))
    return batch
