"""GET/HEAD /exports/<id>: the ASGI handler called directly (scope, receive, send) over
the real database and real files: signatures, expiry, pending and failed jobs, Range."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from control_api.analytics_export import url_key
from control_api.asgi import Message
from control_api.exports_http import (
    CHUNK,
    PREFIX,
    ByteRange,
    ExportDownloads,
    Unsatisfiable,
    requested_range,
)
from fleetd.domain.analytics.exports import checked_request, url_signature
from fleetd.storage.analytics import exports as store
from fleetd.storage.analytics.exports import ExportFiles, ExportJob

CONTENT = os.urandom(150_000)  # three chunks and a bit
SHA = hashlib.sha256(CONTENT).hexdigest()
SPEC = checked_request(format="CSV", data_type="DEVICE_INVENTORY", fields=[], start=None, end=None)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes]


async def call(
    app: ExportDownloads, target: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> Response:
    path, _, query = target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    assert bodies[-1].get("more_body", False) is False
    chunks = [m["body"] for m in bodies if m["body"]]
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Response(start["status"], response_headers, b"".join(chunks), chunks)


@dataclass
class Setup:
    pool: asyncpg.Pool
    files: ExportFiles
    app: ExportDownloads

    async def url(self, job: ExportJob | uuid.UUID, *, expires: int | None = None) -> str:
        export_id = job if isinstance(job, uuid.UUID) else job.export_id
        expires = int(time.time()) + 3600 if expires is None else expires
        sig = url_signature(await url_key(self.pool), str(export_id), expires)
        return f"{PREFIX}{export_id}?expires={expires}&sig={sig}"

    async def job(self, state: str = "ready", content: bytes = CONTENT) -> ExportJob:
        async with self.pool.acquire() as conn:
            job = await store.insert_job(conn, principal="api_key:a", spec=SPEC, ttl=3600)
            if state == "queued":
                return job
            claimed = await store.claim_job(conn, "w")
        assert claimed is not None
        if state == "ready":
            sha = hashlib.sha256(content).hexdigest()
            self.files.root.mkdir(parents=True, exist_ok=True)
            self.files.path(job.export_id, sha, "CSV").write_bytes(content)
            assert await store.finish_ready(
                self.pool, job.export_id, "w", rows=1, size_bytes=len(content), sha256=sha
            )
        elif state == "failed":
            await self.pool.execute(
                "UPDATE export_jobs SET attempts = 3 WHERE export_id = $1", job.export_id
            )
            assert (
                await store.give_up(self.pool, job.export_id, "w", "the disk is full") == "failed"
            )
        done = await store.get_job(self.pool, job.export_id)
        assert done is not None and done.state == state
        return done


@pytest.fixture
def setup(pool: asyncpg.Pool, tmp_path: Path) -> Setup:
    files = ExportFiles(tmp_path / "exports")
    return Setup(pool, files, ExportDownloads(pool, files))


async def test_a_ready_export_is_served_whole_in_64k_chunks(setup: Setup) -> None:
    job = await setup.job()
    response = await call(setup.app, await setup.url(job))
    assert response.status == 200
    assert response.body == CONTENT
    assert max(len(c) for c in response.chunks) == CHUNK == 65536
    assert response.headers["content-length"] == str(len(CONTENT))
    assert response.headers["etag"] == f'"{SHA}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"].startswith("text/csv")
    assert f"export-{job.export_id}.csv" in response.headers["content-disposition"]


async def test_head_answers_the_headers_without_the_body(setup: Setup) -> None:
    job = await setup.job()
    response = await call(setup.app, await setup.url(job), method="HEAD")
    assert (response.status, response.body) == (200, b"")
    assert response.headers["content-length"] == str(len(CONTENT))


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len(CONTENT) - 1),
        ("bytes=-50", len(CONTENT) - 50, len(CONTENT) - 1),
        ("bytes=149990-999999", 149990, len(CONTENT) - 1),  # past the end: up to the end
        ("bytes=-999999", 0, len(CONTENT) - 1),
        ("bytes=7-7", 7, 7),
    ],
)
async def test_a_single_range_is_206_with_its_content_range(
    setup: Setup, header: str, first: int, last: int
) -> None:
    job = await setup.job()
    response = await call(setup.app, await setup.url(job), headers={"Range": header})
    assert response.status == 206
    assert response.body == CONTENT[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    assert response.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize(
    "header", ["bytes=0-1,5-6", "bytes=9-2", "items=0-1", "bytes=abc", "bytes=-"]
)
async def test_several_or_malformed_ranges_get_the_whole_file(setup: Setup, header: str) -> None:
    job = await setup.job()
    response = await call(setup.app, await setup.url(job), headers={"Range": header})
    assert (response.status, response.body) == (200, CONTENT)
    assert "content-range" not in response.headers


@pytest.mark.parametrize("header", [f"bytes={len(CONTENT)}-", "bytes=999999-1000000", "bytes=-0"])
async def test_an_unsatisfiable_range_is_416_with_the_size(setup: Setup, header: str) -> None:
    job = await setup.job()
    response = await call(setup.app, await setup.url(job), headers={"Range": header})
    assert response.status == 416
    assert response.headers["content-range"] == f"bytes */{len(CONTENT)}"
    assert response.body == b""


async def test_if_range_with_the_current_etag_or_date_honours_the_range(setup: Setup) -> None:
    job = await setup.job()
    url = await setup.url(job)
    whole = await call(setup.app, url)
    for validator in (f'"{SHA}"', whole.headers["last-modified"]):
        response = await call(
            setup.app, url, headers={"Range": "bytes=10-19", "If-Range": validator}
        )
        assert (response.status, response.body) == (206, CONTENT[10:20])


async def test_if_range_with_another_etag_gets_the_whole_file(setup: Setup) -> None:
    job = await setup.job()
    stale = '"' + "0" * 64 + '"'
    response = await call(
        setup.app, await setup.url(job), headers={"Range": "bytes=10-19", "If-Range": stale}
    )
    assert (response.status, response.body) == (200, CONTENT)


async def test_a_download_in_ranges_reassembles_to_the_sha256(setup: Setup) -> None:
    job = await setup.job()
    url = await setup.url(job)
    parts, offset, step = [], 0, 40_000
    while offset < len(CONTENT):
        response = await call(
            setup.app, url, headers={"Range": f"bytes={offset}-{offset + step - 1}"}
        )
        assert response.status == 206
        parts.append(response.body)
        offset += step
    assert hashlib.sha256(b"".join(parts)).hexdigest() == SHA


@pytest.mark.parametrize("state", ["queued", "running"])
async def test_an_unfinished_export_is_202_retry_after_5(setup: Setup, state: str) -> None:
    job = await setup.job(state)
    response = await call(setup.app, await setup.url(job))
    assert response.status == 202
    assert response.headers["retry-after"] == "5"
    assert response.headers["x-export-state"] == state
    assert json.loads(response.body) == {
        "export_id": str(job.export_id),
        "state": state,
        "attempts": job.attempts,
    }


async def test_a_failed_export_is_500_with_its_error(setup: Setup) -> None:
    job = await setup.job("failed")
    response = await call(setup.app, await setup.url(job))
    assert response.status == 500
    assert json.loads(response.body) == {"code": "failed", "message": "the disk is full"}


async def test_a_url_past_its_expiry_is_410(setup: Setup) -> None:
    job = await setup.job()
    response = await call(setup.app, await setup.url(job, expires=int(time.time()) - 1))
    assert response.status == 410
    assert "expired" in json.loads(response.body)["message"]


async def test_an_expired_job_is_410_even_with_a_live_url(setup: Setup) -> None:
    job = await setup.job()
    await setup.pool.execute("UPDATE export_jobs SET expires_at = now()")
    assert len(await store.expire_jobs(setup.pool)) == 1
    assert (await call(setup.app, await setup.url(job))).status == 410


@pytest.mark.parametrize(
    "tamper", ["signature", "expires", "export_id", "missing_sig", "missing_expires"]
)
async def test_a_tampered_url_is_403(setup: Setup, tamper: str) -> None:
    job = await setup.job()
    url = await setup.url(job)
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    if tamper == "signature":
        params["sig"] = ("A" if params["sig"][0] != "A" else "B") + params["sig"][1:]
    elif tamper == "expires":
        params["expires"] = str(int(params["expires"]) + 86400)  # a longer life
    elif tamper == "export_id":
        other = await setup.job()
        path = f"{PREFIX}{other.export_id}"
    elif tamper == "missing_sig":
        del params["sig"]
    else:
        del params["expires"]
    response = await call(setup.app, path + "?" + "&".join(f"{k}={v}" for k, v in params.items()))
    assert response.status == 403
    assert response.body.count(CONTENT[:16]) == 0


async def test_an_unknown_path_is_404_and_other_methods_405(setup: Setup) -> None:
    assert (await call(setup.app, f"{PREFIX}not-a-uuid?expires=1&sig=x")).status == 404
    job = await setup.job()
    assert (await call(setup.app, await setup.url(job), method="POST")).status == 405


async def test_a_valid_url_for_a_job_that_is_gone_is_410(setup: Setup) -> None:
    assert (await call(setup.app, await setup.url(uuid.uuid4()))).status == 410


def test_requested_range_rules() -> None:
    assert requested_range(None, 10) is None
    assert requested_range("bytes=2-4", 10) == ByteRange(2, 4)
    assert requested_range("bytes= 2 - 4 ", 10) == ByteRange(2, 4)
    assert requested_range("bytes=-3", 10) == ByteRange(7, 9)
    with pytest.raises(Unsatisfiable):
        requested_range("bytes=0-", 0)
    with pytest.raises(Unsatisfiable):
        requested_range("bytes=-1", 0)
