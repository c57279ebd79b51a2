"""The durable outbox of status reports: every report is on disk, with its sequence
number, before anything tries to send it, and stays there until the gateway has
acknowledged it — at least once, across crashes and gateway outages.

Layout (``<data_dir>/outbox/``): ``sequence`` holds the last sequence number handed out
(written before the report that uses it, so a number is never reused — the gateway
refuses a reused sequence carrying different content); each pending report is
``<sequence, 20 digits>.report``, a serialized ReportArtifactStatusRequest with its
``observed_at`` already set, so a retry is byte-for-byte the report first sent and the
gateway's idempotency per (device, sequence) answers it as a duplicate.

What counts as final (the report leaves the outbox) is decided by :func:`outcome`
without IO; :class:`OutboxSender` does the sending with jittered backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from google.protobuf import timestamp_pb2

from agent.backoff import Backoff
from agent.durable import fsync_dir, write_atomic
from fleetd.device.v1 import agent_pb2

log = logging.getLogger("fleetd.agent.outbox")

SEQUENCE_FILE = "sequence"
SUFFIX = ".report"


class Outcome(enum.Enum):
    ACKNOWLEDGED = "acknowledged"
    """Stored by the gateway (or already stored: a duplicate)."""
    FINAL = "final"
    """Refused for a reason a retry cannot change: dropped (and logged)."""
    OFFBOARDED = "offboarded"
    """The device was offboarded: stop sending."""
    RETRY = "retry"
    """Transient: keep it and try again later."""


_FINAL = {
    # Stale, backwards or after-the-end transitions (the report was overtaken, e.g. by a
    # retry of a later report or a server-side cancel), or a sequence conflict: the
    # gateway's state already moved past this report.
    grpc.StatusCode.FAILED_PRECONDITION,
    # The assignment is not (or no longer) this device's.
    grpc.StatusCode.NOT_FOUND,
    # The report breaks a limit: it would be refused for ever.
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
}


def outcome(code: grpc.StatusCode, details: str) -> Outcome:
    """What a ReportArtifactStatus answer means for the report that was sent."""
    if code == grpc.StatusCode.OK:
        return Outcome.ACKNOWLEDGED
    if code in _FINAL:
        return Outcome.FINAL
    if code == grpc.StatusCode.PERMISSION_DENIED and "offboarded" in details:
        return Outcome.OFFBOARDED
    return Outcome.RETRY


class Outbox:
    """Pending status reports in a directory; safe against a crash at any point."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._last = max([self._read_counter(), *self._sequences()], default=0)

    def _read_counter(self) -> int:
        try:
            return int((self.dir / SEQUENCE_FILE).read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def _sequences(self) -> list[int]:
        return sorted(
            int(name[: -len(SUFFIX)])
            for name in os.listdir(self.dir)
            if name.endswith(SUFFIX) and name[: -len(SUFFIX)].isdigit()
        )

    def add(self, report: agent_pb2.ReportArtifactStatusRequest) -> int:
        """Give ``report`` the next sequence number (and an observed_at if it has none),
        write it durably, and return the sequence."""
        sequence = self._last + 1
        write_atomic(self.dir / SEQUENCE_FILE, str(sequence).encode())
        self._last = sequence
        stored = agent_pb2.ReportArtifactStatusRequest()
        stored.CopyFrom(report)
        stored.sequence = sequence
        if not stored.HasField("observed_at"):
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            # Microseconds, as the gateway stores them, so a retry compares equal.
            now.nanos -= now.nanos % 1000
            stored.observed_at.CopyFrom(now)
        write_atomic(self.dir / f"{sequence:020d}{SUFFIX}", stored.SerializeToString())
        return sequence

    def pending(self) -> list[agent_pb2.ReportArtifactStatusRequest]:
        """Unacknowledged reports, oldest first."""
        reports = []
        for sequence in self._sequences():
            with contextlib.suppress(FileNotFoundError):
                raw = (self.dir / f"{sequence:020d}{SUFFIX}").read_bytes()
                reports.append(agent_pb2.ReportArtifactStatusRequest.FromString(raw))
        return reports

    def remove(self, sequence: int) -> None:
        """The report was acknowledged (or refused for good)."""
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{sequence:020d}{SUFFIX}").unlink()
            fsync_dir(self.dir)


Send = Callable[[agent_pb2.ReportArtifactStatusRequest], Awaitable[object]]


class OutboxSender:
    """Sends the outbox's reports in sequence order, one at a time (a later report about
    an assignment must not overtake an earlier one), until each is acknowledged."""

    def __init__(self, outbox: Outbox, send: Send, backoff: Backoff | None = None) -> None:
        self._outbox = outbox
        self._send = send
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._wake = asyncio.Event()
        self.offboarded = False

    def wake(self) -> None:
        """New reports are in the outbox."""
        self._wake.set()

    async def flush(self) -> bool:
        """Try every pending report once, in order; True when the outbox is empty."""
        for report in self._outbox.pending():
            try:
                await self._send(report)
                result = Outcome.ACKNOWLEDGED
            except grpc.aio.AioRpcError as exc:
                result = outcome(exc.code(), exc.details() or "")
                if result is Outcome.FINAL:
                    log.warning(
                        "status report %d (%s) refused for good: %s: %s",
                        report.sequence,
                        report.assignment_id,
                        exc.code().name,
                        exc.details(),
                    )
            if result is Outcome.OFFBOARDED:
                self.offboarded = True
                return False
            if result is Outcome.RETRY:
                return False
            self._outbox.remove(report.sequence)
        return True

    async def run(self) -> None:
        """Send until cancelled: after a failure wait a jittered backoff, otherwise
        wait until woken (or a minute, to pick up anything missed)."""
        while not self.offboarded:
            self._wake.clear()
            if await self.flush():
                self._backoff.reset()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 60.0)
            elif not self.offboarded:
                await asyncio.sleep(self._backoff.next_delay())
