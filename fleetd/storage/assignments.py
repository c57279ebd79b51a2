"""Artifact assignments and the status reports devices send about them.

An assignment is one ``fleetd.device.v1.ArtifactAssignment`` a device should converge on,
stored serialized (``spec``) beside the columns the server queries. Creating or cancelling
assignments changes what a device is told on its heartbeat, so both bump the device's
desired-state revision in their transaction and return the new revisions: the caller
passes them to ``fleetd.storage.desired.mark_changed`` after the commit. What an
assignment and a report may hold (every limit) is checked first, without IO, by
``fleetd.domain.rollout.assignment_rules``.

Status reports (:func:`record_status_report`) are stored before they are acknowledged and
are idempotent per ``(device_id, sequence)``, the agent's outbox sequence:

- a report whose sequence is already stored, with the same content, is a retry of a
  report whose acknowledgement was lost: answered ``duplicate`` and stored once;
- a report reusing a stored sequence with *different* content is
  :class:`SequenceConflict` (the agent lost its outbox counter; accepting it would
  silently drop one of the two reports);
- otherwise the assignment row is locked (``SELECT ... FOR UPDATE``, so concurrent
  reports about one assignment serialise) and the transition checked by
  ``fleetd.domain.lifecycle``: stale, backwards or after-the-end reports are refused, as are
  reports older (by sequence) than the last one accepted for the assignment.

A report accepted about an assignment of a deployment also moves that deployment's
progress (``fleetd.storage.deployment_progress.on_report``) in the same transaction.

Only the owning device may report on an assignment; any other assignment id, existing or
not, is :class:`AssignmentNotFound` (a device learns nothing about other devices).
Superseded assignments (``active = false`` but not cancelled) still accept reports: the
device may be midway through one when its successor arrives.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from fleetd.device.v1 import agent_pb2
from fleetd.domain import lifecycle
from fleetd.domain.rollout.assignment_rules import (
    AssignmentNotFound,
    InvalidReport,
    ReportRefused,
    SequenceConflict,
    StatusReport,
    TransitionRefused,
    checked_assignments,
    parsed_report,
)
from fleetd.storage import deployment_progress
from fleetd.storage.desired import bump_revisions
from fleetd.storage.types import Connection, Queryable

__all__ = [
    "AssignmentNotFound",
    "CreatedAssignments",
    "DeviceNotFound",
    "InvalidReport",
    "ReportOutcome",
    "ReportRefused",
    "SequenceConflict",
    "TransitionRefused",
    "active_assignments",
    "cancel_assignment",
    "create_assignments",
    "new_assignment_id",
    "record_status_report",
]
"""The refusals are defined with the rules (``fleetd.domain.rollout.assignment_rules``)
and re-exported: the device API catches them where it calls :func:`record_status_report`."""


class DeviceNotFound(LookupError):
    """No active (not offboarded) device with this id."""


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """A stored report: ``duplicate`` when its sequence had been stored before."""

    duplicate: bool


@dataclass(frozen=True, slots=True)
class CreatedAssignments:
    """What :func:`create_assignments` did: the assignments as stored (ids filled in) and
    the new desired-state revisions to pass to ``mark_changed`` after the commit."""

    assignments: list[agent_pb2.ArtifactAssignment]
    revisions: dict[str, int]


def new_assignment_id() -> str:
    return f"as_{secrets.token_hex(8)}"


async def create_assignments(
    conn: Connection,
    device_id: str,
    specs: Sequence[agent_pb2.ArtifactAssignment],
) -> CreatedAssignments:
    """Make ``specs`` part of the device's desired state, each superseding the active
    assignment with the same name (which becomes inactive, its state untouched).

    Specs without an ``assignment_id`` get a new one. Runs in a transaction of its own
    (a savepoint when the caller already holds one).

    Raises:
        DeviceNotFound: the device does not exist or was offboarded.
        ValueError: a spec has no name or version, names repeat, or a field is too long.
    """
    stored = checked_assignments(specs, new_assignment_id)
    names = [spec.name for spec in stored]
    async with conn.transaction():
        # First, so the device row is locked and its existence checked before any write.
        revisions = await bump_revisions(conn, [device_id])
        if device_id not in revisions:
            raise DeviceNotFound(device_id)
        await conn.execute(
            """UPDATE assignments SET active = false, updated_at = now()
               WHERE device_id = $1 AND active AND name = ANY($2::text[])""",
            device_id,
            names,
        )
        await conn.executemany(
            """INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version,
                                        spec)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [
                (
                    spec.assignment_id,
                    device_id,
                    spec.deployment_id,
                    spec.name,
                    spec.version,
                    spec.SerializeToString(deterministic=True),
                )
                for spec in stored
            ],
        )
    return CreatedAssignments(stored, revisions)


