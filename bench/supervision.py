"""Self-healing under load: kill -9 parts of a running ``fleetd serve``; how soon is every
device ONLINE again, and was anything acknowledged lost?

    .venv/bin/python bench/supervision.py [--devices 300] [--workers 2] [--interval 5]
    (or python -m bench.supervision)

One ``fleetd serve --workers W`` on the embedded default (its own PostgreSQL and Redis in a
temporary data directory, free loopback ports), exactly as an operator starts it. Then
``--devices`` real agents (``agent.runner.Agent``, in this process, each with its own key,
certificate and mTLS channel, enrolled as RegisterDevice enrols) heartbeat on the agent's
HeartbeatStream at the interval the gateway hands out, and each keeps its durable outbox
(``agent.outbox``) of status reports walking assignments DOWNLOADING -> ... -> HEALTHY,
one report every two intervals, sent by the agent's own ``OutboxSender`` (retried with
backoff until acknowledged). The agents' reconnection is the agent's own code: nothing
here helps them.

Scenarios, in this order in one run, each after the fleet settled (every restarted
process up for more than the restart policy's 10 s, so each restart waits 0.1 s):

1. kill -9 of the gateway worker holding the most device connections;
2. kill -9 of every gateway worker at once (no gateway at all for a moment);
3. SIGTERM to the busiest gateway worker (a clean restart: it drains, exits, the
   supervisor starts it again) -- the comparison for 1;
4. SIGTERM to the control API (clean restart) -- the comparison for
5. kill -9 of the control API (its launcher process; the supervisor also stops the Envoy
   the launcher leaves behind, if it has not gone by itself), and
6. kill -9 of the control API's Envoy (the launcher notices, exits, is restarted).

Measured for the gateway scenarios, from the signal: when each *disrupted* device (its
heartbeat stream failed or was ended) had a heartbeat acknowledged again; and when the
control API showed every device ONLINE with a ``last_seen`` after the signal (ListDevices
``status:online AND last_seen:>T``, total_count, polled every 0.25 s) -- the operator's
view, which includes the gateway's PostgreSQL flush (1 s) and, for devices whose stream
did not break, their next heartbeat (up to one interval). For the control API: when
ListDevices answered again (polled every 50 ms), and that no device's heartbeat failed
meanwhile (devices talk to the gateway only).

Compared side by side in the same run: kill -9 against the clean restart of the same
process (the ratio says what a crash costs beyond a restart), and the time to ONLINE
against the heartbeat interval (a device that is never disturbed shows a fresh
``last_seen`` within one interval anyway).

Asserted: every scenario within 10 s (the issue's target), the supervisor restarted what
was killed and never gave up; nothing acknowledged lost: every status report an agent got
an acknowledgement for is in PostgreSQL (``artifact_status_reports``), none was refused for
good, and after the agents stop and ``fleetd serve`` is stopped cleanly, every device's
last acknowledged heartbeat is in PostgreSQL (``devices.last_seen`` no older than the
acknowledgement's round trip). ``fleetd serve`` must exit 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/supervision.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import logging
import os
import re
import signal
import ssl
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import psutil

from agent import sysstats
from agent.backoff import Backoff
from agent.config import AgentConfig
from agent.credentials import CredentialStore, Enrollment
from agent.outbox import Outbox, OutboxSender
from agent.runner import RPC_TIMEOUT, Agent
from bench.harness import Report
from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services.certificates import issue_device_certificate
from fleetd.services.pki import CertificateAuthority
from fleetd.settings import Settings
from fleetd.storage.assignments import create_assignments
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.embedded import storage_urls
from fleetd.storage.postgres import connect
from tests.support.waiting import free_port

GROUP = "supervision"
REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 10.0
ASSIGNMENTS_PER_DEVICE = 12
STATES = (
    agent_pb2.ARTIFACT_STATE_DOWNLOADING,
    agent_pb2.ARTIFACT_STATE_VERIFYING,
    agent_pb2.ARTIFACT_STATE_APPLYING,
    agent_pb2.ARTIFACT_STATE_HEALTHY,
)


# --- the deployment ---------------------------------------------------------------------


@dataclass
class Deployment:
    """``fleetd serve`` as its own process; its supervisor's log tells the children's pids."""

    process: subprocess.Popen[bytes]
    settings: Settings
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pid(self, name: str) -> int:
        found = re.findall(rf"started {re.escape(name)} \(pid (\d+)", self.log)
        if not found:
            raise RuntimeError(f"{name} never started; see {self.log_path}")
        return int(found[-1])

    def connections(self, name: str) -> int:
        """Established device connections on the gateway port held by worker ``name``."""
        port = self.settings.gateway_port
        try:
            held = psutil.Process(self.pid(name)).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            return 0
        return sum(
            1
            for c in held
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
        )

    def busiest(self, workers: list[str]) -> str:
        """The worker holding the most device connections (SO_REUSEPORT spreads new
        connections over the workers listening then, so after a restart most devices sit
        on the workers that stayed up)."""
        return max(workers, key=self.connections)

    def envoy(self) -> int:
        children = psutil.Process(self.pid("control-api")).children()
        if not children:
            raise RuntimeError("the control API launcher has no Envoy")
        return int(children[0].pid)


@contextlib.contextmanager
def serve(data_dir: Path, workers: int, interval: float) -> Iterator[Deployment]:
    settings = Settings(
        data_dir=data_dir,
        gateway_port=free_port(),
        api_port=free_port(),
        heartbeat_interval=interval,
        offline_after=3 * interval,
    )
    env = {**os.environ, **settings.to_env(), "GRPC_VERBOSITY": "ERROR"}
    # The embedded default: fleetd serve starts its own PostgreSQL and Redis.
    for name in ("FLEETD_DATABASE_URL", "FLEETD_REDIS_URL"):
        env.pop(name, None)
    log_path = data_dir / "fleetd-serve.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetd_cli.main", "serve", "--workers", str(workers)],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deployment = Deployment(process, settings, log_path)
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops." not in deployment.log:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fleetd serve did not start; see {log_path}")
            time.sleep(0.1)
        yield deployment
    finally:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            process.kill()
            process.wait()


# --- the control API, as an operator asks it ----------------------------------------------


def count_online(settings: Settings, seen_after: float | None, timeout: float = 2.0) -> int | None:
    """ListDevices ``status:online`` (and ``last_seen`` after ``seen_after``): its
    total_count, or None when the control API does not answer 200."""
    terms = ["status:online"]
    if seen_after is not None:
        when = dt.datetime.fromtimestamp(seen_after, dt.UTC).isoformat().replace("+00:00", "Z")
        terms.append(f"last_seen:>{when}")
    context = ssl.create_default_context(cafile=str(settings.paths.ca_cert))
    conn = http.client.HTTPSConnection(
        settings.api_host, settings.api_port, context=context, timeout=timeout
    )
    try:
        conn.request(
            "POST",
            "/fleetd.v1.DeviceService/ListDevices",
            body=json.dumps({"page_size": 1, "filter": " AND ".join(terms)}),
            headers={
                "content-type": "application/json",
                "x-api-key": settings.paths.admin_api_key.read_text().strip(),
            },
        )
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        return int(json.loads(body).get("totalCount", 0))
    except OSError:
        return None
    finally:
        conn.close()


# --- the devices --------------------------------------------------------------------------


@dataclass
class Device(Agent):
    """The real agent, noting when its heartbeats are acknowledged and its streams break."""

    acks: list[float] = field(default_factory=list)
    broken: list[tuple[float, str]] = field(default_factory=list)
    """(when, status code or "ended") for each heartbeat stream that failed or was ended."""

    def _handle(self, response: agent_pb2.HeartbeatResponse) -> float:
        self.acks.append(time.time())
        return super()._handle(response)

    async def _stream_heartbeats(
        self,
        stub: agent_pb2_grpc.AgentServiceStub,
        sampler: sysstats.StatsSampler,
        interval: float,
        backoff: Backoff,
    ) -> float:
        try:
            interval = await super()._stream_heartbeats(stub, sampler, interval, backoff)
        except grpc.aio.AioRpcError as exc:
            self.broken.append((time.time(), exc.code().name))
            raise
        self.broken.append((time.time(), "ended"))
        return interval

    def first_ack_after(self, when: float) -> float | None:
        return next((t for t in self.acks if t > when), None)

    def disrupted_after(self, when: float, until: float) -> float | None:
        return next((t for t, _ in self.broken if when <= t <= until), None)


@dataclass
class Reports:
    """One device's status reports: its outbox, the agent's sender, what was acknowledged."""

    device: Device
    outbox: Outbox
    assignments: list[str]
    acked: list[tuple[float, int]] = field(default_factory=list)
    """(when, sequence) of each acknowledged report."""
    failed_sends: int = 0
    sender: OutboxSender = field(init=False)

    def __post_init__(self) -> None:
        self.sender = OutboxSender(self.outbox, self.send)

    async def send(self, report: agent_pb2.ReportArtifactStatusRequest) -> object:
        try:
            # The agent's channel (and its stub, replaced on a certificate renewal).
            answer = await self.device._stub.ReportArtifactStatus(report, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError:
            self.failed_sends += 1
            raise
        self.acked.append((time.time(), report.sequence))
        return answer

    async def walk(self, every: float) -> None:
        """One report every ``every`` seconds, through each assignment's lifecycle."""
        for assignment_id in self.assignments:
            for state in STATES:
                await asyncio.sleep(every)
                self.outbox.add(
                    agent_pb2.ReportArtifactStatusRequest(
                        assignment_id=assignment_id,
                        state=state,
                        installed_version="2.0.0" if state == STATES[-1] else "",
                    )
                )
                self.sender.wake()


