"""The durable outbox: sequences never reused, reports kept until acknowledged."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from agent.backoff import Backoff
from agent.outbox import Outbox, OutboxSender, Outcome, outcome
from fleetd.device.v1 import agent_pb2


def _report(assignment_id: str = "as-1") -> agent_pb2.ReportArtifactStatusRequest:
    return agent_pb2.ReportArtifactStatusRequest(
        assignment_id=assignment_id, state=agent_pb2.ARTIFACT_STATE_DOWNLOADING
    )


def _error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


def test_sequences_survive_a_restart_and_are_never_reused(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    assert [outbox.add(_report()), outbox.add(_report())] == [1, 2]
    outbox.remove(1)
    outbox.remove(2)
    assert Outbox(tmp_path).add(_report()) == 3


def test_a_crash_between_counter_and_report_skips_the_number(tmp_path: Path) -> None:
    Outbox(tmp_path).add(_report())
    (tmp_path / "sequence").write_text("5")  # counter written, report never was
    assert Outbox(tmp_path).add(_report()) == 6


def test_stored_reports_are_byte_identical_on_retry(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.add(_report())
    first = outbox.pending()
    again = Outbox(tmp_path).pending()
    assert first == again and first[0].HasField("observed_at")
    assert first[0].observed_at.nanos % 1000 == 0  # microseconds, as stored server-side


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (grpc.StatusCode.OK, "", Outcome.ACKNOWLEDGED),
        (grpc.StatusCode.FAILED_PRECONDITION, "stale transition", Outcome.FINAL),
        (grpc.StatusCode.NOT_FOUND, "no assignment", Outcome.FINAL),
        (grpc.StatusCode.INVALID_ARGUMENT, "message too long", Outcome.FINAL),
        (grpc.StatusCode.PERMISSION_DENIED, "device was offboarded", Outcome.OFFBOARDED),
        (grpc.StatusCode.UNAVAILABLE, "storage down", Outcome.RETRY),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "retry in 500 ms", Outcome.RETRY),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "", Outcome.RETRY),
        (grpc.StatusCode.UNAUTHENTICATED, "", Outcome.RETRY),
    ],
)
def test_what_each_answer_means(code: grpc.StatusCode, details: str, expected: Outcome) -> None:
    assert outcome(code, details) is expected


async def test_sender_keeps_order_and_retries_until_acknowledged(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    for name in ("a", "b", "c"):
        outbox.add(_report(name))
    answers: list[grpc.StatusCode] = [
        grpc.StatusCode.OK,  # a
        grpc.StatusCode.UNAVAILABLE,  # b: kept, c not tried
        grpc.StatusCode.OK,  # b again
        grpc.StatusCode.FAILED_PRECONDITION,  # c: stale, dropped
    ]
    sent: list[str] = []

    async def send(report: agent_pb2.ReportArtifactStatusRequest) -> object:
        sent.append(report.assignment_id)
        code = answers.pop(0)
        if code != grpc.StatusCode.OK:
            raise _error(code)
        return agent_pb2.ReportArtifactStatusResponse(accepted=True)

    sender = OutboxSender(outbox, send, Backoff(base=0.01, cap=0.01))
    assert not await sender.flush()
    assert [r.assignment_id for r in outbox.pending()] == ["b", "c"]
    assert await sender.flush()
    assert sent == ["a", "b", "b", "c"]
    assert outbox.pending() == []


async def test_sender_stops_when_the_device_was_offboarded(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.add(_report())

    async def send(report: agent_pb2.ReportArtifactStatusRequest) -> object:
        raise _error(grpc.StatusCode.PERMISSION_DENIED, "device was offboarded")

    sender = OutboxSender(outbox, send)
    await sender.run()  # returns instead of retrying for ever
    assert sender.offboarded
    assert len(outbox.pending()) == 1
