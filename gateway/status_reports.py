"""``AgentService/ReportArtifactStatus``: a device's progress on one of its assignments.

The rules (idempotency by sequence, forward-only transitions, who may report on what)
live in ``fleetd.storage.assignments``; this module maps their outcomes to gRPC codes:

- OK: stored, or a retry of a stored report (``duplicate`` says which);
- INVALID_ARGUMENT: a field over its limit, an unspecified state, sequence 0;
- NOT_FOUND: the assignment is unknown or another device's;
- FAILED_PRECONDITION: a stale, backwards or after-the-end transition, a cancelled
  assignment, a sequence reused by a different report;
- PERMISSION_DENIED: the device was offboarded;
- UNAVAILABLE: PostgreSQL cannot be reached (the agent keeps the report in its outbox).

A report is acknowledged only after its transaction committed.
"""

from __future__ import annotations

from typing import Any

import grpc

from fleetd.device.v1 import agent_pb2
from fleetd.storage.assignments import (
    AssignmentNotFound,
    InvalidReport,
    ReportRefused,
    record_status_report,
)
from fleetd.storage.errors import STORE_DOWN
from fleetd.storage.types import Pool
from gateway.aborts import abort, offboarded, store_down
from gateway.device_auth import CallerDevice


def _code(exc: ReportRefused) -> grpc.StatusCode:
    if isinstance(exc, InvalidReport):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, AssignmentNotFound):
        return grpc.StatusCode.NOT_FOUND
    return grpc.StatusCode.FAILED_PRECONDITION


class StatusReports:
    """Stores status reports in PostgreSQL for ``AgentService``."""

    def __init__(self, pool: Pool, *, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout

    async def report(
        self,
        caller: CallerDevice,
        request: agent_pb2.ReportArtifactStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> agent_pb2.ReportArtifactStatusResponse:
        if caller.offboarded:
            await offboarded(context)
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
                outcome = await record_status_report(conn, caller.device_id, request)
        except ReportRefused as exc:
            await abort(context, _code(exc), str(exc))
        except STORE_DOWN as exc:
            await store_down(
                context, exc, "the status report could not be stored right now; retry it later"
            )
        return agent_pb2.ReportArtifactStatusResponse(accepted=True, duplicate=outcome.duplicate)