async def enrol(pool: asyncpg.Pool, settings: Settings, root: Path, count: int) -> list[Device]:
    """``count`` agents with their own key and certificate, enrolled as RegisterDevice does
    (device row, certificate signed by the fleet CA and recorded), credentials on disk."""
    ca = CertificateAuthority.load(settings.paths, settings.fleet)
    ca_pem = settings.paths.ca_cert.read_bytes()
    devices = []
    for i in range(count):
        device_id = f"sup-{i:04d}"
        config = AgentConfig(
            api_endpoint=settings.api_endpoint,
            gateway=settings.gateway_endpoint,
            ca_cert=settings.paths.ca_cert,
            data_dir=root / device_id,
            device_id=device_id,
            device_type="raspberry-pi",
            tags=("bench",),
            enrollment_token="",
            once=False,
            container_runtime="none",
        )
        store = CredentialStore(config.data_dir)
        store.ensure_dir()
        _, csr = store.pending_key(device_id)
        async with pool.acquire() as conn, conn.transaction():
            await insert_device(
                conn,
                NewDevice(device_id, settings.fleet, device_id, "raspberry-pi", "1.0", {}, {}),
            )
            issued = await issue_device_certificate(conn, ca, device_id, csr)
        enrollment = Enrollment(device_id, settings.fleet, settings.gateway_endpoint)
        store.save_enrollment(enrollment, issued.pem.encode(), ca_pem)
        devices.append(Device(config, store, enrollment))
    return devices


