"""Probes: exec without a shell, http GET without redirects, file non-empty; attempts."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.instructions import Probe
from agent.probes import run_probe


class _Handler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        _Handler.hits += 1
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
        else:
            self.send_response(204 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_http_probe_2xx_is_healthy_and_a_redirect_is_not_followed(server: str) -> None:
    assert (await run_probe(Probe("http", url=f"{server}/ok", attempts=1))).healthy
    result = await run_probe(Probe("http", url=f"{server}/redirect", attempts=1))
    assert not result.healthy and "302" in result.detail


async def test_failing_probe_uses_every_attempt_with_delays(server: str) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    _Handler.hits = 0
    probe = Probe("http", url=f"{server}/down", attempts=3, initial_delay=2.0, interval=0.5)
    result = await run_probe(probe, sleep)
    assert not result.healthy and "503" in result.detail
    assert (_Handler.hits, slept) == (3, [2.0, 0.5, 0.5])


async def test_exec_probe_timeout_kills_the_probe(tmp_path: Path) -> None:
    script = tmp_path / "slow"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    started = time.monotonic()
    result = await run_probe(Probe("exec", argv=(str(script),), timeout=1.0, attempts=1))
    assert not result.healthy and "timed out" in result.detail
    assert time.monotonic() - started < 10


async def test_exec_probe_gets_no_agent_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETD_ENROLLMENT_TOKEN", "secret-token")
    script = tmp_path / "env"
    script.write_text('#!/bin/sh\ntest -z "$FLEETD_ENROLLMENT_TOKEN"\n')
    script.chmod(0o755)
    assert (await run_probe(Probe("exec", argv=(str(script),), attempts=1))).healthy


async def test_file_probe_needs_a_non_empty_file(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.touch()
    probe = Probe("file", path=str(ready), attempts=1)
    assert not (await run_probe(probe)).healthy
    ready.write_text("ok")
    assert (await run_probe(probe)).healthy
