"""The supervisor keeps a deployment's servers running: real processes, real kill -9.

End to end, ``fleetd gateway`` and ``fleetd serve`` as an operator runs them, against the
test storage; the restart policy's edges with a ``Supervisor`` running small real child
processes (a crashing one, a steady one, one that leaves a process behind), in this
process or, where a signal must reach the supervisor, in a process of its own.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from fleetd.settings import Settings
from fleetd_cli.supervisor import RestartPolicy, Supervisor
from tests.support.storage import StorageServers
from tests.support.waiting import free_port

REPO = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def _until(check: Callable[[], object], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class Deployment:
    """A ``fleetd`` command running as its own process, with its log."""

    def __init__(self, process: subprocess.Popen[bytes], data_dir: Path, settings: Settings):
        self.process = process
        self.data_dir = data_dir
        self.settings = settings

    @property
    def log(self) -> str:
        return (self.data_dir / "fleetd.log").read_text()

    def pid(self, name: str) -> int:
        """The pid the supervisor started (or last restarted) ``name`` with."""
        found = re.findall(rf"started {name} \(pid (\d+)", self.log)
        assert found, self.log
        return int(found[-1])

    def listens(self, pid: int, port: int) -> bool:
        try:
            return any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in psutil.Process(pid).net_connections(kind="tcp")
            )
        except psutil.NoSuchProcess:
            return False

    def stop(self) -> int:
        """SIGTERM, as an init system sends; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@contextmanager
def fleetd(servers: StorageServers, database_url: str, *argv: str) -> Iterator[Deployment]:
    data_dir = Path(tempfile.mkdtemp(prefix="fleetd-supervisor-", dir="/tmp"))
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=servers.redis_url,
        api_port=free_port(),
        gateway_port=free_port(),
    )
    env = {**os.environ, **settings.to_env()}
    with open(data_dir / "fleetd.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetd_cli.main", *argv],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deployment = Deployment(process, data_dir, settings)
    try:
        _until(
            lambda: "Ctrl-C" in deployment.log or process.poll() is not None,
            60,
            "the deployment to start",
        )
        assert process.poll() is None, deployment.log
        yield deployment
    finally:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()


def _list_devices(settings: Settings) -> int:
    """ListDevices over Connect JSON with the admin key (the app and PostgreSQL behind
    Envoy, not only Envoy); the HTTP status, 0 when nothing answers."""
    context = ssl.create_default_context(cafile=str(settings.paths.ca_cert))
    conn = http.client.HTTPSConnection(
        settings.api_host, settings.api_port, context=context, timeout=5
    )
    try:
        conn.request(
            "POST",
            "/fleetd.v1.DeviceService/ListDevices",
            body=json.dumps({"page_size": 1}),
            headers={
                "content-type": "application/json",
                "x-api-key": settings.paths.admin_api_key.read_text().strip(),
            },
        )
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def test_killed_gateway_worker_is_restarted_and_rebinds_the_shared_port(
    servers: StorageServers, database_url: str
) -> None:
    with fleetd(servers, database_url, "gateway", "--workers", "2") as deployment:
        port = deployment.settings.gateway_port
        killed = deployment.pid("gateway-0")
        other = deployment.pid("gateway-1")
        os.kill(killed, signal.SIGKILL)
        _until(lambda: "restarted gateway-0" in deployment.log, 15, "a restart")
        assert (
            f"gateway-0 (pid {killed}) exited with status -9 (killed by SIGKILL) after"
            in deployment.log
        )
        assert "restarting it in 0.1 s (exit 1 of at most 5 within 60 s)" in deployment.log
        new = deployment.pid("gateway-0")
        assert new != killed
        _until(lambda: deployment.listens(new, port), 20, "the new worker listening")
        assert deployment.pid("gateway-1") == other and _alive(other)
        assert deployment.stop() == 0
        assert not _alive(new) and not _alive(other)


