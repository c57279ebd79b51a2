"""Runs a deployment on one node: storage, gateway workers, the control API, demo agents.

The supervisor starts the embedded servers (unless URLs are configured), applies
migrations once, then runs every component as a child process configured through its
environment. It stops everything in reverse order on SIGINT/SIGTERM, and stops
everything if a server process dies (an agent dying is logged and left alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetd.settings import Settings
from fleetd.storage.postgres import connect

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    essential: bool


def gateway_command() -> list[str]:
    return [sys.executable, "-m", "gateway"]


def api_command() -> list[str]:
    return [sys.executable, "-m", "control_api"]


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


@dataclass
class Supervisor:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        env.setdefault("PYTHONUNBUFFERED", "1")
        if extra:
            env.update(extra)
        return env

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        essential: bool = True,
        extra_env: dict[str, str] | None = None,
        log_file: Path | None = None,
    ) -> Child:
        out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            list(argv),
            env=self.env(extra_env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
        )
        if out:
            out.close()
        child = Child(name, process, essential)
        self.children.append(child)
        log.info("started %s (pid %d)", name, process.pid)
        return child

    def migrate(self) -> None:
        assert self.settings.database_url is not None

        async def run() -> None:
            pool = await connect(self.settings.database_url or "", max_size=1)
            await pool.close()

        asyncio.run(run())

    def start_servers(self, workers: int, *, api: bool = True) -> None:
        """Gateway workers sharing one port (SO_REUSEPORT) and, unless ``api`` is False
        (a dedicated gateway node), the control API; returns once they listen."""
        for i in range(workers):
            self.spawn(f"gateway-{i}", gateway_command())
        s = self.settings
        listeners = [("gateway", s.gateway_host, s.gateway_port)]
        if api:
            self.spawn("control-api", api_command())
            listeners.append(("control API", s.api_host, s.api_port))
        for name, host, port in listeners:
            if not wait_for_port(host, port, 30.0):
                self.stop()
                raise RuntimeError(f"the {name} did not start listening on {host}:{port}")

    def wait(self) -> int:
        """Block until a signal or an essential child's exit; then stop all. Returns 0/1."""
        received: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            received.append(signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        try:
            while not received:
                for child in list(self.children):
                    code = child.process.poll()
                    if code is None:
                        continue
                    if child.essential:
                        log.error("%s exited with status %s; stopping", child.name, code)
                        status = 1
                        received.append(0)
                        break
                    log.warning("%s exited with status %s", child.name, code)
                    self.children.remove(child)
                time.sleep(0.2)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def stop(self, timeout: float = 15.0) -> None:
        if self._stopping:
            return
        self._stopping = True
        # Agents first, then the servers, so servers can drain what agents sent.
        ordered = sorted(self.children, key=lambda c: c.essential)
        for child in ordered:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in ordered:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()
        self.children.clear()
