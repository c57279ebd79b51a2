"""UploadLogs over real mTLS: only against the caller's own pending request, gzip only,
size-capped, stored in the blob store, the request closed in the same transaction."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.pki import CertificateAuthority
from fleetd.storage import redis_keys
from fleetd.storage.blobs import FilesystemBlobStore
from fleetd.storage.desired import mark_changed
from fleetd.storage.log_requests import issue_log_request, pending_log_requests
from tests.support.deployment import Deployment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device

S = agent_pb2
LOG = gzip.compress(b"".join(b"Jan 01 agent[42]: line %d\n" % i for i in range(20_000)))


def _stub(dep: Deployment, creds: DeviceCredentials) -> agent_pb2_grpc.AgentServiceStub:
    return agent_pb2_grpc.AgentServiceStub(device_channel(dep.gateway_target, dep.ca_pem, creds))


async def _request(pool: asyncpg.Pool, redis: aioredis.Redis, device_id: str, **kw: Any) -> str:
    kw.setdefault("source", "agent_journal")
    async with pool.acquire() as conn:
        issued = await issue_log_request(conn, device_id, **kw)
    await mark_changed(redis, issued.revisions)
    return issued.request.log_request_id


def _header(request_id: str, **kw: Any) -> S.UploadLogsRequest:
    kw.setdefault("content_encoding", "gzip")
    return S.UploadLogsRequest(
        header=S.LogBundleHeader(log_request_id=request_id, uncompressed_size=123_456, **kw)
    )


def _chunks(data: bytes, size: int = 64 * 1024) -> list[S.UploadLogsRequest]:
    return [S.UploadLogsRequest(chunk=data[i : i + size]) for i in range(0, len(data), size)]


async def _upload(
    stub: agent_pb2_grpc.AgentServiceStub, messages: Sequence[S.UploadLogsRequest]
) -> S.UploadLogsResponse:
    response: S.UploadLogsResponse = await stub.UploadLogs(iter(messages), timeout=10)
    return response


async def _refused(
    stub: agent_pb2_grpc.AgentServiceStub, messages: Sequence[S.UploadLogsRequest]
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(stub, messages)
    return err.value


def _stored_files(dep: Deployment) -> list[str]:
    root = dep.settings.paths.blobs
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def _nothing_stored(dep: Deployment, pool: asyncpg.Pool) -> None:
    assert _stored_files(dep) == []
    assert await pool.fetchval("SELECT count(*) FROM log_bundles") == 0
    assert await pool.fetchval("SELECT count(*) FROM blobs") == 0


async def test_bundle_is_stored_and_the_request_fulfilled(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001")
    response = await _upload(
        stub, [_header(request_id, source=S.LOG_SOURCE_AGENT_JOURNAL), *_chunks(LOG)]
    )
    assert response.bundle_id.startswith("lb_")
    assert response.size_bytes == len(LOG)
    assert response.stored_at.seconds > 0
    digest = hashlib.sha256(LOG).hexdigest()
    store = FilesystemBlobStore(deployment.settings.paths.blobs)
    assert store.path(digest).read_bytes() == LOG
    assert _stored_files(deployment) == [f"{digest[:2]}/{digest}"]
    bundle = await pool.fetchrow("SELECT * FROM log_bundles")
    assert bundle is not None
    assert (bundle["bundle_id"], bundle["sha256"], bundle["device_id"]) == (
        response.bundle_id,
        digest,
        "rpi-001",
    )
    assert (bundle["content_encoding"], bundle["uncompressed_size"]) == ("gzip", 123_456)
    request = await pool.fetchrow("SELECT fulfilled_at, bundle_id FROM log_requests")
    assert request is not None
    assert request["fulfilled_at"] is not None
    assert request["bundle_id"] == response.bundle_id
    # Heartbeats stop carrying it: nothing pending, revision bumped, gateway cache told.
    assert await pending_log_requests(pool, "rpi-001") == []
    assert await pool.fetchval("SELECT desired_revision FROM devices") == 2
    assert await redis.hget(redis_keys.desired_state("rpi-001"), "rev") == b"2"


async def test_second_upload_for_a_fulfilled_request_is_already_exists(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001")
    await _upload(stub, [_header(request_id), *_chunks(LOG)])
    err = await _refused(stub, [_header(request_id), *_chunks(gzip.compress(b"other"))])
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await pool.fetchval("SELECT count(*) FROM log_bundles") == 1
    assert len(_stored_files(deployment)) == 1


async def test_another_devices_request_is_not_found_like_an_unknown_one(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    alice = _stub(deployment, await enrol_device(pool, ca, "alice"))
    await enrol_device(pool, ca, "bob")
    bobs = await _request(pool, redis, "bob")
    other = await _refused(alice, [_header(bobs), *_chunks(LOG)])
    unknown = await _refused(alice, [_header("lr_unknown"), *_chunks(LOG)])
    assert other.code() == unknown.code() == grpc.StatusCode.NOT_FOUND
    assert (other.details() or "").replace(bobs, "ID") == (unknown.details() or "").replace(
        "lr_unknown", "ID"
    )
    await _nothing_stored(deployment, pool)
    assert [r.log_request_id for r in await pending_log_requests(pool, "bob")] == [bobs]


async def test_bundle_over_the_requests_max_bytes_is_refused_and_nothing_kept(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001", max_bytes=len(LOG) - 1)
    err = await _refused(stub, [_header(request_id), *_chunks(LOG)])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"max_bytes ({len(LOG) - 1} bytes)" in (err.details() or "")
    await _nothing_stored(deployment, pool)
    assert len(await pending_log_requests(pool, "rpi-001")) == 1
    # Exactly at the limit is fine.
    request_id = await _request(pool, redis, "rpi-001", max_bytes=len(LOG))
    assert (await _upload(stub, [_header(request_id), *_chunks(LOG)])).size_bytes == len(LOG)


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        (lambda rid: [], "first message"),
        (lambda rid: [*_chunks(LOG), _header(rid)], "first message"),
        (lambda rid: [_header(rid), *_chunks(LOG[:100]), _header(rid)], "header was sent twice"),
        (lambda rid: [_header(rid), _header(rid)], "header was sent twice"),
        (lambda rid: [_header(rid), S.UploadLogsRequest()], "neither a header nor a chunk"),
        (lambda rid: [_header(rid)], "empty"),
        (lambda rid: [_header(rid), *_chunks(b"plain text, not gzip")], "not gzip"),
        (lambda rid: [_header(rid), *_chunks(LOG[:1]), *_chunks(b"x" + LOG[2:])], "not gzip"),
        (lambda rid: [_header(rid), *_chunks(LOG[:1])], "not gzip"),
        (lambda rid: [_header(rid, content_encoding="zstd"), *_chunks(LOG)], "content_encoding"),
        (lambda rid: [_header(rid, content_encoding=""), *_chunks(LOG)], "content_encoding"),
        (
            lambda rid: [_header(rid, source=S.LOG_SOURCE_AGENT_LOG_FILE), *_chunks(LOG)],
            "source differs",
        ),
        (lambda rid: [_header(""), *_chunks(LOG)], "log_request_id"),
        (
            lambda rid: [_header(rid), *_chunks(b"\x1f\x8b\x08" + os.urandom(1536 * 1024), 2**21)],
            "at most 1048576",
        ),
    ],
    ids=[
        "empty-stream",
        "chunk-before-header",
        "header-twice-after-chunks",
        "header-twice",
        "empty-message",
        "no-chunks",
        "not-gzip",
        "not-gzip-across-chunks",
        "too-short-for-gzip",
        "other-encoding",
        "no-encoding",
        "other-source",
        "no-request-id",
        "chunk-over-1mib",
    ],
)
async def test_malformed_uploads_are_invalid_argument(
    deployment: Deployment,
    ca: CertificateAuthority,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    messages: Any,
    problem: str,
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001")
    err = await _refused(stub, messages(request_id))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (err.details() or "")
    await _nothing_stored(deployment, pool)
    assert len(await pending_log_requests(pool, "rpi-001")) == 1


async def test_expired_request_is_failed_precondition(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001")
    await pool.execute("UPDATE log_requests SET expires_at = now() - interval '1 second'")
    err = await _refused(stub, [_header(request_id), *_chunks(LOG)])
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in (err.details() or "")
    await _nothing_stored(deployment, pool)


async def test_offboarded_device_cannot_upload(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001")
    await pool.execute("UPDATE devices SET offboarded_at = now()")
    err = await _refused(stub, [_header(request_id), *_chunks(LOG)])
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    await _nothing_stored(deployment, pool)


async def test_unusable_blob_store_is_unavailable_and_the_request_stays_pending(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001")
    deployment.settings.paths.blobs.write_bytes(b"a file where the blob directory should be")
    err = await _refused(stub, [_header(request_id), *_chunks(LOG)])
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "upload it again later" in (err.details() or "")
    assert await pool.fetchval("SELECT count(*) FROM log_bundles") == 0
    assert len(await pending_log_requests(pool, "rpi-001")) == 1


async def test_heartbeats_carry_the_request_until_it_is_answered(
    deployment: Deployment, ca: CertificateAuthority, pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    stub = _stub(deployment, await enrol_device(pool, ca, "rpi-001"))
    request_id = await _request(pool, redis, "rpi-001", max_bytes=len(LOG))
    asked = await stub.Heartbeat(S.HeartbeatRequest(desired_state_revision=0), timeout=5)
    assert asked.desired_state.revision == 1
    assert [(r.log_request_id, r.max_bytes) for r in asked.log_requests] == [(request_id, len(LOG))]
    await _upload(stub, [_header(request_id), *_chunks(LOG)])
    after = await stub.Heartbeat(S.HeartbeatRequest(desired_state_revision=1), timeout=5)
    assert not after.unchanged
    assert after.desired_state.revision == 2
    assert list(after.log_requests) == []