def test_killed_control_api_and_its_envoy_are_restarted_and_answer_again(
    servers: StorageServers, database_url: str
) -> None:
    with fleetd(servers, database_url, "serve") as deployment:
        settings = deployment.settings
        _until(lambda: _list_devices(settings) == 200, 30, "the control API answering")
        # The launcher (the supervisor's child) first. Its Envoy usually exits by itself
        # within milliseconds; if the supervisor sees it first, it stops it (that path:
        # test_leftover_process_group_is_stopped_before_restart). Either way it is gone
        # before the new launcher's Envoy needs the port.
        launcher = deployment.pid("control-api")
        envoy = psutil.Process(launcher).children()[0].pid
        os.kill(launcher, signal.SIGKILL)
        _until(lambda: "restarted control-api" in deployment.log, 15, "a restart")
        assert not _alive(envoy), "the killed launcher's Envoy still runs"
        _until(lambda: _list_devices(settings) == 200, 30, "the control API answering")
        # Then Envoy itself: the launcher sees it go, exits, and is restarted.
        launcher = deployment.pid("control-api")
        envoy = psutil.Process(launcher).children()[0].pid
        os.kill(envoy, signal.SIGKILL)
        _until(lambda: "; restart 2)" in deployment.log, 15, "a second restart")
        _until(lambda: _list_devices(settings) == 200, 30, "the control API answering")
        assert "stopping the deployment" not in deployment.log
        new = deployment.pid("control-api")
        envoys = [p.pid for p in psutil.Process(new).children()]
        assert deployment.stop() == 0
        assert not any(_alive(pid) for pid in [new, *envoys])


def test_killed_server_is_restarted_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleetd_cli.supervisor")
    sup = Supervisor(Settings(data_dir=tmp_path))
    try:
        child = sup.spawn("server", SLEEPER)
        waits = []
        for restarts in (1, 2, 3):
            pid = child.process.pid
            os.kill(pid, signal.SIGKILL)
            child.process.wait()
            killed = time.monotonic()

            def restarted(n: int = restarts) -> bool:
                sup.check()
                return child.restarts == n

            _until(restarted, 15, f"restart {restarts}")
            waits.append(time.monotonic() - killed)
            assert child.process.pid != pid and child.process.poll() is None
        # Exits in a row (each run shorter than 10 s) double the delay: 0.1, 0.2, 0.4 s.
        assert caplog.text.count("exited with status -9 (killed by SIGKILL) after") == 3
        for delay in ("0.1", "0.2", "0.4"):
            assert f"restarting it in {delay} s" in caplog.text
        assert waits[0] >= 0.1 and waits[1] >= 0.2 and waits[2] >= 0.4, waits
        assert "restarted server (pid" in caplog.text and "restart 3)" in caplog.text
        assert sup.gave_up is None
    finally:
        sup.stop()


def test_repeated_fast_crashes_give_up_with_a_clear_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleetd_cli.supervisor")
    sup = Supervisor(Settings(data_dir=tmp_path))
    steady = sup.spawn("steady", SLEEPER)
    crasher = sup.spawn("crasher", CRASHER)
    started = time.monotonic()
    assert sup.wait() == 1
    # 0.1 + 0.2 + 0.4 + 0.8 s of backoff between the five exits.
    assert 1.5 <= time.monotonic() - started < 20
    assert crasher.restarts == 4
    assert sup.gave_up is not None
    assert re.fullmatch(
        r"crasher exited 5 times within 60 s \(last: status 3 after \d+\.\d s\); "
        r"giving up on it and stopping the deployment\. Its output above says why; "
        r"fix that and start again",
        sup.gave_up,
    )
    assert sup.gave_up in caplog.text
    assert "crasher (pid" in caplog.text and "exited with status 3" in caplog.text
    assert steady.process.poll() == -signal.SIGTERM  # stopped by the supervisor, not left


def test_agent_exit_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetd_cli.supervisor")
    sup = Supervisor(Settings(data_dir=tmp_path))
    try:
        server = sup.spawn("gateway-0", SLEEPER)
        agent = sup.spawn(
            "agent-001", [sys.executable, "-c", "raise SystemExit(1)"], essential=False
        )
        agent.process.wait()

        def noticed() -> bool:
            sup.check()
            return agent not in sup.children

        _until(noticed, 10, "the agent's exit noticed")
        for _ in range(5):  # a few more rounds: still nothing restarted
            sup.check()
            time.sleep(0.05)
        assert "agent-001 exited with status 1" in caplog.text
        assert "restart" not in caplog.text
        assert sup.children == [server] and server.process.poll() is None
        assert sup.gave_up is None
    finally:
        sup.stop()


