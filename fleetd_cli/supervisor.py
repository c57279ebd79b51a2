"""Runs a deployment on one node: storage, gateway workers, the control API, demo agents.

The supervisor starts the embedded servers (unless URLs are configured), applies
migrations once, then runs every component as a child process configured through its
environment, each in its own process group. On SIGINT, SIGTERM or SIGHUP it stops
everything: the agents (demo) first, then the servers.

A server process (a gateway worker, the control API) that exits while the deployment runs
is restarted, whatever its exit status, after a delay that doubles with each exit in a row
(``RestartPolicy``: 0.1 s, 0.2 s, 0.4 s ... up to 5 s; back to 0.1 s once a run lasted 10 s);
each exit and restart is logged with the exit status. When one server exits
``max_exits`` times within ``window`` seconds (5 in 60 s) the supervisor gives up: it
logs why, stops everything and ``wait`` returns 1. Processes a dead child leaves behind
in its group (the control API's Envoy, when its launcher is killed) are stopped before the
restart, so the new child gets the port. An agent (demo) that exits is logged and left
alone: agents are the devices. While stopping, nothing is restarted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fleetd.settings import Settings
from fleetd.storage.postgres import connect

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
"""How often children are checked for an exit (and pending restarts for their time)."""
GROUP_GRACE_SECONDS = 3.0
"""How long what a dead child left in its process group gets after SIGTERM, before SIGKILL."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_Handler = Callable[[int, FrameType | None], Any] | int | None


class StartupFailed(RuntimeError):
    """A server exited, or did not listen, while the deployment was starting."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a server process that exited is started again, and when to stop trying.

    The n-th exit in a row waits ``first_delay * 2**(n-1)`` seconds, at most
    ``max_delay``; a run that lasted ``healthy_after`` seconds starts the series over.
    ``max_exits`` exits of one server within ``window`` seconds (however long each run
    lasted) mean restarting does not help: the supervisor gives up.
    """

    first_delay: float = 0.1
    max_delay: float = 5.0
    healthy_after: float = 10.0
    max_exits: int = 5
    window: float = 60.0

    def in_a_row(self, before: int, uptime: float) -> int:
        """Exits in a row after one that ended a run of ``uptime`` seconds, ``before``
        having been counted until then."""
        return 1 if uptime >= self.healthy_after else before + 1

    def delay(self, in_a_row: int) -> float:
        """Seconds to wait before the restart that follows the ``in_a_row``-th exit."""
        return min(self.max_delay, self.first_delay * 2.0 ** min(max(in_a_row, 1) - 1, 30))


