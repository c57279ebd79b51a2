"""The statements of a rollback batch; what they write is decided above storage.

``fleetd.services.rollout.rollback`` runs a batch in one transaction: it reads the next
targets (:func:`rollback_candidates`), locks their assignments and targets in the lock
order of ``fleetd.storage.deployment_progress`` (assignments, then targets, then
counters), has ``fleetd.domain.rollout.rollback.plan_rollback`` decide, and writes the
plan (:func:`write_rollback`, :func:`end_withdrawn`). Which targets a rollback takes and
leaves alone is the domain's rule (``ROLLBACK_FROM``, ``LEFT_ALONE``); these statements
only select by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout import reasons
from fleetd.domain.rollout.assign import HeldAssignment
from fleetd.domain.rollout.decide import IN_FLIGHT, StateChange
from fleetd.domain.rollout.rollback import (
    COUNTED_AT_START,
    LEFT_ALONE,
    ROLLBACK_FROM,
    RollbackPlan,
    RollbackTarget,
)
from fleetd.storage.deployment_batches import supersede_and_insert
from fleetd.storage.types import Connection, Queryable


def _target(row: Any) -> RollbackTarget:
    return RollbackTarget(
        row["device_id"],
        row["wave"],
        row["state"],
        tuple(row["assignment_ids"] or ()),
        tuple(row["previous_assignment_ids"] or ()),
    )


async def rollback_candidates(
    conn: Queryable, deployment_id: str, after_device_id: str, limit: int
) -> list[RollbackTarget]:
    """Up to ``limit`` targets after ``after_device_id`` (in id order) a rollback still
    has to look at: applied or applying, without rollback assignments, not left alone."""
    rows = await conn.fetch(
        """SELECT device_id, wave, state, assignment_ids, previous_assignment_ids
           FROM deployment_targets
           WHERE deployment_id = $1 AND device_id > $2
             AND state = ANY($3::text[]) AND rollback_assignment_ids IS NULL
             AND reason <> ALL($5::text[])
           ORDER BY device_id LIMIT $4""",
        deployment_id,
        after_device_id,
        list(ROLLBACK_FROM),
        limit,
        list(LEFT_ALONE),
    )
    return [_target(r) for r in rows]


async def lock_targets(
    conn: Connection, deployment_id: str, device_ids: Sequence[str]
) -> list[RollbackTarget]:
    """The devices' targets still to roll back, locked (read again: a report may have
    moved them since they were picked)."""
    rows = await conn.fetch(
        """SELECT device_id, wave, state, assignment_ids, previous_assignment_ids
           FROM deployment_targets
           WHERE deployment_id = $1 AND device_id = ANY($2::text[])
             AND state = ANY($3::text[]) AND rollback_assignment_ids IS NULL
           FOR UPDATE""",
        deployment_id,
        list(device_ids),
        list(ROLLBACK_FROM),
    )
    return [_target(r) for r in rows]


async def lock_assignments(
    conn: Connection, assignment_ids: Sequence[str]
) -> dict[str, HeldAssignment]:
    """The assignments, locked in id order (the order every writer locks them in)."""
    rows = await conn.fetch(
        """SELECT assignment_id, device_id, name, version, state, active, spec
           FROM assignments
           WHERE assignment_id = ANY($1::text[]) ORDER BY assignment_id FOR UPDATE""",
        list(assignment_ids),
    )
    return {
        r["assignment_id"]: HeldAssignment(
            r["assignment_id"],
            r["device_id"],
            r["name"],
            r["version"],
            r["state"],
            r["active"],
            agent_pb2.ArtifactAssignment.FromString(r["spec"]),
        )
        for r in rows
    }


async def assignment_specs(
    conn: Queryable, assignment_ids: Sequence[str]
) -> dict[str, agent_pb2.ArtifactAssignment]:
    """The assignments' specs by id (not locked: a spec never changes)."""
    rows = await conn.fetch(
        "SELECT assignment_id, spec FROM assignments WHERE assignment_id = ANY($1::text[])",
        list(assignment_ids),
    )
    return {r["assignment_id"]: agent_pb2.ArtifactAssignment.FromString(r["spec"]) for r in rows}