async def assign(pool: asyncpg.Pool, device: Device) -> list[str]:
    """The device's assignments (one per name, so none supersedes another)."""
    specs = [
        agent_pb2.ArtifactAssignment(
            assignment_id=f"as-{device.enrollment.device_id}-{k}",
            deployment_id="bench-supervision",
            name=f"model-{k}",
            version="2.0.0",
            kind=agent_pb2.ARTIFACT_KIND_MODEL,
            target_path=f"model-{k}/2.0.0/model.onnx",
            sha256="ab" * 32,
            length=1234,
        )
        for k in range(ASSIGNMENTS_PER_DEVICE)
    ]
    async with pool.acquire() as conn:
        await create_assignments(conn, device.enrollment.device_id, specs)
    return [spec.assignment_id for spec in specs]


# --- the scenarios ------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    signal_at: float
    figures: dict[str, float | int | str] = field(default_factory=dict)
    met: bool = False


def _restarts(deployment: Deployment, name: str) -> int:
    return len(re.findall(rf"restarted {re.escape(name)} \(pid", deployment.log))


async def _wait(check: Any, within: float, step: float) -> float | None:
    """Seconds until ``check()`` (sync, run in a thread) is true, or None."""
    start = time.time()
    while time.time() - start < within:
        if await asyncio.to_thread(check):
            return time.time()
        await asyncio.sleep(step)
    return None


