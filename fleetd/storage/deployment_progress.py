"""Deployment progress from status reports: O(1) per report, whatever the deployment size.

``fleetd.storage.assignments.record_status_report`` calls :func:`on_report` in its own
transaction for a report about an assignment that belongs to a deployment, after the
assignment row moved. It locks the device's ``deployment_targets`` row, derives the
target's new state (``fleetd.domain.rollout.decide.target_state`` over the device's assignments
of that deployment, usually one) and, when it changed, moves ONE count between two states
in one shard of ``deployment_counters`` (:func:`move_counts`): a handful of single-row
statements, never a scan of the deployment.

Lock order, everywhere deployments are written: assignment rows, then target rows, then
counter rows (counter rows in state-name order within one statement). Reports follow it
naturally; the engine's batches lock the assignments they withdraw before the targets.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from fleetd.domain import lifecycle
from fleetd.domain.rollout.decide import ROLLBACK_PENDING, TERMINAL, target_state
from fleetd.storage.types import Connection

SHARDS = 16
"""Counter shards per (deployment, wave, state): concurrent reports about one deployment
spread over this many rows instead of queueing on one."""


def shard_of(device_id: str) -> int:
    return zlib.crc32(device_id.encode()) % SHARDS


async def move_counts(
    conn: Connection,
    deployment_id: str,
    wave: int,
    shard: int,
    deltas: Iterable[tuple[str, int]],
) -> None:
    """Add ``deltas`` (state, +/-n) to one shard of the wave's counters, in one statement
    (rows upserted in state order, so concurrent movers never deadlock)."""
    merged: dict[str, int] = {}
    for state, delta in deltas:
        merged[state] = merged.get(state, 0) + delta
    states = sorted(s for s, d in merged.items() if d)
    if not states:
        return
    await conn.execute(
        """INSERT INTO deployment_counters AS c (deployment_id, wave, shard, state, count)
           SELECT $1, $2, $3, m.state, m.delta
           FROM unnest($4::text[], $5::bigint[]) AS m(state, delta) ORDER BY m.state
           ON CONFLICT (deployment_id, wave, shard, state)
           DO UPDATE SET count = c.count + excluded.count""",
        deployment_id,
        wave,
        shard,
        states,
        [merged[s] for s in states],
    )


async def on_report(
    conn: Connection,
    *,
    device_id: str,
    deployment_id: str,
    assignment_id: str,
    state: str,
    reason: str,
    message: str,
    installed_version: str,
) -> None:
    """Reflect an accepted report in the deployment (see the module docstring). Reports
    about a target that already ended (timed out, cancelled) change nothing."""
    target = await conn.fetchrow(
        """SELECT wave, state, assignment_ids, rollback_assignment_ids
           FROM deployment_targets WHERE deployment_id = $1 AND device_id = $2 FOR UPDATE""",
        deployment_id,
        device_id,
    )
    if target is None:
        return
    old = target["state"]
    ids: list[str] = target["assignment_ids"] or []
    rollback_ids: list[str] = target["rollback_assignment_ids"] or []
    deltas: list[tuple[str, int]] = []
    if assignment_id in ids:
        if old in TERMINAL:
            return
        new = state if len(ids) == 1 else target_state(await _states(conn, ids))
    elif assignment_id in rollback_ids:
        if state not in lifecycle.TERMINAL:
            return
        states = await _states(conn, rollback_ids)
        if any(s not in lifecycle.TERMINAL for s in states):
            return
        restored = all(s == lifecycle.HEALTHY for s in states)
        new = "rolled_back" if restored else "failed"
        reason = "ROLLED_BACK" if restored else "ROLLBACK_FAILED"
        if not restored:
            message = f"rollback to the previous version ended {state}: {message}".strip()
        deltas.append((ROLLBACK_PENDING, -1))
    else:
        return
    ended = new in TERMINAL
    await conn.execute(
        """UPDATE deployment_targets
           SET state = $3, reason = $4, message = $5,
               installed_version = CASE WHEN $6 = '' THEN installed_version ELSE $6 END,
               updated_at = now(),
               completed_at = CASE WHEN $7 THEN now() ELSE completed_at END
           WHERE deployment_id = $1 AND device_id = $2""",
        deployment_id,
        device_id,
        new,
        reason,
        message,
        installed_version,
        ended,
    )
    if new != old:
        deltas += [(old, -1), (new, 1)]
    await move_counts(conn, deployment_id, target["wave"], shard_of(device_id), deltas)


async def _states(conn: Connection, assignment_ids: list[str]) -> list[str]:
    rows = await conn.fetch(
        "SELECT state FROM assignments WHERE assignment_id = ANY($1::text[])", assignment_ids
    )
    return [row["state"] for row in rows]
