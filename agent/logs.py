"""Log bundles for the operator's log requests, from allowlisted sources only.

There are exactly two sources, both the agent's own: its systemd journal unit
(``journalctl --unit <configured unit>``; refused if the agent runs under another unit)
and its own log file (the configured path only: refused if it is not a plain absolute
path, if any component is a symlink, or if it is not a regular file). No path, unit or
command comes from the server. Entries are limited to the request's time range, and the
oldest are dropped until the gzip bundle fits ``max_bytes``. A refusal uploads nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import logging
import os
import re
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from agent import commands
from fleetd.device.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger("fleetd.agent.logs")

JOURNALCTL = "/usr/bin/journalctl"
JOURNAL_TIMEOUT = 60.0
RAW_LIMIT = 64 * 1024 * 1024
"""Most uncompressed bytes read from a source (the newest)."""
CHUNK = 1024 * 1024
LOG_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""How the agent stamps the lines of its own log file (UTC), so ranges can be cut."""
_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]{0,254}$")
_STAMP = re.compile(rb"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})Z")


class LogRefused(Exception):
    """The request cannot be answered from an allowlisted source; nothing is sent."""


@dataclass(frozen=True, slots=True)
class LogSources:
    unit: str
    """The agent's own unit (configured)."""
    file: Path | None
    """The agent's own log file (configured), if any."""
    running_unit: str | None
    """The unit the agent actually runs in (from its cgroup), None outside systemd."""
    journalctl: str = JOURNALCTL


@dataclass(frozen=True, slots=True)
class Bundle:
    data: bytes
    """gzip."""
    uncompressed_size: int


def running_unit(cgroup: Path = Path("/proc/self/cgroup")) -> str | None:
    """The systemd service this process runs in, from its cgroup path."""
    try:
        text = cgroup.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        for part in reversed(line.rpartition(":")[2].split("/")):
            if part.endswith(".service"):
                return part
    return None


def _epoch(value: dt.datetime) -> str:
    return f"@{int(value.timestamp())}"


async def _journal(
    sources: LogSources, since: dt.datetime | None, until: dt.datetime | None
) -> bytes:
    unit = sources.unit
    if not _UNIT.match(unit):
        raise LogRefused(f"log unit {unit!r} is not a unit name")
    if sources.running_unit is not None and sources.running_unit != unit:
        raise LogRefused(
            f"log unit {unit} is not the agent's own unit ({sources.running_unit}): refused"
        )
    argv = [sources.journalctl, "--unit", unit, "--no-pager", "--output", "short-iso"]
    if since is not None:
        argv += ["--since", _epoch(since)]
    if until is not None:
        argv += ["--until", _epoch(until)]
    try:
        done = await commands.run(argv, JOURNAL_TIMEOUT, keep=RAW_LIMIT)
    except OSError as exc:
        raise LogRefused(f"no journal here ({sources.journalctl}: {exc.strerror})") from None
    if done.returncode != 0:
        raise LogRefused(f"journalctl failed: {commands.tail(done.output)}")
    return done.output