async def gateway_scenario(
    deployment: Deployment,
    devices: list[Device],
    name: str,
    targets: list[str],
    sig: signal.Signals,
) -> Outcome:
    before = {t: _restarts(deployment, t) for t in targets}
    pids = [deployment.pid(t) for t in targets]
    connected = sum(deployment.connections(t) for t in targets)
    t0 = time.time()
    for pid in pids:
        os.kill(pid, sig)
    outcome = Outcome(name, t0)
    restarted = await _wait(
        lambda: all(_restarts(deployment, t) > before[t] for t in targets), 30, 0.05
    )
    everyone = len(devices)
    online_at = await _wait(lambda: count_online(deployment.settings, t0) == everyone, 60, 0.25)
    # Every device has had a heartbeat acknowledged after the signal by now (the API
    # counts last_seen after it); a disrupted one's first acknowledgement after its
    # stream broke is when it was back.
    horizon = time.time()
    back = []
    codes: Counter[str] = Counter()
    for d in devices:
        broke = d.disrupted_after(t0, horizon)
        if broke is None:
            continue
        codes.update(code for t, code in d.broken if t0 <= t <= horizon)
        again = d.first_ack_after(broke)
        back.append((again - t0) if again is not None else float("inf"))
    back.sort()
    all_acked = max(
        ((a - t0) if (a := d.first_ack_after(t0)) is not None else float("inf")) for d in devices
    )
    online = (online_at - t0) if online_at is not None else float("inf")
    if online_at is None:  # say who is missing, and what their streams did
        missing = [d for d in devices if d.first_ack_after(t0) is None]
        print(
            f"{name}: {count_online(deployment.settings, t0)} counted ONLINE since the "
            f"signal; {len(missing)} without a heartbeat acknowledged since: "
            + "; ".join(
                f"{d.enrollment.device_id} last ack {d.acks[-1] - t0 if d.acks else None:.1f}"
                f" s, streams {[(round(t - t0, 1), c) for t, c in d.broken[-3:]]}"
                for d in missing[:10]
            ),
            flush=True,
        )
    outcome.figures = {
        "signalled": ",".join(targets),
        "connected_to_target": connected,
        "disrupted": len(back),
        "disrupted_back_max_s": round(back[-1], 2) if back else 0.0,
        "disrupted_back_p50_s": round(statistics.median(back), 2) if back else 0.0,
        "every_device_acked_s": round(all_acked, 2),
        "api_all_online_s": round(online, 2),
        "restarted_s": round(restarted - t0, 2) if restarted is not None else -1.0,
        "stream_breaks": str(dict(codes)),
    }
    outcome.met = (
        restarted is not None
        and online <= TARGET_SECONDS
        and (not back or back[-1] <= TARGET_SECONDS)
    )
    print(f"{name}: {outcome.figures}", flush=True)
    return outcome


async def api_scenario(
    deployment: Deployment,
    devices: list[Device],
    name: str,
    pid: int,
    sig: signal.Signals,
) -> Outcome:
    before = _restarts(deployment, "control-api")
    t0 = time.time()
    os.kill(pid, sig)
    outcome = Outcome(name, t0)
    # Wait for the restart first: a clean stop may answer a last request or two.
    restarted = await _wait(lambda: _restarts(deployment, "control-api") > before, 30, 0.05)
    answered = await _wait(lambda: count_online(deployment.settings, None) is not None, 60, 0.05)
    settled = time.time()
    online_then = count_online(
        deployment.settings, settled - 3 * deployment.settings.heartbeat_interval
    )
    errors = sum(1 for d in devices for t, code in d.broken if t0 <= t <= settled)
    answer = (answered - t0) if answered is not None else float("inf")
    outcome.figures = {
        "api_answers_s": round(answer, 2),
        "restarted_s": round(restarted - t0, 2) if restarted is not None else -1.0,
        "online_after": online_then if online_then is not None else -1,
        "heartbeat_stream_errors": errors,
    }
    outcome.met = (
        restarted is not None
        and answer <= TARGET_SECONDS
        and errors == 0
        and online_then == len(devices)
    )
    print(f"{name}: {outcome.figures}", flush=True)
    return outcome


async def settle(seconds: float) -> None:
    """Long enough for every restarted process to count as healthy (policy: 10 s)."""
    await asyncio.sleep(seconds)


