"""What an assignment and a device's status report about it may hold, checked without IO.

``fleetd.storage.assignments`` stores assignments and reports; before it touches the
database it checks them here, so every limit has one home:

- an assignment (:func:`checked_assignments`) has a name and a version, bounded ids and
  names without NUL, a name unique within one call, and an id (a new one when unset);
- a status report (:func:`parsed_report`) has a sequence in 1 .. 2^63-1, an assignment id,
  a reported state, bounded text fields without NUL, a valid ``observed_at``.

A refused report raises a :class:`ReportRefused` subclass, which says which gRPC code
the device API answers; the storage rules (unknown assignment, stale transition, reused
sequence) raise the other subclasses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetd.device.v1 import agent_pb2
from fleetd.domain import lifecycle

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


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A status report as stored: what two reports must share to be the same report."""

    assignment_id: str
    state: str
    reason: str
    message: str
    installed_version: str
    observed_at: dt.datetime | None


def checked_assignments(
    specs: Sequence[agent_pb2.ArtifactAssignment], new_id: Callable[[], str]
) -> list[agent_pb2.ArtifactAssignment]:
    """Copies of ``specs`` as they will be stored (ids filled in by ``new_id``).

    Raises:
        ValueError: a spec has no name or version, names repeat, a field is too long, or
            there are more than :data:`MAX_ASSIGNMENTS_PER_CALL`.
    """
    stored = [_checked_spec(spec, new_id) for spec in specs]
    if len(stored) > MAX_ASSIGNMENTS_PER_CALL:
        raise ValueError(f"at most {MAX_ASSIGNMENTS_PER_CALL} assignments per call")
    names = [spec.name for spec in stored]
    if len(set(names)) != len(names):
        raise ValueError("assignment names must be unique within one call")
    return stored


def _checked_spec(
    spec: agent_pb2.ArtifactAssignment, new_id: Callable[[], str]
) -> agent_pb2.ArtifactAssignment:
    copy = agent_pb2.ArtifactAssignment()
    copy.CopyFrom(spec)
    if not copy.assignment_id:
        copy.assignment_id = new_id()
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


def parsed_report(request: agent_pb2.ReportArtifactStatusRequest) -> tuple[int, StatusReport]:
    """The report's sequence and content, checked against every limit.

    Raises:
        InvalidReport: naming the field and the limit.
    """
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
    report = StatusReport(
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
