"""The rollout engine's and the operator calls' bulk writes to a deployment's targets.

Every function here runs in one transaction and returns the desired-state revisions it
bumped: the caller passes them to ``fleetd.storage.desired.mark_changed`` after the
commit. They keep the lock order of ``fleetd.storage.deployment_progress`` (assignments,
then targets, then counters), so they never deadlock with status reports.

- :func:`assign_batch`: waiting -> pending for up to N devices of a wave, each given the
  assignments ``fleetd.domain.rollout.assign.plan_assignments`` decides, in the same
  transaction (the ``state = 'waiting'`` guard under ``FOR UPDATE SKIP LOCKED`` makes a
  second assignment of a device impossible, even across restarts);
- :func:`expire_timeouts`: devices past ``device_timeout`` -> failed (TIMEOUT), their
  assignments withdrawn so a late report cannot change the count;
- :func:`withdraw_unstarted`: waiting -> skipped, assigned-but-unstarted -> cancelled
  (CancelDeployment, RollbackDeployment).

A rollback's batches are ``fleetd.services.rollout.rollback`` (its statements:
``fleetd.storage.deployment_rollbacks``); they share :func:`supersede_and_insert` and
:func:`apply_moves` with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout.artifacts import Artifact
from fleetd.domain.rollout.assign import HeldAssignment, NewAssignment, plan_assignments
from fleetd.domain.rollout.counter_moves import CounterMoves
from fleetd.domain.rollout.decide import IN_FLIGHT, TargetStates, state_changes
from fleetd.storage.assignments import new_assignment_id
from fleetd.storage.deployment_progress import move_counts
from fleetd.storage.desired import bump_revisions
from fleetd.storage.types import Connection

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


async def apply_moves(conn: Connection, deployment_id: str, moves: CounterMoves) -> None:
    """Write a batch's counter deltas, wave by wave (last in its transaction)."""
    for wave in sorted(moves.by_wave):
        await move_counts(conn, deployment_id, wave, ENGINE_SHARD, moves.by_wave[wave])


async def supersede_and_insert(
    conn: Connection,
    deployment_id: str,
    superseded: Sequence[str],
    new: Sequence[NewAssignment],
) -> None:
    """Take ``superseded`` assignments out of the desired state and insert ``new`` as the
    deployment's, in bulk."""
    if superseded:
        await conn.execute(
            """UPDATE assignments SET active = false, updated_at = now()
               WHERE assignment_id = ANY($1::text[])""",
            list(superseded),
        )
    if new:
        await conn.execute(
            """INSERT INTO assignments (assignment_id, device_id, deployment_id, name,
                                        version, spec)
               SELECT a, d, $1, n, v, s
               FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])
                    AS x(a, d, n, v, s)""",
            deployment_id,
            [a.spec.assignment_id for a in new],
            [a.device_id for a in new],
            [a.spec.name for a in new],
            [a.spec.version for a in new],
            [a.spec.SerializeToString(deterministic=True) for a in new],
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
    moves = CounterMoves()
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
        actives = {
            (r["device_id"], r["name"]): _held(r)
            for r in await conn.fetch(
                """SELECT assignment_id, device_id, name, version, state, active, spec
                   FROM assignments
                   WHERE device_id = ANY($1::text[]) AND active
                     AND name = ANY($2::text[])
                   ORDER BY assignment_id FOR UPDATE""",
                ids,
                sorted({a.name for a in artifacts}),
            )
        }
        plan = plan_assignments(deployment_id, ids, types, actives, artifacts, new_assignment_id)
        await supersede_and_insert(conn, deployment_id, plan.superseded, plan.new)
        if plan.targets:
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
                [t.device_id for t in plan.targets],
                [t.assignment_id for t in plan.targets],
                [t.previous_assignment_id for t in plan.targets],
                [t.index for t in plan.targets],
                [t.previous_version for t in plan.targets],
            )
        for reason, devices in plan.skipped.items():
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
        await apply_moves(conn, deployment_id, moves)
        assigned = sorted({a.device_id for a in plan.new})
        batch.revisions = await bump_revisions(conn, assigned)
        batch.last_device_id = ids[-1]
    return batch


def _held(row: Any) -> HeldAssignment:
    """An ``assignments`` row (assignment_id, device_id, name, version, state, active,
    spec) as a record."""
    fields = dict(row)
    fields["spec"] = agent_pb2.ArtifactAssignment.FromString(fields["spec"])
    return HeldAssignment(**fields)


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
    moves = CounterMoves()
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
        await apply_moves(conn, deployment_id, moves)
        batch.changed = len(expired)
        batch.revisions = await bump_revisions(conn, sorted({r["device_id"] for r in withdrawn}))
    return batch


async def withdraw_unstarted(conn: Connection, deployment_id: str, reason: str) -> Batch:
    """In the caller's transaction: waiting devices -> SKIPPED, and assignments not
    started yet (pending) withdrawn; a device whose assignments were all withdrawn ->
    CANCELLED. ``changed`` counts both. Set-based: one pass whatever the size."""
    batch = Batch()
    moves = CounterMoves()
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
        changes = state_changes(await targets_with_assignment_states(conn, deployment_id, devices))
        for change in changes:
            moves.move(change.wave, change.old, change.new)
            batch.changed += change.new == "cancelled"
        if changes:
            await conn.execute(
                """UPDATE deployment_targets t
                   SET state = c.s, reason = $2, updated_at = now(),
                       completed_at = CASE WHEN c.s = 'cancelled' THEN now() END
                   FROM unnest($3::text[], $4::text[]) AS c(d, s)
                   WHERE t.deployment_id = $1 AND t.device_id = c.d""",
                deployment_id,
                reason,
                [c.device_id for c in changes],
                [c.new for c in changes],
            )
        batch.revisions = await bump_revisions(conn, devices)
    await apply_moves(conn, deployment_id, moves)
    return batch


async def targets_with_assignment_states(
    conn: Connection,
    deployment_id: str,
    device_ids: Sequence[str],
    *,
    without_rollback: bool = False,
) -> list[TargetStates]:
    """The devices' targets (locked), each with its assignments' current states, to derive
    their state after assignments were withdrawn; ``without_rollback`` leaves out targets
    that have rollback assignments (their state follows those)."""
    rows = await conn.fetch(
        """SELECT t.device_id, t.wave, t.state,
                  array(SELECT a.state FROM assignments a
                        WHERE a.assignment_id = ANY(t.assignment_ids)) AS states
           FROM deployment_targets t
           WHERE t.deployment_id = $1 AND t.device_id = ANY($2::text[])
             AND (NOT $3 OR t.rollback_assignment_ids IS NULL)
           FOR UPDATE""",
        deployment_id,
        list(device_ids),
        without_rollback,
    )
    return [TargetStates(r["device_id"], r["wave"], r["state"], tuple(r["states"])) for r in rows]