# --- the run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace, deployment: Deployment, database_url: str) -> Report:
    settings = deployment.settings
    interval = args.interval
    logging.getLogger("fleetd.agent").setLevel(logging.ERROR)  # every retry would log
    pool = await connect(database_url, max_size=4, run_migrations=False)
    report = Report(
        GROUP,
        f".venv/bin/python bench/supervision.py --devices {args.devices} "
        f"--workers {args.workers} --interval {interval:g}",
    )
    try:
        started = time.monotonic()
        devices = await enrol(pool, settings, deployment.settings.data_dir / "agents", args.devices)
        reports = [
            Reports(d, Outbox(d.config.data_dir / "outbox"), await assign(pool, d)) for d in devices
        ]
        print(f"enrolled {len(devices)} devices in {time.monotonic() - started:.1f}s", flush=True)
        tasks = [asyncio.create_task(d.run()) for d in devices]
        tasks += [asyncio.create_task(r.sender.run()) for r in reports]
        tasks += [asyncio.create_task(r.walk(2 * interval)) for r in reports]
        up = await _wait(lambda: count_online(settings, None) == len(devices), 120, 0.5)
        assert up is not None, "the devices never all came online"
        print(f"all {len(devices)} devices online; settling", flush=True)
        await settle(max(12.0, 2 * interval))

        workers = [f"gateway-{i}" for i in range(args.workers)]
        outcomes: dict[str, Outcome] = {}
        for key, name, every, sig in (
            ("gw_kill", "kill -9 of the busiest gateway worker", False, signal.SIGKILL),
            ("gw_kill_all", "kill -9 of every gateway worker", True, signal.SIGKILL),
            ("gw_term", "SIGTERM to the busiest gateway worker", False, signal.SIGTERM),
        ):
            targets = workers if every else [deployment.busiest(workers)]
            outcomes[key] = await gateway_scenario(deployment, devices, name, targets, sig)
            await settle(max(12.0, 2 * interval))
        for key, name, envoy, sig in (
            ("api_term", "SIGTERM control API", False, signal.SIGTERM),
            ("api_kill", "kill -9 control API launcher", False, signal.SIGKILL),
            ("envoy_kill", "kill -9 control API's Envoy", True, signal.SIGKILL),
        ):
            pid = deployment.envoy() if envoy else deployment.pid("control-api")
            outcomes[key] = await api_scenario(deployment, devices, name, pid, sig)
            await settle(max(12.0, 2 * interval))

        # Let every outbox empty (reports refused for good would be dropped: counted).
        drained = await _wait(lambda: all(not r.outbox.pending() for r in reports), 60, 0.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopped_at = time.time()
    finally:
        await pool.close()

    # Stop fleetd serve as an init system does; a clean stop flushes every heartbeat.
    deployment.process.send_signal(signal.SIGTERM)
    status = await asyncio.to_thread(deployment.process.wait, 60)
    log = deployment.log
    assert status == 0, f"fleetd serve exited with {status}; see {deployment.log_path}"
    assert "giving up" not in log, log

    pool = await connect(database_url, max_size=1, run_migrations=False)
    try:
        stored_reports = {
            (r["device_id"], r["sequence"])
            for r in await pool.fetch("SELECT device_id, sequence FROM artifact_status_reports")
        }
        last_seen = {
            r["device_id"]: r["last_seen"].timestamp()
            for r in await pool.fetch("SELECT device_id, last_seen FROM devices")
        }
    finally:
        await pool.close()
    acked = {(r.device.enrollment.device_id, seq) for r in reports for _, seq in r.acked}
    lost_reports = acked - stored_reports
    windows = [(o.signal_at, o.signal_at + TARGET_SECONDS) for o in outcomes.values()]
    acked_in_windows = sum(
        1 for r in reports for t, _ in r.acked if any(a <= t <= b for a, b in windows)
    )
    retried = sum(r.failed_sends for r in reports)
    # The last acknowledged heartbeat's arrival is within its round trip before the ack.
    lost_heartbeats = [
        d.enrollment.device_id
        for d in devices
        if not d.acks or last_seen.get(d.enrollment.device_id, 0.0) < d.acks[-1] - 0.5
    ]
    assert stopped_at
    nothing_lost = not lost_reports and not lost_heartbeats and drained is not None

    n = len(devices)
    o = outcomes
    ratio_kill = _ratio(
        o["gw_kill"].figures["disrupted_back_max_s"], o["gw_term"].figures["disrupted_back_max_s"]
    )
    report.add(
        f"kill -9 of 1 of {args.workers} gateway workers, {n} agents on HeartbeatStream, "
        f"interval {interval:g} s",
        f"{o['gw_kill'].figures['disrupted']} disrupted devices (of "
        f"{o['gw_kill'].figures['connected_to_target']} connected to it) all back in "
        f"{o['gw_kill'].figures['disrupted_back_max_s']} s (p50 "
        f"{o['gw_kill'].figures['disrupted_back_p50_s']} s); all {n} ONLINE in the control "
        f"API with a heartbeat after the kill in {o['gw_kill'].figures['api_all_online_s']} s "
        f"= {_ratio(o['gw_kill'].figures['api_all_online_s'], interval)} interval; clean "
        f"restart (SIGTERM to the busiest worker, same run): "
        f"{o['gw_term'].figures['disrupted']} back in "
        f"{o['gw_term'].figures['disrupted_back_max_s']} s, all ONLINE in "
        f"{o['gw_term'].figures['api_all_online_s']} s; kill -9 / clean {ratio_kill}; "
        f"worker restarted after {o['gw_kill'].figures['restarted_s']} s",
        f"all ONLINE <= {TARGET_SECONDS:g} s",
        o["gw_kill"].met and o["gw_term"].met,
        **{f"kill_{k}": v for k, v in o["gw_kill"].figures.items()},
        **{f"term_{k}": v for k, v in o["gw_term"].figures.items()},
    )
    report.add(
        f"kill -9 of every gateway worker ({args.workers}) at once, {n} agents",
        f"all {o['gw_kill_all'].figures['disrupted']} disrupted devices back in "
        f"{o['gw_kill_all'].figures['disrupted_back_max_s']} s (p50 "
        f"{o['gw_kill_all'].figures['disrupted_back_p50_s']} s); all ONLINE in the control "
        f"API in {o['gw_kill_all'].figures['api_all_online_s']} s = "
        f"{_ratio(o['gw_kill_all'].figures['api_all_online_s'], interval)} interval; "
        f"stream errors {o['gw_kill_all'].figures['stream_breaks']}",
        f"all ONLINE <= {TARGET_SECONDS:g} s",
        o["gw_kill_all"].met,
        **o["gw_kill_all"].figures,
    )
    report.add(
        "kill -9 of the control API (launcher; then its Envoy) while agents heartbeat",
        f"answering again after {o['api_kill'].figures['api_answers_s']} s (Envoy killed: "
        f"{o['envoy_kill'].figures['api_answers_s']} s; clean SIGTERM restart, same run: "
        f"{o['api_term'].figures['api_answers_s']} s; kill -9 / clean "
        f"{_ratio(o['api_kill'].figures['api_answers_s'], o['api_term'].figures['api_answers_s'])}"
        f"); heartbeat errors during the outages "
        f"{o['api_kill'].figures['heartbeat_stream_errors']} / "
        f"{o['envoy_kill'].figures['heartbeat_stream_errors']}; "
        f"{o['api_kill'].figures['online_after']} / {o['envoy_kill'].figures['online_after']} "
        f"of {n} ONLINE at the first answer",
        f"answers <= {TARGET_SECONDS:g} s, devices unaffected",
        o["api_kill"].met and o["envoy_kill"].met and o["api_term"].met,
        **{f"kill_{k}": v for k, v in o["api_kill"].figures.items()},
        **{f"envoy_{k}": v for k, v in o["envoy_kill"].figures.items()},
        **{f"term_{k}": v for k, v in o["api_term"].figures.items()},
    )
    report.add(
        "nothing acknowledged lost across the six restarts",
        f"{len(acked):,} status reports acknowledged ({acked_in_windows:,} within 10 s after "
        f"a signal; {retried:,} sends failed and were retried by the outbox), "
        f"{len(acked) - len(lost_reports):,} of them in PostgreSQL; outboxes "
        f"{'empty' if drained is not None else 'NOT empty'}; every device's last acknowledged "
        f"heartbeat in PostgreSQL after the clean stop: {n - len(lost_heartbeats)}/{n}",
        "0 lost",
        nothing_lost,
        acknowledged=len(acked),
        lost_reports=len(lost_reports),
        lost_heartbeats=len(lost_heartbeats),
        retried_sends=retried,
    )
    return report


def _ratio(a: float | int | str, b: float | int | str) -> str:
    x, y = float(a), float(b)
    return f"{x / y:.2f}x" if y > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--interval", type=float, default=5.0, help="heartbeat interval (s)")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="fleetd-bench-supervision-", dir="/tmp"))
    print(f"data dir {data_dir}", flush=True)
    # Attached to the deployment's embedded storage: pgserver counts this process in, so
    # PostgreSQL outlives the deployment's clean stop for the final checks.
    with (
        serve(data_dir, args.workers, args.interval) as deployment,
        storage_urls(deployment.settings) as s,
    ):
        assert s.database_url is not None
        report = asyncio.run(run(args, deployment, s.database_url))
    report.write()
    failed = [r.benchmark for r in report.rows if not r.met]
    if failed:
        raise SystemExit(f"missed: {failed}; see {data_dir}")


if __name__ == "__main__":
    main()