def describe_status(code: int) -> str:
    """``status 1``, or ``status -9 (killed by SIGKILL)`` for a signal."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"status {code} (killed by {name})"
    return f"status {code}"


@dataclass
class Child:
    """One component: the process running now, and how to start it again."""

    name: str
    process: subprocess.Popen[bytes]
    essential: bool
    """A server: restarted when it exits; giving up on it stops the deployment."""
    argv: list[str] = field(default_factory=list)
    extra_env: dict[str, str] | None = None
    log_file: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None
    """When a pending restart is due (monotonic), or None while a process runs."""
    exits: collections.deque[float] = field(default_factory=collections.deque)
    """Monotonic times of this server's exits within the policy's window."""
    in_a_row: int = 0
    """Exits since the last run that lasted ``healthy_after``."""
    restarts: int = 0


def gateway_command() -> list[str]:
    return [sys.executable, "-m", "gateway"]


def api_command() -> list[str]:
    return [sys.executable, "-m", "control_api"]


def wait_for_port(
    host: str, port: int, timeout: float, while_true: Callable[[], bool] = lambda: True
) -> bool:
    """Whether ``host:port`` accepts a connection within ``timeout`` seconds; gives up
    early once ``while_true()`` is false (what should listen has exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and while_true():
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def _group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie (an orphan whose
    new parent has not reaped it yet holds no port and needs no signal)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or no longer ours
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def end_group(name: str, pgid: int, grace: float = GROUP_GRACE_SECONDS) -> None:
    """Stop what is left of a child's process group once the child itself has exited:
    SIGTERM, then SIGKILL after ``grace`` seconds."""
    if not _group_alive(pgid):
        return
    log.warning("%s left processes behind (process group %d); stopping them", name, pgid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    log.warning("what %s left behind did not stop in time; killing it", name)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.05)


@dataclass
class Supervisor:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    gave_up: str | None = None
    """Why the supervisor stopped the deployment by itself, once it did."""
    _stopping: bool = False
    _previous_handlers: dict[signal.Signals, _Handler] = field(default_factory=dict)

    def __enter__(self) -> Supervisor:
        """Until ``wait`` takes over, SIGTERM and SIGHUP interrupt start-up as Ctrl-C does
        (children are in their own process groups: only the supervisor gets the signal);
        leaving the block stops every child."""

        def interrupt(_signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        self._previous_handlers = {
            sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)
        }
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.stop()
        finally:
            for sig, handler in self._previous_handlers.items():
                signal.signal(sig, handler)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        env.setdefault("PYTHONUNBUFFERED", "1")
        if extra:
            env.update(extra)
        return env

    def _popen(
        self, argv: Sequence[str], extra_env: dict[str, str] | None, log_file: Path | None
    ) -> subprocess.Popen[bytes]:
        out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - owned by the child
        try:
            return subprocess.Popen(
                list(argv),
                env=self.env(extra_env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                # Its own group: what it starts (the control API's Envoy) can be stopped
                # with it, and a Ctrl-C reaches only the supervisor, which stops children
                # in order.
                process_group=0,
            )
        finally:
            if out:
                out.close()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        essential: bool = True,
        extra_env: dict[str, str] | None = None,
        log_file: Path | None = None,
    ) -> Child:
        process = self._popen(argv, extra_env, log_file)
        child = Child(name, process, essential, list(argv), extra_env, log_file)
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
        s = self.settings
        listeners = [("gateway", s.gateway_host, s.gateway_port)]
        try:
            for i in range(workers):
                self.spawn(f"gateway-{i}", gateway_command())
            if api:
                self.spawn("control-api", api_command())
                listeners.append(("control API", s.api_host, s.api_port))
            for name, host, port in listeners:
                if not wait_for_port(host, port, 30.0, while_true=self._none_exited):
                    raise StartupFailed(self._not_listening(name, host, port))
        except BaseException:
            self.stop()
            raise

    def _none_exited(self) -> bool:
        return all(c.process.poll() is None for c in self.children)

    def _not_listening(self, name: str, host: str, port: int) -> str:
        """Why start-up failed: a server that exited (not restarted while starting: an
        exit then is a configuration or environment error, restarting would not help),
        or one that never listened."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                return (
                    f"{child.name} exited with {describe_status(code)} while starting; "
                    "its output above says why"
                )
        return f"the {name} did not start listening on {host}:{port} within 30 s"

    def wait(self) -> int:
        """Keep the servers running until SIGINT, SIGTERM or SIGHUP (0) or until giving
        up on one (1); then stop all."""
        received: list[int] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            received.append(signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        try:
            while not received and self.gave_up is None:
                self.check()
                time.sleep(POLL_SECONDS)
            if received:
                log.info("%s received; stopping", signal.Signals(received[0]).name)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self.gave_up is not None else 0

    def check(self) -> None:
        """One round: note exits, schedule restarts, start what is due. Called by
        ``wait``; does nothing once stopping has begun or after giving up."""
        for child in list(self.children):
            if self._stopping or self.gave_up is not None:
                return
            now = time.monotonic()
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            end_group(child.name, child.process.pid)
            if child.essential:
                self._exited(child, code, time.monotonic())
            else:
                log.warning("%s exited with %s", child.name, describe_status(code))
                self.children.remove(child)

    def _exited(self, child: Child, code: int, now: float) -> None:
        policy = self.policy
        uptime = now - child.started_at
        child.exits.append(now)
        while child.exits and child.exits[0] < now - policy.window:
            child.exits.popleft()
        if len(child.exits) >= policy.max_exits:
            self.gave_up = (
                f"{child.name} exited {len(child.exits)} times within {policy.window:g} s "
                f"(last: {describe_status(code)} after {uptime:.1f} s); giving up on it "
                "and stopping the deployment. Its output above says why; fix that and "
                "start again"
            )
            log.error("%s", self.gave_up)
            return
        child.in_a_row = policy.in_a_row(child.in_a_row, uptime)
        delay = policy.delay(child.in_a_row)
        child.restart_at = now + delay
        log.warning(
            "%s (pid %d) exited with %s after %.1f s; restarting it in %.1f s "
            "(exit %d of at most %d within %g s)",
            child.name,
            child.process.pid,
            describe_status(code),
            uptime,
            delay,
            len(child.exits),
            policy.max_exits,
            policy.window,
        )

    def _restart(self, child: Child) -> None:
        child.restart_at = None
        try:
            child.process = self._popen(child.argv, child.extra_env, child.log_file)
        except OSError as exc:
            log.error("cannot restart %s: %s", child.name, exc)
            self._exited(child, 127, time.monotonic())
            return
        child.started_at = time.monotonic()
        child.restarts += 1
        log.warning(
            "restarted %s (pid %d; restart %d)", child.name, child.process.pid, child.restarts
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every child: first the agents, then (once they are gone) the servers, so
        servers drain what agents sent. Each group gets SIGTERM at once and ``timeout``
        seconds in all, then SIGKILL; what a child left in its process group goes with it.
        Nothing is restarted once this has begun."""
        if self._stopping:
            return
        self._stopping = True
        deadline = time.monotonic() + timeout
        for essential in (False, True):
            self._stop_all([c for c in self.children if c.essential is essential], deadline)
        self.children.clear()

    def _stop_all(self, children: list[Child], deadline: float) -> None:
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()
            end_group(child.name, child.process.pid)
