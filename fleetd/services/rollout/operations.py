"""Operator actions on a deployment (pause, resume, approve, cancel, rollback), shared by
the control API and the engine (auto_rollback). Each is one transaction that changes the
state only from the states it allows (``fleetd.storage.deployment_states.transition``,
under the deployment's row lock) and raises :class:`IllegalState` otherwise; events are
published and desired-state revisions marked after the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fleetd.domain.rollout import reasons
from fleetd.storage import deployment_batches, deployment_rollbacks, deployments, events
from fleetd.storage.deployment_states import transition
from fleetd.storage.deployments import DeploymentRecord
from fleetd.storage.desired import mark_changed
from fleetd.storage.errors import REDIS_ERRORS
from fleetd.storage.types import Connection, Pool, Redis

log = logging.getLogger(__name__)

STARTED = "deployment.started"
WAVE_STARTED = "deployment.wave_started"
AWAITING_APPROVAL = "deployment.awaiting_approval"
PAUSED = "deployment.paused"
RESUMED = "deployment.resumed"
COMPLETED = "deployment.completed"
FAILED = "deployment.failed"
CANCELLED = "deployment.cancelled"
ROLLING_BACK = "deployment.rolling_back"
ROLLED_BACK = "deployment.rolled_back"


class IllegalState(Exception):
    """The deployment is not in a state that allows the action (FAILED_PRECONDITION)."""


class NotFound(LookupError):
    """No such deployment."""


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str
    devices: int = 0
    """Devices affected: cancelled/skipped (cancel) or to be rolled back (rollback)."""


async def announce(
    redis: Redis,
    fleet: str,
    event_type: str,
    deployment_id: str,
    *,
    update_id: str = "",
    state: str = "",
    wave: int | None = None,
    message: str = "",
) -> None:
    """Publish a deployment event (best effort: logged when Redis cannot take it)."""
    fields = {
        "deployment_id": deployment_id,
        "update_id": update_id,
        "state": state,
        "message": message[:1024],
    }
    if wave is not None:
        fields["wave"] = str(wave)
    try:
        await events.publish(redis, fleet, [events.Event(event_type, "", fields=fields)])
    except REDIS_ERRORS as exc:
        log.warning("%s event for %s not published: %s", event_type, deployment_id, exc)


async def _locked(conn: Connection, deployment_id: str) -> DeploymentRecord:
    deployment = await deployments.get_deployment(conn, deployment_id, for_update=True)
    if deployment is None:
        raise NotFound(deployment_id)
    return deployment


def _refuse(action: str, deployment: DeploymentRecord, allowed: str) -> IllegalState:
    return IllegalState(
        f"cannot {action} deployment {deployment.deployment_id}: "
        f"it is {deployment.state} ({allowed})"
    )


async def pause(pool: Pool, redis: Redis, fleet: str, deployment_id: str, reason: str) -> Outcome:
    """RUNNING -> PAUSED; idempotent on PAUSED."""
    async with pool.acquire() as conn, conn.transaction():
        deployment = await _locked(conn, deployment_id)
        if deployment.state == "paused":
            return Outcome("paused")
        if deployment.state not in ("running", "pending"):
            raise _refuse("pause", deployment, "only a pending or running deployment can be paused")
        message = f"paused by an operator: {reason}" if reason else "paused by an operator"
        await transition(conn, deployment_id, [deployment.state], "paused", message=message)
    await announce(
        redis,
        fleet,
        PAUSED,
        deployment_id,
        update_id=deployment.update_id,
        state="paused",
        wave=deployment.current_wave,
        message=message,
    )
    return Outcome("paused")


async def resume(pool: Pool, redis: Redis, fleet: str, deployment_id: str) -> Outcome:
    """PAUSED (by an operator) or FAILED (halted) -> RUNNING, acknowledging every failure
    and rollback seen so far (the budget counts only new ones). Idempotent on RUNNING.
    A deployment awaiting wave approval is resumed by ApproveWave, not here."""
    async with pool.acquire() as conn, conn.transaction():
        deployment = await _locked(conn, deployment_id)
        if deployment.state == "running":
            return Outcome("running")
        if deployment.state not in ("paused", "failed") or deployment.awaiting_approval:
            allowed = (
                "it awaits approval of its next wave: use ApproveWave"
                if deployment.awaiting_approval
                else "only a paused or halted (failed) deployment can be resumed"
            )
            raise _refuse("resume", deployment, allowed)
        counts = await deployments.counts(conn, deployment_id)
        failed, rolled_back = counts.get("failed"), counts.get("rolled_back")
        await transition(
            conn,
            deployment_id,
            [deployment.state],
            "running",
            acknowledged_failures=failed + rolled_back,
            acknowledged_rolled_back=rolled_back,
            completed_at=None,
            message=f"resumed; {failed + rolled_back} failure(s) acknowledged",
        )
    await announce(
        redis,
        fleet,
        RESUMED,
        deployment_id,
        update_id=deployment.update_id,
        state="running",
        wave=deployment.current_wave,
        message=f"{failed + rolled_back} failure(s) acknowledged",
    )
    return Outcome("running")


async def approve(pool: Pool, redis: Redis, fleet: str, deployment_id: str, wave: int) -> Outcome:
    """Start ``wave``, which must be the one awaiting approval (current_wave + 1)."""
    async with pool.acquire() as conn, conn.transaction():
        deployment = await _locked(conn, deployment_id)
        if not deployment.awaiting_approval or deployment.state != "paused":
            raise _refuse("approve a wave of", deployment, "no wave is awaiting approval")
        if wave != deployment.current_wave + 1:
            raise IllegalState(
                f"wave {wave} is not the one awaiting approval: approve wave "
                f"{deployment.current_wave + 1}"
            )
        await transition(
            conn,
            deployment_id,
            ["paused"],
            "running",
            current_wave=wave,
            awaiting_approval=False,
            wave_settled_at=None,
            message=f"wave {wave} approved",
        )
    await announce(
        redis,
        fleet,
        WAVE_STARTED,
        deployment_id,
        update_id=deployment.update_id,
        state="running",
        wave=wave,
        message="approved",
    )
    return Outcome("running")


async def cancel(pool: Pool, redis: Redis, fleet: str, deployment_id: str, reason: str) -> Outcome:
    """-> CANCELLED from any active state but ROLLING_BACK: waiting devices are skipped,
    assignments not started are withdrawn; devices applying finish, devices that
    converged keep the update."""
    async with pool.acquire() as conn, conn.transaction():
        deployment = await _locked(conn, deployment_id)
        if deployment.state not in ("pending", "running", "paused"):
            raise _refuse("cancel", deployment, "only a pending, running or paused deployment")
        message = f"cancelled: {reason}" if reason else "cancelled by an operator"
        await transition(
            conn,
            deployment_id,
            [deployment.state],
            "cancelled",
            message=message,
            awaiting_approval=False,
        )
        batch = await deployment_batches.withdraw_unstarted(conn, deployment_id, reasons.CANCELLED)
    await mark_changed(redis, batch.revisions)
    await announce(
        redis,
        fleet,
        CANCELLED,
        deployment_id,
        update_id=deployment.update_id,
        state="cancelled",
        wave=deployment.current_wave,
        message=message,
    )
    return Outcome("cancelled", batch.changed)


async def start_rollback(
    pool: Pool,
    redis: Redis,
    fleet: str,
    deployment_id: str,
    reason: str,
    *,
    force: bool,
) -> Outcome:
    """-> ROLLING_BACK: waiting devices skipped, unstarted assignments withdrawn, and the
    devices that applied or are applying the update counted; the engine then gives them
    their previous version back in batches, and the deployment becomes ROLLED_BACK when
    they all reported. Without ``force`` only a halted (FAILED) or PAUSED deployment
    can be rolled back; with it also a RUNNING or COMPLETED one (and CANCELLED)."""
    allowed = ["failed", "paused"] + (
        ["pending", "running", "completed", "cancelled"] if force else []
    )
    async with pool.acquire() as conn, conn.transaction():
        deployment = await _locked(conn, deployment_id)
        if deployment.state not in allowed:
            hint = "" if force else "; pass force=true to roll back a running or completed one"
            raise _refuse("roll back", deployment, f"allowed from {', '.join(allowed)}{hint}")
        message = f"rolling back: {reason}" if reason else "rolling back"
        await transition(
            conn,
            deployment_id,
            [deployment.state],
            "rolling_back",
            message=message,
            awaiting_approval=False,
            completed_at=None,
        )
        batch = await deployment_batches.withdraw_unstarted(
            conn, deployment_id, reasons.ROLLED_BACK
        )
        devices = await deployment_rollbacks.devices_to_return(conn, deployment_id)
    await mark_changed(redis, batch.revisions)
    await announce(
        redis,
        fleet,
        ROLLING_BACK,
        deployment_id,
        update_id=deployment.update_id,
        state="rolling_back",
        wave=deployment.current_wave,
        message=message,
    )
    return Outcome("rolling_back", devices)