def test_leftover_process_group_is_stopped_before_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleetd_cli.supervisor")
    pid_file = tmp_path / "grandchild"
    # A launcher that starts a server of its own (as the control API starts Envoy).
    launcher = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from pathlib import Path
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        Path({str(pid_file)!r}).write_text(str(child.pid))
        time.sleep(300)
        """
    )
    sup = Supervisor(Settings(data_dir=tmp_path))
    try:
        child = sup.spawn("launcher", [sys.executable, "-c", launcher])
        _until(lambda: pid_file.exists() and pid_file.read_text(), 15, "the grandchild")
        grandchild = int(pid_file.read_text())
        pid_file.unlink()
        os.kill(child.process.pid, signal.SIGKILL)

        def restarted() -> bool:
            sup.check()
            return child.restarts == 1

        _until(restarted, 15, "a restart")
        assert not _alive(grandchild)
        assert "launcher left processes behind" in caplog.text
        # The leftover was gone before the new launcher started.
        assert caplog.text.index("left processes behind") < caplog.text.index("restarted")
        _until(lambda: pid_file.exists() and pid_file.read_text(), 15, "a new grandchild")
    finally:
        sup.stop()


# Runs a Supervisor in a process of its own, so that a signal reaches it as it reaches
# `fleetd serve`. argv: data dir, first restart delay, then a JSON list of children
# [name, argv, essential].
DRIVER = textwrap.dedent(
    """
    import json, logging, sys
    from pathlib import Path
    from fleetd.settings import Settings
    from fleetd_cli.supervisor import RestartPolicy, Supervisor

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    delay = float(sys.argv[2])
    policy = RestartPolicy(first_delay=delay, max_delay=delay)
    with Supervisor(Settings(data_dir=Path(sys.argv[1])), policy=policy) as sup:
        for name, argv, essential in json.loads(sys.argv[3]):
            child = sup.spawn(name, argv, essential=essential)
            print("pid", name, child.process.pid, flush=True)
        sys.exit(sup.wait())
    """
)


@contextmanager
def supervisor_process(
    tmp_path: Path, first_delay: float, children: list[tuple[str, list[str], bool]]
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    out = tmp_path / "supervisor.log"
    with open(out, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(tmp_path), str(first_delay), json.dumps(children)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, out
    finally:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()


def _pids(log: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"^pid (\S+) (\d+)$", log.read_text(), re.M)}


def test_sigterm_during_backoff_stops_at_once_without_restarting(tmp_path: Path) -> None:
    children = [("steady", SLEEPER, True), ("crasher", CRASHER, True)]
    with supervisor_process(tmp_path, 30.0, children) as (process, out):
        _until(lambda: "restarting it in 30.0 s" in out.read_text(), 30, "the backoff")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    text = out.read_text()
    assert "crasher (pid" in text and "exited with status 3" in text
    assert "SIGTERM received; stopping" in text
    assert "restarted" not in text
    assert not _alive(_pids(out)["steady"])


# Notes SIGTERM and its exit in a shared file; takes `delay` seconds to stop.
STOPPING = textwrap.dedent(
    """
    import signal, sys, time
    name, delay, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    def note(what):
        with open(path, "a") as f:
            f.write(f"{name} {what}\\n")
    def term(*_):
        note("term")
        time.sleep(delay)
        note("exit")
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    note("up")
    while True:
        time.sleep(1)
    """
)


def test_sigterm_stops_everything_in_order(tmp_path: Path) -> None:
    events = tmp_path / "events"

    def stopping(name: str, delay: float) -> list[str]:
        return [sys.executable, "-c", STOPPING, name, str(delay), str(events)]

    # Started servers first, as `fleetd demo` does; agents take a moment to stop.
    children = [
        ("gateway-0", stopping("gateway-0", 0.0), True),
        ("control-api", stopping("control-api", 0.0), True),
        ("agent-001", stopping("agent-001", 0.5), False),
        ("agent-002", stopping("agent-002", 0.3), False),
    ]
    with supervisor_process(tmp_path, 0.1, children) as (process, out):
        _until(lambda: events.exists() and events.read_text().count(" up") == 4, 30, "all up")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    lines = events.read_text().split("\n")
    stopped = [line for line in lines if line.endswith((" term", " exit"))]
    agents_done = max(stopped.index(f"agent-00{i} exit") for i in (1, 2))
    servers_told = min(stopped.index(f"{s} term") for s in ("gateway-0", "control-api"))
    assert agents_done < servers_told, stopped
    assert len(stopped) == 8, stopped  # every child told, every child gone
    assert "SIGTERM received; stopping" in out.read_text()
    assert not any(_alive(pid) for pid in _pids(out).values())


def test_backoff_doubles_up_to_five_seconds_and_starts_over_after_a_healthy_run() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert policy.in_a_row(3, uptime=2.0) == 4
    assert policy.in_a_row(3, uptime=10.0) == 1
