"""ReportArtifactStatus over real mTLS: durable, idempotent, forward-only, own assignments only."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.storage.assignments import cancel_assignment, create_assignments
from fleetd.storage.desired import mark_changed
from tests.support.deployment import Deployment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device

S = agent_pb2


def _stub(dep: Deployment, creds: DeviceCredentials) -> agent_pb2_grpc.AgentServiceStub:
    return agent_pb2_grpc.AgentServiceStub(device_channel(dep.gateway_target, dep.ca_pem, creds))


async def _assign(pool: asyncpg.Pool, device_id: str, name: str = "detector-model") -> str:
    async with pool.acquire() as conn:
        created = await create_assignments(
            conn, device_id, [S.ArtifactAssignment(name=name, version="2.0.0")]
        )
    return created.assignments[0].assignment_id


def _report(
    assignment_id: str,
    state: S.ArtifactState,
    sequence: int,
    *,
    reason: str = "",
    installed_version: str = "",
) -> S.ReportArtifactStatusRequest:
    return S.ReportArtifactStatusRequest(
        assignment_id=assignment_id,
        state=state,
        sequence=sequence,
        reason=reason,
        installed_version=installed_version,
    )


async def _refused(
    stub: agent_pb2_grpc.AgentServiceStub, request: S.ReportArtifactStatusRequest
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReportArtifactStatus(request, timeout=5)
    return err.value


async def test_reports_walk_an_assignment_to_healthy(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    for sequence, state in enumerate(
        (
            S.ARTIFACT_STATE_DOWNLOADING,
            S.ARTIFACT_STATE_VERIFYING,
            S.ARTIFACT_STATE_APPLYING,
            S.ARTIFACT_STATE_HEALTHY,
        ),
        1,
    ):
        response = await stub.ReportArtifactStatus(
            _report(assignment, state, sequence, installed_version="2.0.0"), timeout=5
        )
        assert (response.accepted, response.duplicate) == (True, False)
    # Acknowledged means committed: visible at once, no flush to wait for.
    row = await pool.fetchrow(
        "SELECT state, installed_version, last_sequence FROM assignments WHERE assignment_id = $1",
        assignment,
    )
    assert row is not None
    assert tuple(row) == ("healthy", "2.0.0", 4)


async def test_retried_report_is_acknowledged_as_a_duplicate_and_stored_once(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    report = _report(assignment, S.ARTIFACT_STATE_FAILED, 3, reason="DIGEST_MISMATCH")
    first = await stub.ReportArtifactStatus(report, timeout=5)
    retry = await stub.ReportArtifactStatus(report, timeout=5)
    assert (first.accepted, first.duplicate) == (True, False)
    assert (retry.accepted, retry.duplicate) == (True, True)
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 1


async def test_reused_sequence_with_other_content_is_failed_precondition(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    await stub.ReportArtifactStatus(_report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1), timeout=5)
    err = await _refused(stub, _report(assignment, S.ARTIFACT_STATE_VERIFYING, 1))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already used by a different report" in (err.details() or "")


async def test_stale_and_backward_transitions_are_failed_precondition(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    await stub.ReportArtifactStatus(_report(assignment, S.ARTIFACT_STATE_APPLYING, 1), timeout=5)
    for sequence, state in ((2, S.ARTIFACT_STATE_APPLYING), (3, S.ARTIFACT_STATE_DOWNLOADING)):
        err = await _refused(stub, _report(assignment, state, sequence))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "stale transition" in (err.details() or "")
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 1


async def test_nothing_follows_an_outcome(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    await stub.ReportArtifactStatus(_report(assignment, S.ARTIFACT_STATE_ROLLED_BACK, 1), timeout=5)
    err = await _refused(stub, _report(assignment, S.ARTIFACT_STATE_HEALTHY, 2))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "final" in (err.details() or "")


async def test_cancelled_assignment_refuses_reports(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    async with pool.acquire() as conn:
        await cancel_assignment(conn, assignment)
    err = await _refused(stub, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cancelled" in (err.details() or "")


async def test_another_devices_assignment_is_not_found_like_an_unknown_one(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    alice = _stub(deployment, await enrol_device(pool, ca, "alice"))
    await enrol_device(pool, ca, "bob")
    bobs = await _assign(pool, "bob")
    other = await _refused(alice, _report(bobs, S.ARTIFACT_STATE_DOWNLOADING, 1))
    unknown = await _refused(alice, _report("as_unknown", S.ARTIFACT_STATE_DOWNLOADING, 1))
    assert other.code() == unknown.code() == grpc.StatusCode.NOT_FOUND
    assert (other.details() or "").replace(bobs, "ID") == (unknown.details() or "").replace(
        "as_unknown", "ID"
    )
    assert "bob" not in (other.details() or "")
    assert await pool.fetchval("SELECT state FROM assignments") == "pending"


@pytest.mark.parametrize(
    "request_",
    [
        S.ReportArtifactStatusRequest(assignment_id="x", sequence=1),  # state unspecified
        S.ReportArtifactStatusRequest(state=S.ARTIFACT_STATE_DOWNLOADING, sequence=1),
        S.ReportArtifactStatusRequest(assignment_id="x", state=S.ARTIFACT_STATE_DOWNLOADING),
        S.ReportArtifactStatusRequest(
            assignment_id="x", state=S.ARTIFACT_STATE_FAILED, sequence=1, reason="R" * 65
        ),
        S.ReportArtifactStatusRequest(
            assignment_id="x", state=S.ARTIFACT_STATE_FAILED, sequence=1, message="m" * 4097
        ),
    ],
)
async def test_reports_over_their_limits_are_invalid_argument(
    deployment: Deployment,
    ca: CertificateAuthority,
    pool: asyncpg.Pool,
    request_: S.ReportArtifactStatusRequest,
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    err = await _refused(stub, request_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_offboarded_device_cannot_report(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    await pool.execute("UPDATE devices SET offboarded_at = now()")
    err = await _refused(stub, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_revoked_certificate_cannot_report(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    assignment = await _assign(pool, "rpi-001")
    await pool.execute("UPDATE device_certificates SET revoked_at = now()")
    err = await _refused(stub, _report(assignment, S.ARTIFACT_STATE_DOWNLOADING, 1))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await pool.fetchval("SELECT count(*) FROM artifact_status_reports") == 0


async def test_the_assignment_a_heartbeat_delivers_is_the_one_reported_on(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    async with pool.acquire() as conn:
        created = await create_assignments(
            conn, "rpi-001", [S.ArtifactAssignment(name="detector-model", version="2.0.0")]
        )
    await mark_changed(redis, created.revisions)
    answer = await stub.Heartbeat(S.HeartbeatRequest(desired_state_revision=0), timeout=5)
    [delivered] = answer.desired_state.assignments
    assert delivered == created.assignments[0]
    response = await stub.ReportArtifactStatus(
        _report(delivered.assignment_id, S.ARTIFACT_STATE_HEALTHY, 1, installed_version="2.0.0"),
        timeout=5,
    )
    assert response.accepted
