"""Post-swap health probes (validated by agent.instructions first).

- exec: run the allowlisted executable without a shell; exit status 0 is healthy;
- http: one GET, no redirects followed (a redirect could leave the allowlisted host),
  no proxy; a 2xx status is healthy;
- file: the file exists and is non-empty.

Healthy as soon as one attempt succeeds; ``initial_delay`` before the first attempt and
``interval`` between attempts; every attempt bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from agent import commands
from agent.instructions import Probe

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    healthy: bool
    detail: str
    """What the last attempt saw, for the status report's message."""


async def _exec(probe: Probe) -> tuple[bool, str]:
    try:
        done = await commands.run(probe.argv, probe.timeout)
    except OSError as exc:
        return False, f"cannot run {probe.argv[0]}: {exc.strerror}"
    if done.returncode is None:
        return False, f"{probe.argv[0]} timed out after {probe.timeout:g}s"
    if done.returncode != 0:
        return False, f"{probe.argv[0]} exited {done.returncode}: {commands.tail(done.output)}"
    return True, f"{probe.argv[0]} exited 0"


def _get(url: str, timeout: float) -> int:
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        conn.request("GET", f"{path}?{parts.query}" if parts.query else path)
        response = conn.getresponse()
        response.read(65536)
        return response.status
    finally:
        conn.close()


async def _http(probe: Probe) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(probe.timeout + 1):
            status = await asyncio.to_thread(_get, probe.url, probe.timeout)
    except (OSError, http.client.HTTPException, TimeoutError) as exc:
        return False, f"GET {probe.url} failed: {exc or type(exc).__name__}"
    return 200 <= status < 300, f"GET {probe.url} answered {status}"


def _file(probe: Probe) -> tuple[bool, str]:
    try:
        size = os.stat(probe.path).st_size
    except OSError as exc:
        return False, f"{probe.path}: {exc.strerror}"
    return size > 0, f"{probe.path} is {'non-empty' if size else 'empty'}"


async def run_probe(probe: Probe, sleep: Sleep = asyncio.sleep) -> ProbeResult:
    """Run ``probe`` up to ``attempts`` times; healthy on the first success."""
    if probe.kind == "none":
        return ProbeResult(True, "no probe")
    await sleep(probe.initial_delay)
    detail = ""
    for attempt in range(probe.attempts):
        if attempt:
            await sleep(probe.interval)
        if probe.kind == "exec":
            ok, detail = await _exec(probe)
        elif probe.kind == "http":
            ok, detail = await _http(probe)
        else:
            ok, detail = _file(probe)
        if ok:
            return ProbeResult(True, detail)
    return ProbeResult(False, f"{probe.attempts} attempt(s) failed; last: {detail}")
