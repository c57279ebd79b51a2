"""Limits on assignments and status reports, checked without a database."""

from __future__ import annotations

import pytest

from fleetd.device.v1 import agent_pb2 as S
from fleetd.domain.rollout.assignment_rules import (
    MAX_ASSIGNMENTS_PER_CALL,
    InvalidReport,
    checked_assignments,
    parsed_report,
)


def test_assignments_get_ids_and_keep_their_limits() -> None:
    [spec] = checked_assignments([S.ArtifactAssignment(name="m", version="1")], lambda: "as_1")
    assert spec.assignment_id == "as_1"
    with pytest.raises(ValueError, match="needs a name and a version"):
        checked_assignments([S.ArtifactAssignment(name="m")], lambda: "as_1")
    with pytest.raises(ValueError, match="unique"):
        checked_assignments(
            [S.ArtifactAssignment(name="m", version=v) for v in ("1", "2")], lambda: "as_1"
        )
    with pytest.raises(ValueError, match="at most"):
        checked_assignments(
            [S.ArtifactAssignment(name=f"m{i}", version="1") for i in range(257)],
            lambda: "as_1",
        )
    assert MAX_ASSIGNMENTS_PER_CALL == 256


def test_reports_are_checked_field_by_field() -> None:
    ok = S.ReportArtifactStatusRequest(
        assignment_id="as_1", sequence=7, state=S.ARTIFACT_STATE_HEALTHY
    )
    sequence, report = parsed_report(ok)
    assert (sequence, report.assignment_id, report.state) == (7, "as_1", "healthy")
    for bad, field in (
        (
            S.ReportArtifactStatusRequest(assignment_id="as_1", state=S.ARTIFACT_STATE_DOWNLOADING),
            "sequence",
        ),
        (
            S.ReportArtifactStatusRequest(sequence=1, state=S.ARTIFACT_STATE_DOWNLOADING),
            "assignment_id",
        ),
        (
            S.ReportArtifactStatusRequest(
                assignment_id="as_1",
                sequence=1,
                state=S.ARTIFACT_STATE_DOWNLOADING,
                reason="r" * 65,
            ),
            "reason",
        ),
        (
            S.ReportArtifactStatusRequest(
                assignment_id="as_1",
                sequence=1,
                state=S.ARTIFACT_STATE_DOWNLOADING,
                message="é" * 2049,
            ),
            "message",
        ),
    ):
        with pytest.raises(InvalidReport, match=field):
            parsed_report(bad)
