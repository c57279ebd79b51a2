"""Assignments and status reports in PostgreSQL: revisions, idempotency, forward-only states."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from google.protobuf import timestamp_pb2

from fleetd.device.v1 import agent_pb2
from fleetd.storage.assignments import (
    AssignmentNotFound,
    DeviceNotFound,
    InvalidReport,
    SequenceConflict,
    TransitionRefused,
    active_assignments,
    cancel_assignment,
    create_assignments,
    record_status_report,
)
from fleetd.storage.devices import NewDevice, insert_device

S = agent_pb2


@pytest.fixture
async def devices(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for device_id in ("rpi-001", "rpi-002"):
            await insert_device(
                conn, NewDevice(device_id, "default", device_id, "raspberry-pi", "1.0", {}, {})
            )


def _spec(
    name: str = "detector-model", version: str = "2.0.0", assignment_id: str = ""
) -> S.ArtifactAssignment:
    return S.ArtifactAssignment(
        assignment_id=assignment_id,
        name=name,
        version=version,
        kind=S.ARTIFACT_KIND_MODEL,
        target_path=f"{name}/{version}/model.onnx",
        sha256="ab" * 32,
        length=1234,
    )


async def _assign(pool: asyncpg.Pool, device_id: str = "rpi-001", **kw: str) -> str:
    async with pool.acquire() as conn:
        created = await create_assignments(conn, device_id, [_spec(**kw)])
    return created.assignments[0].assignment_id


def _report(
    assignment_id: str, state: int, sequence: int, **kw: object
) -> S.ReportArtifactStatusRequest:
    return S.ReportArtifactStatusRequest(
        assignment_id=assignment_id,
        state=state,  # type: ignore[arg-type]
        sequence=sequence,
        **kw,  # type: ignore[arg-type]
    )


async def _record(
    pool: asyncpg.Pool, request: S.ReportArtifactStatusRequest, device_id: str = "rpi-001"
) -> bool:
    async with pool.acquire() as conn:
        return (await record_status_report(conn, device_id, request)).duplicate


async def _state(pool: asyncpg.Pool, assignment_id: str) -> str:
    state: str = await pool.fetchval(
        "SELECT state FROM assignments WHERE assignment_id = $1", assignment_id
    )
    return state


# -- assignments ------------------------------------------------------------------------


@pytest.mark.usefixtures("devices")
async def test_created_assignments_are_the_devices_desired_state(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        created = await create_assignments(
            conn, "rpi-001", [_spec("b-config"), _spec("a-model", assignment_id="as_given")]
        )
    assert created.revisions == {"rpi-001": 1}
    ids = [a.assignment_id for a in created.assignments]
    assert ids[1] == "as_given"
    assert ids[0].startswith("as_")
    active = await active_assignments(pool, "rpi-001")
    assert [(a.name, a.assignment_id) for a in active] == [
        ("a-model", "as_given"),
        ("b-config", ids[0]),
    ]
    assert active[0].target_path == "a-model/2.0.0/model.onnx"
    assert await active_assignments(pool, "rpi-002") == []
    assert await pool.fetchval(
        "SELECT state FROM assignments WHERE assignment_id = 'as_given'"
    ) == ("pending")


@pytest.mark.usefixtures("devices")
async def test_a_new_assignment_supersedes_the_active_one_with_the_same_name(
    pool: asyncpg.Pool,
) -> None:
    old = await _assign(pool, version="1.0.0")
    await _record(pool, _report(old, S.ARTIFACT_STATE_DOWNLOADING, 1))
    new = await _assign(pool, version="2.0.0")
    assert [a.assignment_id for a in await active_assignments(pool, "rpi-001")] == [new]
    row = await pool.fetchrow("SELECT active, state FROM assignments WHERE assignment_id = $1", old)
    assert row is not None
    assert (row["active"], row["state"]) == (False, "downloading")
    assert (
        await pool.fetchval("SELECT desired_revision FROM devices WHERE device_id = 'rpi-001'") == 2
    )
    # The device may still finish reporting on the superseded one.
    assert not await _record(pool, _report(old, S.ARTIFACT_STATE_FAILED, 2))


@pytest.mark.usefixtures("devices")
async def test_assignments_need_an_active_device_and_valid_specs(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE devices SET offboarded_at = now() WHERE device_id = 'rpi-002'")
    async with pool.acquire() as conn:
        for device_id in ("nope", "rpi-002"):
            with pytest.raises(DeviceNotFound):
                await create_assignments(conn, device_id, [_spec()])
        with pytest.raises(ValueError, match="unique"):
            await create_assignments(conn, "rpi-001", [_spec(), _spec()])
        with pytest.raises(ValueError, match="name and a version"):
            await create_assignments(conn, "rpi-001", [_spec(name="")])
        with pytest.raises(ValueError, match="at most"):
            await create_assignments(conn, "rpi-001", [_spec(name="x" * 200)])
    assert await pool.fetchval("SELECT count(*) FROM assignments") == 0
    assert await pool.fetchval("SELECT max(desired_revision) FROM devices") == 0


@pytest.mark.usefixtures("devices")
async def test_cancel_removes_an_unfinished_assignment_and_bumps_the_revision(
    pool: asyncpg.Pool,
) -> None:
    assignment = await _assign(pool)
    async with pool.acquire() as conn:
        assert await cancel_assignment(conn, assignment) == {"rpi-001": 2}
        assert await cancel_assignment(conn, assignment) == {}
        assert await cancel_assignment(conn, "as_unknown") == {}
    assert await _state(pool, assignment) == "cancelled"
    assert await active_assignments(pool, "rpi-001") == []


@pytest.mark.usefixtures("devices")
async def test_an_ended_assignment_cannot_be_cancelled(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    await _record(pool, _report(assignment, S.ARTIFACT_STATE_HEALTHY, 1))
    async with pool.acquire() as conn:
        assert await cancel_assignment(conn, assignment) == {}
    assert await _state(pool, assignment) == "healthy"


# -- status reports ---------------------------------------------------------------------


@pytest.mark.usefixtures("devices")
async def test_report_moves_the_assignment_and_is_stored(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    observed = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_456_789)
    for sequence, state in enumerate(
        (S.ARTIFACT_STATE_DOWNLOADING, S.ARTIFACT_STATE_VERIFYING, S.ARTIFACT_STATE_APPLYING), 1
    ):
        assert not await _record(pool, _report(assignment, state, sequence))
    assert not await _record(
        pool,
        _report(
            assignment,
            S.ARTIFACT_STATE_HEALTHY,
            4,
            installed_version="2.0.0",
            message="probe passed",
            observed_at=observed,
        ),
    )
    row = await pool.fetchrow("SELECT * FROM assignments WHERE assignment_id = $1", assignment)
    assert row is not None
    assert (row["state"], row["installed_version"], row["last_sequence"]) == ("healthy", "2.0.0", 4)
    assert row["observed_at"].timestamp() == pytest.approx(1_700_000_000.123456)
    states = await pool.fetch(
        "SELECT sequence, state FROM artifact_status_reports ORDER BY sequence"
    )
    assert [tuple(r) for r in states] == [
        (1, "downloading"),
        (2, "verifying"),
        (3, "applying"),
        (4, "healthy"),
    ]


@pytest.mark.usefixtures("devices")
async def test_retried_report_is_a_duplicate_stored_once(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    report = _report(
        assignment,
        S.ARTIFACT_STATE_FAILED,
        7,
        reason="DIGEST_MISMATCH",
        message="expected ab..., got cd...",
        observed_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=999_999_999),
    )
    assert not await _record(pool, report)
    assert await _record(pool, report)
    assert await _record(pool, report)
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 1
    assert await _state(pool, assignment) == "failed"


@pytest.mark.usefixtures("devices")
async def test_retry_of_a_report_about_a_since_cancelled_assignment_is_still_a_duplicate(
    pool: asyncpg.Pool,
) -> None:
    assignment = await _assign(pool)
    report = _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1)
    await _record(pool, report)
    async with pool.acquire() as conn:
        await cancel_assignment(conn, assignment)
    assert await _record(pool, report)


@pytest.mark.usefixtures("devices")
async def test_reused_sequence_with_different_content_is_a_conflict(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    await _record(pool, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1))
    with pytest.raises(SequenceConflict, match="sequence 1"):
        await _record(pool, _report(assignment, S.ARTIFACT_STATE_VERIFYING, 1))
    with pytest.raises(SequenceConflict):
        await _record(pool, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1, message="x"))
    assert await _state(pool, assignment) == "downloading"


@pytest.mark.usefixtures("devices")
async def test_same_state_again_with_a_new_sequence_is_refused(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    await _record(pool, _report(assignment, S.ARTIFACT_STATE_VERIFYING, 1))
    with pytest.raises(TransitionRefused, match="stale transition verifying -> verifying"):
        await _record(pool, _report(assignment, S.ARTIFACT_STATE_VERIFYING, 2))
    with pytest.raises(TransitionRefused, match="stale transition verifying -> downloading"):
        await _record(pool, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 3))
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 1


@pytest.mark.usefixtures("devices")
async def test_steps_may_be_skipped_forward(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    await _record(pool, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1))
    await _record(pool, _report(assignment, S.ARTIFACT_STATE_FAILED, 2, reason="DOWNLOAD_FAILED"))
    assert await _state(pool, assignment) == "failed"


@pytest.mark.usefixtures("devices")
async def test_outcome_is_final(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    await _record(pool, _report(assignment, S.ARTIFACT_STATE_ROLLED_BACK, 1))
    for sequence, state in enumerate((S.ARTIFACT_STATE_HEALTHY, S.ARTIFACT_STATE_FAILED), 2):
        with pytest.raises(TransitionRefused, match="final"):
            await _record(pool, _report(assignment, state, sequence))


@pytest.mark.usefixtures("devices")
async def test_report_older_than_the_last_accepted_one_is_stale(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    await _record(pool, _report(assignment, S.ARTIFACT_STATE_VERIFYING, 10))
    with pytest.raises(TransitionRefused, match="older than the last accepted"):
        await _record(pool, _report(assignment, S.ARTIFACT_STATE_APPLYING, 9))


@pytest.mark.usefixtures("devices")
async def test_cancelled_assignment_refuses_reports(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    async with pool.acquire() as conn:
        await cancel_assignment(conn, assignment)
    with pytest.raises(TransitionRefused, match="cancelled"):
        await _record(pool, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1))


@pytest.mark.usefixtures("devices")
async def test_another_devices_assignment_looks_like_an_unknown_one(pool: asyncpg.Pool) -> None:
    theirs = await _assign(pool, device_id="rpi-002")
    with pytest.raises(AssignmentNotFound) as other:
        await _record(pool, _report(theirs, S.ARTIFACT_STATE_DOWNLOADING, 1))
    with pytest.raises(AssignmentNotFound) as unknown:
        await _record(pool, _report("as_nothing", S.ARTIFACT_STATE_DOWNLOADING, 1))
    assert str(other.value).replace(theirs, "ID") == str(unknown.value).replace("as_nothing", "ID")
    assert await _state(pool, theirs) == "pending"
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 0


@pytest.mark.usefixtures("devices")
@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"sequence": 0}, "sequence"),
        ({"state": S.ARTIFACT_STATE_UNSPECIFIED}, "state must be"),
        ({"assignment_id": ""}, "assignment_id is required"),
        ({"assignment_id": "a" * 129}, "assignment_id"),
        ({"reason": "R" * 65}, "reason"),
        ({"reason": "NUL\x00"}, "NUL"),
        ({"message": "é" * 2049}, "4096 bytes"),
        ({"installed_version": "v" * 129}, "installed_version"),
        ({"observed_at": timestamp_pb2.Timestamp(seconds=2**62)}, "observed_at"),
    ],
)
async def test_reports_over_their_limits_are_invalid(
    pool: asyncpg.Pool, fields: dict[str, object], problem: str
) -> None:
    assignment = await _assign(pool)
    request = _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1)
    for name, value in fields.items():
        if isinstance(value, timestamp_pb2.Timestamp):
            request.observed_at.CopyFrom(value)
        else:
            setattr(request, name, value)
    with pytest.raises(InvalidReport, match=problem):
        await _record(pool, request)
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 0


@pytest.mark.usefixtures("devices")
async def test_concurrent_reports_on_one_assignment_serialise(pool: asyncpg.Pool) -> None:
    assignment = await _assign(pool)
    # Two different reports of the same state: exactly one can win.
    results = await asyncio.gather(
        *(_record(pool, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, s)) for s in (1, 2)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["TransitionRefused", "bool"]
    # The same report twice at once: stored once, one of them told it was a duplicate.
    report = _report(assignment, S.ARTIFACT_STATE_VERIFYING, 3)
    duplicates = await asyncio.gather(_record(pool, report), _record(pool, report))
    assert sorted(duplicates) == [False, True]
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 2


@pytest.mark.usefixtures("devices")
async def test_concurrent_reuse_of_a_sequence_across_assignments_is_one_report(
    pool: asyncpg.Pool,
) -> None:
    first = await _assign(pool, name="a")
    second = await _assign(pool, name="b")
    results = await asyncio.gather(
        _record(pool, _report(first, S.ARTIFACT_STATE_DOWNLOADING, 5)),
        _record(pool, _report(second, S.ARTIFACT_STATE_DOWNLOADING, 5)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["SequenceConflict", "bool"]
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 1
