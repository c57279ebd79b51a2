"""Artifact assignments and the status reports devices send about them.

An assignment is one ``fleetd.device.v1.ArtifactAssignment`` a device should converge on,
stored serialized (``spec``) beside the columns the server queries. Creating or cancelling
assignments changes what a device is told on its heartbeat, so both bump the device's
desired-state revision in their transaction and return the new revisions: the caller
passes them to ``fleetd.storage.desired.mark_changed`` after the commit.

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

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from fleetd.device.v1 import agent_pb2
from fleetd.domain import lifecycle
from fleetd.storage import deployment_progress
from fleetd.storage.desired import bump_revisions
from fleetd.storage.types import Connection, Queryable

MAX_ID = 128
MAX_NAME = 128
MAX_VERSION = 128
MAX_REASON = 64
MAX_MESSAGE_BYTES = 4096
MAX_SEQUENCE = 2**63 - 1
MAX_ASSIGNMENTS_PER_CALL = 256


class ReportRefused(Exception):
    """A status report that is not stored; subclasses say why (and which gRPC code)."""


class InvalidReport(ReportRefused):
    """The report breaks a documented limit (INVALID_ARGUMENT)."""


class AssignmentNotFound(ReportRefused):
    """No such assignment for this device (NOT_FOUND); never says whether it exists
    for another device."""


class TransitionRefused(ReportRefused):
    """Stale or illegal transition, or a cancelled assignment (FAILED_PRECONDITION)."""


class SequenceConflict(ReportRefused):
    """The sequence was already used by a different report (FAILED_PRECONDITION)."""


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
    stored = [_checked_spec(spec) for spec in specs]
    if len(stored) > MAX_ASSIGNMENTS_PER_CALL:
        raise ValueError(f"at most {MAX_ASSIGNMENTS_PER_CALL} assignments per call")
    names = [spec.name for spec in stored]
    if len(set(names)) != len(names):
        raise ValueError("assignment names must be unique within one call")
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


def _checked_spec(spec: agent_pb2.ArtifactAssignment) -> agent_pb2.ArtifactAssignment:
    copy = agent_pb2.ArtifactAssignment()
    copy.CopyFrom(spec)
    if not copy.assignment_id:
        copy.assignment_id = new_assignment_id()
    for field, value, limit in (
        ("assignment_id", copy.assignment_id, MAX_ID),
        ("deployment_id", copy.deployment_id, MAX_ID),
        ("name", copy.name, MAX_NAME),
        ("version", copy.version, MAX_VERSION),
    ):
        if len(value) > limit or "\x00" in value:
            raise ValueError(f"{field} must be at most {limit} characters, without NUL")
    if not copy.name or not copy.version:
        raise ValueError("an assignment needs a name and a version")
    return copy


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


@dataclass(frozen=True, slots=True)
class _Report:
    """A status report as stored: what two reports must share to be the same report."""

    assignment_id: str
    state: str
    reason: str
    message: str
    installed_version: str
    observed_at: dt.datetime | None


def _report_from_request(request: agent_pb2.ReportArtifactStatusRequest) -> tuple[int, _Report]:
    if not 0 < request.sequence <= MAX_SEQUENCE:
        raise InvalidReport(f"sequence must be between 1 and {MAX_SEQUENCE}")
    if not request.assignment_id:
        raise InvalidReport("assignment_id is required")
    try:
        state = lifecycle.reported_state(request.state)
    except ValueError as exc:
        raise InvalidReport(str(exc)) from None
    _check_text("assignment_id", request.assignment_id, MAX_ID)
    _check_text("reason", request.reason, MAX_REASON)
    _check_text("installed_version", request.installed_version, MAX_VERSION)
    _check_text("message", request.message, MAX_MESSAGE_BYTES)
    if len(request.message.encode()) > MAX_MESSAGE_BYTES:
        raise InvalidReport(f"message must be at most {MAX_MESSAGE_BYTES} bytes (UTF-8)")
    observed_at = None
    if request.HasField("observed_at"):
        try:
            # Microseconds, as PostgreSQL keeps them, so a retry compares equal.
            observed_at = request.observed_at.ToDatetime(tzinfo=dt.UTC)
        except (ValueError, OverflowError):
            raise InvalidReport("observed_at is not a valid timestamp") from None
    report = _Report(
        request.assignment_id,
        state,
        request.reason,
        request.message,
        request.installed_version,
        observed_at,
    )
    return request.sequence, report


def _check_text(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidReport(f"{name} must be at most {limit} characters")
    if "\x00" in value:
        raise InvalidReport(f"{name} must not contain NUL characters")


async def record_status_report(
    conn: Connection, device_id: str, request: agent_pb2.ReportArtifactStatusRequest
) -> ReportOutcome:
    """Store a device's status report and move its assignment forward, durably, before
    the caller acknowledges it. See the module docstring for the rules.

    Raises:
        InvalidReport, AssignmentNotFound, TransitionRefused, SequenceConflict.
    """
    sequence, report = _report_from_request(request)
    try:
        return await _record(conn, device_id, sequence, report)
    except asyncpg.UniqueViolationError:
        # The same sequence was stored concurrently (about another assignment, whose row
        # our lock does not cover); read it back now that it is committed.
        return await _record(conn, device_id, sequence, report)


async def _record(
    conn: Connection, device_id: str, sequence: int, report: _Report
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
            if _Report(*stored) != report:
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