async def write_rollback(conn: Connection, deployment_id: str, plan: RollbackPlan) -> None:
    """Write ``plan``'s assignments and notes, in the caller's transaction: withdraw the
    first installs still in flight, replace the rolled-back assignments by the new ones,
    and record each target's rollback assignments or why it has none. The counters and
    revisions are the caller's to write, last."""
    if plan.withdrawn:
        await conn.execute(
            """UPDATE assignments SET state = 'cancelled', active = false,
                      reason = $3, updated_at = now()
               WHERE assignment_id = ANY($1::text[]) AND state = ANY($2::text[])""",
            plan.withdrawn,
            list(IN_FLIGHT),
            reasons.ROLLED_BACK,
        )
    await supersede_and_insert(conn, deployment_id, plan.superseded, plan.new)
    if plan.rollback_ids:
        await conn.execute(
            """UPDATE deployment_targets t
               SET rollback_assignment_ids = string_to_array(u.ids, ','),
                   message = 'rolling back to ' || t.previous_version, updated_at = now()
               FROM unnest($2::text[], $3::text[]) AS u(d, ids)
               WHERE t.deployment_id = $1 AND t.device_id = u.d""",
            deployment_id,
            list(plan.rollback_ids),
            [",".join(ids) for ids in plan.rollback_ids.values()],
        )
    if plan.notes:
        await conn.execute(
            """UPDATE deployment_targets t SET reason = u.r, message = u.m,
                      updated_at = now()
               FROM unnest($2::text[], $3::text[], $4::text[]) AS u(d, r, m)
               WHERE t.deployment_id = $1 AND t.device_id = u.d""",
            deployment_id,
            list(plan.notes),
            [note.reason for note in plan.notes.values()],
            [note.message for note in plan.notes.values()],
        )


async def end_withdrawn(
    conn: Connection, deployment_id: str, changes: Sequence[StateChange]
) -> None:
    """Targets whose open assignments a rollback withdrew take their new state (reason
    ROLLED_BACK, completed now)."""
    if not changes:
        return
    await conn.execute(
        """UPDATE deployment_targets t
           SET state = c.s, reason = $2, completed_at = now(), updated_at = now()
           FROM unnest($3::text[], $4::text[]) AS c(d, s)
           WHERE t.deployment_id = $1 AND t.device_id = c.d""",
        deployment_id,
        reasons.ROLLED_BACK,
        [c.device_id for c in changes],
        [c.new for c in changes],
    )


async def devices_to_return(conn: Queryable, deployment_id: str) -> int:
    """Targets that applied (or are applying) the update and have a previous version to
    return to: what RollbackDeployment answers it will roll back."""
    count: int = await conn.fetchval(
        """SELECT count(*) FROM deployment_targets
           WHERE deployment_id = $1 AND rollback_assignment_ids IS NULL
             AND state = ANY($2::text[])
             AND EXISTS (SELECT 1 FROM unnest(previous_assignment_ids) AS p
                         WHERE p <> '')""",
        deployment_id,
        list(COUNTED_AT_START),
    )
    return count


async def reason_counts(
    conn: Queryable, deployment_id: str, wanted: Sequence[str]
) -> dict[str, int]:
    """How many of the deployment's targets carry each of the ``wanted`` reasons (a
    reason no target carries is absent)."""
    rows = await conn.fetch(
        """SELECT reason, count(*) AS n FROM deployment_targets
           WHERE deployment_id = $1 AND reason = ANY($2::text[])
           GROUP BY reason""",
        deployment_id,
        list(wanted),
    )
    return {r["reason"]: r["n"] for r in rows}
