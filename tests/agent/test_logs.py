"""Log bundles come only from the agent's own journal unit or log file: escape attempts
(symlink, '..', another unit) upload zero bytes."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.logs import LogRefused, LogSources, LogUploader, collect, fit, in_range, running_unit
from fleetd.device.v1 import agent_pb2

UNIT = "fleetd-agent.service"
FILE_REQUEST = agent_pb2.LogRequest(
    log_request_id="lr_1", source=agent_pb2.LOG_SOURCE_AGENT_LOG_FILE, max_bytes=4096
)
JOURNAL_REQUEST = agent_pb2.LogRequest(
    log_request_id="lr_2", source=agent_pb2.LOG_SOURCE_AGENT_JOURNAL, max_bytes=4096
)


class RecordingStub:
    """Stands in for AgentServiceStub: counts the bytes each UploadLogs would send."""

    def __init__(self) -> None:
        self.uploaded: list[bytes] = []

    async def UploadLogs(
        self,
        messages: AsyncIterator[agent_pb2.UploadLogsRequest],
        timeout: float,  # noqa: ASYNC109 (the generated stub's signature)
    ) -> agent_pb2.UploadLogsResponse:
        data = b""
        async for message in messages:
            data += message.chunk
        self.uploaded.append(data)
        return agent_pb2.UploadLogsResponse(bundle_id="lb_1", size_bytes=len(data))


def _uploader(sources: LogSources) -> tuple[LogUploader, RecordingStub]:
    stub = RecordingStub()
    uploader = LogUploader(sources, stub)  # type: ignore[arg-type]
    return uploader, stub


def _journalctl(tmp_path: Path) -> Path:
    """A journalctl stand-in recording its argv."""
    exe = tmp_path / "journalctl"
    exe.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/argv\necho "2024-05-01T10:00:00 agent: hi"\n'
    )
    exe.chmod(0o755)
    return exe


async def test_the_agents_own_log_file_is_gzipped_and_uploaded(tmp_path: Path) -> None:
    log_file = tmp_path / "agent.log"
    log_file.write_text("2024-05-01T10:00:00Z INFO fleetd.agent: started\n")
    uploader, stub = _uploader(LogSources(UNIT, log_file, None))
    assert await uploader.answer(FILE_REQUEST)
    assert gzip.decompress(stub.uploaded[0]) == log_file.read_bytes()


@pytest.mark.parametrize("escape", ["symlink", "parent-symlink", "dotdot", "directory", "fifo"])
async def test_log_file_escapes_upload_zero_bytes(tmp_path: Path, escape: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "agent.log"
    if escape == "symlink":
        path.symlink_to(secret)
    elif escape == "parent-symlink":
        (tmp_path / "linked").symlink_to(tmp_path)
        path = tmp_path / "linked" / "secret"
    elif escape == "dotdot":
        path = tmp_path / "logs" / ".." / "secret"
    elif escape == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    uploader, stub = _uploader(LogSources(UNIT, path, None))
    assert not await uploader.answer(FILE_REQUEST)
    assert stub.uploaded == []
    with pytest.raises(LogRefused):
        await collect(LogSources(UNIT, path, None), FILE_REQUEST)


async def test_journal_of_another_unit_uploads_zero_bytes(tmp_path: Path) -> None:
    exe = _journalctl(tmp_path)
    sources = LogSources("sshd.service", None, running_unit=UNIT, journalctl=str(exe))
    uploader, stub = _uploader(sources)
    assert not await uploader.answer(JOURNAL_REQUEST)
    assert stub.uploaded == []
    assert not (tmp_path / "argv").exists()  # journalctl was never run


async def test_journal_of_the_agents_own_unit_with_the_requested_range(tmp_path: Path) -> None:
    exe = _journalctl(tmp_path)
    request = agent_pb2.LogRequest()
    request.CopyFrom(JOURNAL_REQUEST)
    request.since.FromDatetime(dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    sources = LogSources(UNIT, None, running_unit=UNIT, journalctl=str(exe))
    uploader, stub = _uploader(sources)
    assert await uploader.answer(request)
    assert b"agent: hi" in gzip.decompress(stub.uploaded[0])
    argv = (tmp_path / "argv").read_text().split()
    assert argv == ["--unit", UNIT, "--no-pager", "--output", "short-iso", "--since", "@1714521600"]


async def test_a_missing_journal_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    sources = LogSources(UNIT, None, None, journalctl=str(tmp_path / "absent"))
    with pytest.raises(LogRefused, match="no journal"):
        await collect(sources, JOURNAL_REQUEST)


def test_bundle_keeps_the_newest_lines_within_max_bytes() -> None:
    lines = [f"{i:06d} {os.urandom(8).hex()}\n".encode() for i in range(5000)]
    bundle = fit(lines, 2000)
    assert len(bundle.data) <= 2000
    kept = gzip.decompress(bundle.data).splitlines(keepends=True)
    assert kept and kept == lines[-len(kept) :]
    assert bundle.uncompressed_size == sum(map(len, kept))
    with pytest.raises(LogRefused):
        fit(lines, 10)


def test_log_file_lines_are_cut_to_the_requested_range() -> None:
    raw = (
        b"2024-05-01T09:59:59Z INFO a\n"
        b"2024-05-01T10:00:00Z INFO b\n"
        b"  continuation of b\n"
        b"2024-05-01T10:00:02Z INFO c\n"
    )
    since = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    until = dt.datetime(2024, 5, 1, 10, 0, 1, tzinfo=dt.UTC)
    assert b"".join(in_range(raw, since, until)) == (
        b"2024-05-01T10:00:00Z INFO b\n  continuation of b\n"
    )


def test_running_unit_comes_from_the_cgroup(tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/system.slice/fleetd-agent.service\n")
    assert running_unit(cgroup) == UNIT
    cgroup.write_text("0::/user.slice/user-1000.slice/session-3.scope\n")
    assert running_unit(cgroup) is None
