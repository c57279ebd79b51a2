"""The lifecycle of an artifact assignment on a device, without IO.

An assignment starts ``pending`` (created by the server); the device then reports
``downloading -> verifying -> applying -> healthy | rolled_back | failed``. Reports only
move an assignment forward: a step may be skipped (``downloading -> failed`` when the
download breaks, ``pending -> healthy`` when the content was already installed), but a
report for the current state or an earlier one is stale, and the three outcomes are
final. ``cancelled`` is set by the server only (a rollback, or a cancel before the device
acted) and refuses every later report.

The storage layer (``fleetd.storage.assignments``) applies these rules under a row lock;
keeping them here lets them be tested and read on their own.
"""

from __future__ import annotations

from fleetd.device.v1 import agent_pb2

PENDING = "pending"
DOWNLOADING = "downloading"
VERIFYING = "verifying"
APPLYING = "applying"
HEALTHY = "healthy"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
CANCELLED = "cancelled"

TERMINAL = frozenset({HEALTHY, ROLLED_BACK, FAILED, CANCELLED})
"""States nothing moves out of."""

_RANK = {
    PENDING: 0,
    DOWNLOADING: 1,
    VERIFYING: 2,
    APPLYING: 3,
    HEALTHY: 4,
    ROLLED_BACK: 4,
    FAILED: 4,
}

_FROM_PROTO: dict[int, str] = {
    agent_pb2.ARTIFACT_STATE_DOWNLOADING: DOWNLOADING,
    agent_pb2.ARTIFACT_STATE_VERIFYING: VERIFYING,
    agent_pb2.ARTIFACT_STATE_APPLYING: APPLYING,
    agent_pb2.ARTIFACT_STATE_HEALTHY: HEALTHY,
    agent_pb2.ARTIFACT_STATE_ROLLED_BACK: ROLLED_BACK,
    agent_pb2.ARTIFACT_STATE_FAILED: FAILED,
}


class IllegalTransition(ValueError):
    """The reported state does not move the assignment forward; the message says why."""


def reported_state(value: int) -> str:
    """The stored name of a state a device reported.

    Raises:
        ValueError: for ARTIFACT_STATE_UNSPECIFIED or a value this server does not know.
    """
    try:
        return _FROM_PROTO[value]
    except KeyError:
        raise ValueError(
            f"state must be one of DOWNLOADING, VERIFYING, APPLYING, HEALTHY, ROLLED_BACK "
            f"or FAILED, got {value}"
        ) from None


def check_transition(current: str, reported: str) -> None:
    """Accept ``current -> reported`` or raise :class:`IllegalTransition`."""
    if current == CANCELLED:
        raise IllegalTransition("the assignment was cancelled by the server; reports are refused")
    if current in TERMINAL:
        raise IllegalTransition(f"the assignment already ended {current}; its state is final")
    if reported not in _RANK or reported == PENDING:
        raise IllegalTransition(f"{reported!r} cannot be reported by a device")
    if _RANK[reported] <= _RANK[current]:
        raise IllegalTransition(
            f"stale transition {current} -> {reported}: states only move forward "
            "(downloading -> verifying -> applying -> healthy | rolled_back | failed)"
        )
