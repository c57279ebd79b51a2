"""The system under load: storage, provisioned devices and servers, each its own process.

``load_stack(devices)`` starts embedded PostgreSQL and Redis (or uses
``FLEETD_TEST_DATABASE_URL`` / ``FLEETD_TEST_REDIS_URL``, as the tests do), creates a fresh
migrated database, inserts the provisioned devices (``bench.load.provision``), and can then
start, as separate processes on loopback ports: the real gateway (``python -m gateway``,
production settings unless overridden), the bare grpc.aio echo server and the
FastAPI/uvicorn baseline. Each ``ServerProcess`` reads its own CPU time and memory through
psutil, so a benchmark can charge costs to the server rather than to the generator.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.load.generator import raise_fd_limit
from bench.load.provision import ROOT, Population, provision
from fleetd.settings import Settings
from fleetd_cli.supervisor import wait_for_port
from tests.support.storage import drop_database, fresh_database, storage_servers

LOGS = ROOT / "logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A server under test, started by this process."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.popen.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its threads."""
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def connections(self) -> int:
        """Established TCP connections on the server's port."""
        return sum(
            1
            for c in self.process.net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
        )

    def stop(self, timeout: float = 30.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _spawn(
    name: str, argv: list[str], env: dict[str, str], port: int, cwd: Path | None = None
) -> ServerProcess:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(name, popen, port, log)
    if not wait_for_port("127.0.0.1", port, 60.0):
        server.stop()
        raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}; see {log}")
    return server


@dataclass
class LoadStack:
    population: Population
    settings: Settings
    devices: int
    servers: list[ServerProcess] = field(default_factory=list)

    @property
    def ca_pem(self) -> bytes:
        return self.population.ca_pem

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        env["FLEETD_REDIS_FLUSH_INTERVAL"] = repr(self.settings.redis_flush_interval)
        env["FLEETD_POSTGRES_FLUSH_INTERVAL"] = repr(self.settings.postgres_flush_interval)
        env["GRPC_VERBOSITY"] = "ERROR"
        env.update(extra or {})
        return env

    def start_gateway(self, port: int | None = None, **extra_env: str) -> ServerProcess:
        """``python -m gateway`` (one process) with this stack's settings."""
        return self.start_gateway_from(None, "gateway", port, extra_env)

    def start_gateway_from(
        self, tree: Path | None, name: str, port: int | None, extra_env: dict[str, str]
    ) -> ServerProcess:
        """``python -m gateway`` from the source tree ``tree`` (another checkout, for an A/B
        run; None: this one), logged as ``name``."""
        port = port or free_port()
        env = self._env({"FLEETD_GATEWAY_ADDR": f"127.0.0.1:{port}", **extra_env})
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        server = _spawn(name, [sys.executable, "-m", "gateway"], env, port, cwd=tree)
        self.servers.append(server)
        return server

    def start_echo(self, *, report_session_reuse: bool = False) -> ServerProcess:
        port = free_port()
        argv = [sys.executable, "-m", "bench.load.echo_server", "--port", str(port)]
        argv += ["--data-dir", str(self.settings.data_dir)]
        if report_session_reuse:
            argv.append("--report-session-reuse")
        server = _spawn("echo", argv, self._env(), port)
        self.servers.append(server)
        return server

    def start_fastapi(self) -> ServerProcess:
        port = free_port()
        paths = self.settings.paths
        # uvicorn's --ssl-cert-reqs 2 is ssl.CERT_REQUIRED: client certificates are verified.
        argv = [sys.executable, "-m", "uvicorn", "bench.load.http_baseline:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
        argv += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
        argv += ["--ssl-certfile", str(paths.server_cert), "--ssl-keyfile", str(paths.server_key)]
        argv += ["--ssl-ca-certs", str(paths.ca_cert), "--ssl-cert-reqs", "2"]
        server = _spawn("fastapi", argv, self._env(), port)
        self.servers.append(server)
        return server

    def stop(self, server: ServerProcess) -> None:
        server.stop()
        self.servers.remove(server)


@contextmanager
def load_stack(devices: int, *, heartbeat_interval: float = 30.0) -> Iterator[LoadStack]:
    """Storage with ``devices`` provisioned devices; servers are started by the caller."""
    raise_fd_limit()  # inherited by the servers this process starts
    population = Population()
    spent = population.ensure(devices)
    if spent:
        print(f"stack: generated device certificates in {spent:.1f}s (cached for reruns)")
    with storage_servers() as storage:
        url = asyncio.run(fresh_database(storage))
        try:
            took = asyncio.run(provision(url, population.load(0, devices)))
            print(f"stack: {devices:,} devices inserted in {took:.1f}s")
            settings = Settings(
                data_dir=population.paths.root,
                database_url=url,
                redis_url=storage.redis_url,
                heartbeat_interval=heartbeat_interval,
            )
            stack = LoadStack(population, settings, devices)
            try:
                yield stack
            finally:
                for server in list(stack.servers):
                    stack.stop(server)
        finally:
            asyncio.run(drop_database(storage, url))


def wait_until(predicate: object, timeout: float, step: float = 0.2) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