async def cancel_assignment(conn: Connection, assignment_id: str) -> dict[str, int]:
    """Cancel an assignment that has not ended: it leaves the desired state and refuses
    later reports. Returns the new revisions for ``mark_changed`` (empty when there was
    nothing to cancel: unknown, already ended or cancelled)."""
    async with conn.transaction():
        device_id = await conn.fetchval(
            """UPDATE assignments SET state = 'cancelled', active = false, updated_at = now()
               WHERE assignment_id = $1
                 AND state IN ('pending', 'downloading', 'verifying', 'applying')
               RETURNING device_id""",
            assignment_id,
        )
        if device_id is None:
            return {}
        return await bump_revisions(conn, [device_id])


async def active_assignments(conn: Queryable, device_id: str) -> list[agent_pb2.ArtifactAssignment]:
    """The device's current desired assignments, by name."""
    rows = await conn.fetch(
        "SELECT spec FROM assignments WHERE device_id = $1 AND active ORDER BY name",
        device_id,
    )
    return [agent_pb2.ArtifactAssignment.FromString(row["spec"]) for row in rows]


async def record_status_report(
    conn: Connection, device_id: str, request: agent_pb2.ReportArtifactStatusRequest
) -> ReportOutcome:
    """Store a device's status report and move its assignment forward, durably, before
    the caller acknowledges it. See the module docstring for the rules.

    Raises:
        InvalidReport, AssignmentNotFound, TransitionRefused, SequenceConflict.
    """
    sequence, report = parsed_report(request)
    try:
        return await _record(conn, device_id, sequence, report)
    except asyncpg.UniqueViolationError:
        # The same sequence was stored concurrently (about another assignment, whose row
        # our lock does not cover); read it back now that it is committed.
        return await _record(conn, device_id, sequence, report)


async def _record(
    conn: Connection, device_id: str, sequence: int, report: StatusReport
) -> ReportOutcome:
    async with conn.transaction():
        assignment = await conn.fetchrow(
            """SELECT state, last_sequence, deployment_id FROM assignments
               WHERE assignment_id = $1 AND device_id = $2 FOR UPDATE""",
            report.assignment_id,
            device_id,
        )
        stored = await conn.fetchrow(
            """SELECT assignment_id, state, reason, message, installed_version, observed_at
               FROM artifact_status_reports WHERE device_id = $1 AND sequence = $2""",
            device_id,
            sequence,
        )
        if stored is not None:
            if StatusReport(*stored) != report:
                raise SequenceConflict(
                    f"sequence {sequence} was already used by a different report; "
                    "sequences must not be reused"
                )
            return ReportOutcome(duplicate=True)
        if assignment is None:
            raise AssignmentNotFound(f"no assignment {report.assignment_id!r} for this device")
        try:
            lifecycle.check_transition(assignment["state"], report.state)
        except lifecycle.IllegalTransition as exc:
            raise TransitionRefused(str(exc)) from None
        last = assignment["last_sequence"]
        if last is not None and sequence < last:
            raise TransitionRefused(
                f"stale report: sequence {sequence} is older than the last accepted "
                f"report ({last}) for this assignment"
            )
        await conn.execute(
            """INSERT INTO artifact_status_reports
                   (device_id, sequence, assignment_id, state, reason, message,
                    installed_version, observed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            device_id,
            sequence,
            report.assignment_id,
            report.state,
            report.reason,
            report.message,
            report.installed_version,
            report.observed_at,
        )
        await conn.execute(
            """UPDATE assignments
               SET state = $2, reason = $3, message = $4, installed_version = $5,
                   last_sequence = $6, observed_at = $7, updated_at = now()
               WHERE assignment_id = $1""",
            report.assignment_id,
            report.state,
            report.reason,
            report.message,
            report.installed_version,
            sequence,
            report.observed_at,
        )
        if assignment["deployment_id"]:  # the deployment's progress, in this transaction
            await deployment_progress.on_report(
                conn,
                device_id=device_id,
                deployment_id=assignment["deployment_id"],
                assignment_id=report.assignment_id,
                state=report.state,
                reason=report.reason,
                message=report.message,
                installed_version=report.installed_version,
            )
    return ReportOutcome(duplicate=False)
