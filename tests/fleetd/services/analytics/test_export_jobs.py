"""The export worker against the real database: files that parse back to the rows stored,
a job that survives its worker's death, expiry and tidying."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import asyncpg
import pytest

from fleetd.domain.analytics.exports import COLUMNS, ExportSpec, checked_request
from fleetd.services.analytics.export_jobs import ExportWorker
from fleetd.storage.analytics import exports as store
from fleetd.storage.analytics.exports import ExportFiles, ExportJob
from tests.fleetd.storage.analytics.test_exports import FEB1, JAN1, SAMPLES, seed_samples

SEED_FIELDS = ["device_id", "timestamp", "cpu_usage", "memory_usage"]


def _spec(
    fmt: str, data_type: str = "DEVICE_METRICS", fields: list[str] | None = None
) -> ExportSpec:
    untimed = data_type == "DEVICE_INVENTORY"
    return checked_request(
        format=fmt,
        data_type=data_type,
        fields=SEED_FIELDS if fields is None else fields,
        start=None if untimed else JAN1,
        end=None if untimed else FEB1,
    )


def _worker(pool: asyncpg.Pool, tmp_path: Path, **kw: object) -> ExportWorker:
    return ExportWorker(pool, ExportFiles(tmp_path / "exports"), raw_retention=1e10, **kw)  # type: ignore[arg-type]


async def _queue(pool: asyncpg.Pool, spec: ExportSpec, principal: str = "api_key:a") -> ExportJob:
    async with pool.acquire() as conn:
        return await store.insert_job(conn, principal=principal, spec=spec, ttl=3600)


async def _ready(pool: asyncpg.Pool, job: ExportJob, files: ExportFiles) -> tuple[ExportJob, bytes]:
    done = await store.get_job(pool, job.export_id)
    assert done is not None and done.state == "ready", done
    assert done.sha256 is not None
    content = files.path(done.export_id, done.sha256, done.spec.format).read_bytes()
    assert hashlib.sha256(content).hexdigest() == done.sha256
    assert len(content) == done.size_bytes
    return done, content


def _expected_seed_rows() -> list[list[str]]:
    return sorted(
        [s.device_id, s.seen_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), repr(s.cpu), repr(s.memory)]
        for s in SAMPLES
        if JAN1 <= s.seen_at < FEB1
    )


async def test_csv_export_parses_back_to_the_samples(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await seed_samples(pool)
    job = await _queue(pool, _spec("CSV"))
    worker = _worker(pool, tmp_path)
    assert await worker.run_once() is not None
    done, content = await _ready(pool, job, worker.files)
    assert content.count(b"\r\n") == 4 and b"\n" not in content.replace(b"\r\n", b"")
    header, *rows = list(csv.reader(io.StringIO(content.decode(), newline="")))
    assert header == SEED_FIELDS
    assert sorted(rows) == _expected_seed_rows()
    assert done.rows == 3
    assert not list((tmp_path / "exports" / "tmp").iterdir())  # no temporary left


async def test_jsonl_export_parses_back_to_the_samples(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await seed_samples(pool)
    job = await _queue(
        pool, _spec("JSONL", fields=["device_id", "timestamp", "cpu_usage", "temperature"])
    )
    worker = _worker(pool, tmp_path)
    await worker.run_once()
    _, content = await _ready(pool, job, worker.files)
    objects = [json.loads(line) for line in content.decode().splitlines()]
    expected = [
        {
            "device_id": s.device_id,
            "timestamp": s.seen_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "cpu_usage": s.cpu,
            "temperature": s.temperature,
        }
        for s in SAMPLES
        if JAN1 <= s.seen_at < FEB1
    ]
    assert sorted(objects, key=str) == sorted(expected, key=str)


async def test_inventory_csv_quotes_json_and_jsonl_embeds_it(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed_samples(pool, SAMPLES[:1])
    await pool.execute(
        """UPDATE devices SET metadata = '{"site": "dc, \\"one\\""}', tags = '{a,b}'"""
    )
    fields = ["device_id", "metadata", "tags"]
    worker = _worker(pool, tmp_path)
    as_csv = await _queue(pool, _spec("CSV", "DEVICE_INVENTORY", fields))
    as_jsonl = await _queue(pool, _spec("JSONL", "DEVICE_INVENTORY", fields))
    await worker.run_once()
    await worker.run_once()
    _, csv_content = await _ready(pool, as_csv, worker.files)
    _, jsonl_content = await _ready(pool, as_jsonl, worker.files)
    rows = list(csv.reader(io.StringIO(csv_content.decode(), newline="")))
    assert rows[1][0] == "rpi-1"
    assert json.loads(rows[1][1]) == {"site": 'dc, "one"'} and json.loads(rows[1][2]) == ["a", "b"]
    [line] = jsonl_content.decode().splitlines()
    assert json.loads(line) == {
        "device_id": "rpi-1",
        "metadata": {"site": 'dc, "one"'},
        "tags": ["a", "b"],
    }


async def test_every_column_by_default(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await seed_samples(pool, SAMPLES[:1])
    job = await _queue(pool, _spec("CSV", fields=[]))
    worker = _worker(pool, tmp_path)
    await worker.run_once()
    _, content = await _ready(pool, job, worker.files)
    header = next(csv.reader(io.StringIO(content.decode(), newline="")))
    assert header == [c.name for c in COLUMNS["DEVICE_METRICS"]]


async def test_a_job_whose_worker_died_is_finished_by_another(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed_samples(pool)
    job = await _queue(pool, _spec("CSV"))
    async with pool.acquire() as conn:
        claimed = await store.claim_job(conn, "dies", lease_seconds=1.0)
    assert claimed is not None
    # The "restart": the first worker is gone (never renews), its lease lapses.
    other = _worker(pool, tmp_path, owner="survivor")
    assert await other.run_once() is None  # lease still held
    await asyncio.sleep(1.2)
    finished = await other.run_once()
    assert finished is not None and finished.export_id == job.export_id and finished.attempts == 2
    _, content = await _ready(pool, job, other.files)
    assert (
        sorted(list(csv.reader(io.StringIO(content.decode(), newline="")))[1:])
        == _expected_seed_rows()
    )


async def test_a_worker_that_lost_its_lease_publishes_nothing(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed_samples(pool)
    job = await _queue(pool, _spec("CSV"))
    worker = _worker(pool, tmp_path, owner="slow", renew_every=0.05, batch_rows=1)
    async with pool.acquire() as conn:
        claimed = await store.claim_job(conn, "slow")
        assert claimed is not None
        await conn.execute("UPDATE export_jobs SET lease_owner = 'thief'")  # taken over
    await worker.produce(claimed)
    after = await store.get_job(pool, job.export_id)
    assert after is not None and after.state == "running" and after.lease_owner == "thief"
    assert not list((tmp_path / "exports").glob("*.*.*"))


async def test_a_failing_export_is_retried_then_failed_with_its_error(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    job = await _queue(pool, _spec("CSV", "DEVICE_EVENTS", ["device_id"]))  # no Redis given
    worker = _worker(pool, tmp_path)
    for _ in range(3):
        await worker.run_once()
    failed = await store.get_job(pool, job.export_id)
    assert failed is not None and failed.state == "failed" and failed.attempts == 3
    assert failed.error is not None and "attempt 3 (RuntimeError)" in failed.error


async def test_tidy_expires_jobs_and_deletes_their_files(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed_samples(pool)
    worker = _worker(pool, tmp_path)
    job = await _queue(pool, _spec("CSV"))
    await worker.run_once()
    done, _ = await _ready(pool, job, worker.files)
    assert done.sha256 is not None
    path = worker.files.path(done.export_id, done.sha256, "CSV")
    assert await worker.tidy() == (0, 0) and path.exists()
    await pool.execute("UPDATE export_jobs SET expires_at = now()")
    assert await worker.tidy() == (1, 0)
    assert not path.exists()
    expired = await store.get_job(pool, job.export_id)
    assert expired is not None and expired.state == "expired"


async def test_tidy_removes_orphans_once_old_but_never_a_ready_file(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed_samples(pool)
    worker = _worker(pool, tmp_path, lease_seconds=0.0)  # "old" = any age
    job = await _queue(pool, _spec("CSV"))
    await worker.run_once()
    done, _ = await _ready(pool, job, worker.files)
    orphan = worker.files.root / f"{job.export_id}.{'0' * 64}.csv"
    orphan.write_bytes(b"left by a crash")
    temporary, handle = worker.files.create_temporary(job.export_id)
    handle.close()
    assert await worker.tidy() == (0, 2)
    assert not orphan.exists() and not temporary.exists()
    assert done.sha256 is not None
    assert worker.files.path(done.export_id, done.sha256, "CSV").exists()


@pytest.mark.parametrize("fmt", ["CSV", "JSONL"])
async def test_an_empty_window_gives_an_empty_file_not_a_failure(
    pool: asyncpg.Pool, tmp_path: Path, fmt: str
) -> None:
    await seed_samples(pool, [])
    job = await _queue(
        pool,
        checked_request(
            format=fmt,
            data_type="DEVICE_METRICS",
            fields=SEED_FIELDS,
            start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            end=dt.datetime(2020, 1, 2, tzinfo=dt.UTC),
        ),
    )
    worker = _worker(pool, tmp_path)
    await worker.run_once()
    done, content = await _ready(pool, job, worker.files)
    assert done.rows == 0
    assert content == (b"device_id,timestamp,cpu_usage,memory_usage\r\n" if fmt == "CSV" else b"")