def open_log_file(path: Path | None) -> int:
    """A read-only descriptor of the configured log file, or LogRefused."""
    if path is None:
        raise LogRefused("no agent log file is configured")
    text = str(path)
    if not path.is_absolute() or ".." in path.parts or os.path.normpath(text) != text:
        raise LogRefused(f"log file {text!r} is not a plain absolute path")
    if os.path.realpath(text) != text:
        raise LogRefused(f"log file {text} goes through a symlink: refused")
    try:
        fd = os.open(text, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise LogRefused(f"log file {text}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LogRefused(f"log file {text} is not a regular file")
    return fd


def _read_tail(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - RAW_LIMIT))
        return f.read(RAW_LIMIT)


def in_range(raw: bytes, since: dt.datetime | None, until: dt.datetime | None) -> list[bytes]:
    """The lines stamped within [since, until]; unstamped lines go with the one before."""
    lines = raw.splitlines(keepends=True)
    if since is None and until is None:
        return lines
    kept: list[bytes] = []
    keep = since is None
    for line in lines:
        match = _STAMP.match(line)
        if match:
            when = dt.datetime.strptime(match.group(1).decode(), "%Y-%m-%dT%H:%M:%S")
            when = when.replace(tzinfo=dt.UTC)
            keep = (since is None or when >= since) and (until is None or when <= until)
        if keep:
            kept.append(line)
    return kept


def fit(lines: list[bytes], max_bytes: int) -> Bundle:
    """The newest lines whose gzip fits ``max_bytes`` (binary search on how many)."""

    def pack(n: int) -> bytes:
        return gzip.compress(b"".join(lines[len(lines) - n :]), mtime=0)

    low, high = 0, len(lines)
    best = pack(0)
    if len(best) > max_bytes:
        raise LogRefused(f"max_bytes {max_bytes} is too small for any bundle")
    best_n = 0
    while low < high:
        mid = (low + high + 1) // 2
        data = pack(mid)
        if len(data) <= max_bytes:
            low, best, best_n = mid, data, mid
        else:
            high = mid - 1
    if best_n != low:
        best = pack(low)
    return Bundle(best, sum(len(line) for line in lines[len(lines) - low :]))


async def collect(sources: LogSources, request: agent_pb2.LogRequest) -> Bundle:
    """The bundle answering ``request``, or LogRefused."""
    since = request.since.ToDatetime(tzinfo=dt.UTC) if request.HasField("since") else None
    until = request.until.ToDatetime(tzinfo=dt.UTC) if request.HasField("until") else None
    if request.source == agent_pb2.LOG_SOURCE_AGENT_JOURNAL:
        lines = (await _journal(sources, since, until)).splitlines(keepends=True)
    elif request.source == agent_pb2.LOG_SOURCE_AGENT_LOG_FILE:
        raw = await asyncio.to_thread(lambda: _read_tail(open_log_file(sources.file)))
        lines = in_range(raw, since, until)
    else:
        raise LogRefused(f"unknown log source {request.source}")
    max_bytes = request.max_bytes if request.max_bytes > 0 else 4 * 1024 * 1024
    return await asyncio.to_thread(fit, lines, max_bytes)


async def _messages(
    request: agent_pb2.LogRequest, bundle: Bundle
) -> AsyncIterator[agent_pb2.UploadLogsRequest]:
    yield agent_pb2.UploadLogsRequest(
        header=agent_pb2.LogBundleHeader(
            log_request_id=request.log_request_id,
            content_encoding="gzip",
            source=request.source,
            uncompressed_size=bundle.uncompressed_size,
        )
    )
    for start in range(0, len(bundle.data), CHUNK):
        yield agent_pb2.UploadLogsRequest(chunk=bundle.data[start : start + CHUNK])


_DONE = {
    grpc.StatusCode.ALREADY_EXISTS,  # answered before (a lost response)
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,  # expired
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
}
MAX_TRIES = 5


class LogUploader:
    """Answers each log request once, in the background (never delaying heartbeats)."""

    def __init__(self, sources: LogSources, stub: agent_pb2_grpc.AgentServiceStub) -> None:
        self._sources = sources
        self.stub = stub
        """Replaced when the agent reconnects with a renewed certificate."""
        self._seen: set[str] = set()
        self._tasks: set[asyncio.Task[bool]] = set()

    def offer(self, requests: list[agent_pb2.LogRequest]) -> None:
        for request in requests:
            if request.log_request_id in self._seen:
                continue
            self._seen.add(request.log_request_id)
            task = asyncio.create_task(self.answer(request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def answer(self, request: agent_pb2.LogRequest) -> bool:
        """Collect and upload; True when the gateway stored the bundle."""
        try:
            bundle = await collect(self._sources, request)
        except LogRefused as exc:
            log.warning("log request %s refused: %s", request.log_request_id, exc)
            return False
        for attempt in range(MAX_TRIES):
            try:
                reply = await self.stub.UploadLogs(_messages(request, bundle), timeout=120)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _DONE:
                    log.warning(
                        "log bundle %s not stored: %s: %s",
                        request.log_request_id,
                        exc.code().name,
                        exc.details(),
                    )
                    return exc.code() == grpc.StatusCode.ALREADY_EXISTS
                await asyncio.sleep(min(60.0, 2.0 * 2**attempt))
                continue
            log.info("log bundle %s uploaded (%d bytes)", reply.bundle_id, reply.size_bytes)
            return True
        return False

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
