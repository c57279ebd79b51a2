"""One batch of a rollback: devices that applied (or are applying) the update get their
previous version back, as new assignments of the deployment.

:func:`rollback_batch` composes the three layers in one transaction, in the lock order
every deployment writer keeps (the deployment row shared, then assignments, then targets,
then counters), so it never deadlocks with status reports or operator calls:

1. storage picks the next targets after a cursor (``fleetd.storage.deployment_rollbacks``);
2. under the deployment's shared row lock (only while it is ROLLING_BACK) it locks their
   assignments, reads the previous versions, and has the previous targets re-signed
   (:class:`fleetd.services.rollout.rollback_targets.RollbackTargets`);
3. ``fleetd.domain.rollout.rollback.plan_rollback`` decides what each device gets;
4. storage writes the plan; targets left without open work by a withdrawal take the state
   their assignments give them (``fleetd.domain.rollout.decide.state_changes``); the
   counters move and the devices' desired-state revisions are bumped.

The caller passes the returned revisions to ``mark_changed`` after the commit and the
returned ``last_device_id`` as the next cursor.
"""

from __future__ import annotations

from fleetd.domain.rollout.decide import state_changes
from fleetd.domain.rollout.rollback import plan_rollback
from fleetd.services.rollout.rollback_targets import RollbackTargets
from fleetd.storage import deployment_rollbacks as store
from fleetd.storage.assignments import new_assignment_id
from fleetd.storage.deployment_batches import (
    Batch,
    apply_moves,
    targets_with_assignment_states,
)
from fleetd.storage.deployment_states import state_for_share
from fleetd.storage.desired import bump_revisions
from fleetd.storage.types import Connection


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
    version) keeps the update when applied, or has its assignment withdrawn when not.
    ``processed`` 0: nothing left after the cursor (or the deployment stopped rolling
    back)."""
    batch = Batch()
    candidates = await store.rollback_candidates(conn, deployment_id, after_device_id, limit)
    if not candidates:
        return batch
    batch.processed = len(candidates)
    batch.last_device_id = candidates[-1].device_id
    async with conn.transaction():
        if await state_for_share(conn, deployment_id) != "rolling_back":
            batch.processed = 0
            return batch
        mains = await store.lock_assignments(
            conn, [a for c in candidates for a in c.assignment_ids]
        )
        previous = await store.assignment_specs(
            conn, [p for c in candidates for p in c.previous_assignment_ids if p]
        )
        # The previous versions' targets, re-signed with a current release counter so
        # agents accept them (fleetd/services/rollout/rollback_targets.py).
        paths = (
            await targets.paths_for(conn, deployment_id, list(previous.values()))
            if targets is not None
            else {}
        )
        locked = await store.lock_targets(conn, deployment_id, [c.device_id for c in candidates])
        plan = plan_rollback(deployment_id, locked, mains, previous, paths, new_assignment_id)
        await store.write_rollback(conn, deployment_id, plan)
        if plan.withdrawn:
            # Devices whose only open assignments were withdrawn end (usually CANCELLED).
            changes = state_changes(
                await targets_with_assignment_states(
                    conn, deployment_id, sorted(plan.withdrawn_devices), without_rollback=True
                )
            )
            for change in changes:
                plan.moves.move(change.wave, change.old, change.new)
            await store.end_withdrawn(conn, deployment_id, changes)
        await apply_moves(conn, deployment_id, plan.moves)
        batch.changed = len(plan.rollback_ids)
        batch.revisions = await bump_revisions(conn, plan.touched_devices)
    return batch
