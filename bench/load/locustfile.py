"""locust gRPC device users for the fleetd gateway (headless or distributed).

    locust -f bench/load/locustfile.py --headless -u 500 -r 50 -t 2m --host 127.0.0.1:9443
    locust -f bench/load/locustfile.py --master ...   /   --worker --master-host HOST

Each user is one device with its own key, certificate and mTLS channel: the devices
provisioned by ``python -m bench.load.provision`` (certificates signed by the CA in
``build/bench-load/data``; the gateway must use that data directory and a database the
devices were inserted into, as ``make bench-load-locust`` arranges). On start a user
Registers, then heartbeats every ``--heartbeat-interval`` seconds (jittered as the agent
does), echoing the desired-state revision it holds. When a heartbeat brings artifact
assignments, the user walks each through its lifecycle as an agent would, one
ReportArtifactStatus per heartbeat with probability ``--status-report-fraction``:
downloading, verifying, applying, healthy (sequence numbers from the wall clock, so
reruns against the same database never reuse one). ``make bench-load-locust`` assigns
one artifact to every device before the run.

Users take devices in order; in distributed mode worker ``i`` takes devices from
``i * --devices-per-worker`` on, so workers never share a device.
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent  # type: ignore[import-not-found]
from locust import User, events, task
from locust.env import Environment

from bench.load.provision import ROOT, read_devices
from fleetd.device.v1 import agent_pb2, agent_pb2_grpc

grpc_gevent.init_gevent()

_next_device = itertools.count()


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    parser.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds")
    parser.add_argument("--status-report-fraction", type=float, default=0.5)
    parser.add_argument("--devices-per-worker", type=int, default=5_000)
    parser.add_argument("--device-cache", default=str(ROOT / "devices"))
    parser.add_argument("--ca-cert", default=str(ROOT / "data" / "pki" / "ca.pem"))


class DeviceUser(User):
    """One simulated device on its own mTLS channel."""

    abstract = False

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        opts = environment.parsed_options
        assert opts is not None
        self.interval: float = opts.heartbeat_interval
        self.report_fraction: float = opts.status_report_fraction
        worker = getattr(environment.runner, "worker_index", 0) or 0
        index = worker * opts.devices_per_worker + next(_next_device)
        device = read_devices(Path(opts.device_cache), index, 1)[0]
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(opts.ca_cert).read_bytes(),
            private_key=device.key_pem,
            certificate_chain=device.cert_pem,
        )
        self.channel = grpc.secure_channel(
            self.host or "127.0.0.1:9443", creds, [("grpc.use_local_subchannel_pool", 1)]
        )
        self.stub = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.sequence = int(time.time() * 1000)
        self.revision = 0
        # assignment id -> the lifecycle states still to report
        self.pending: dict[str, list[agent_pb2.ArtifactState]] = {}

    def wait_time(self) -> float:
        return self.interval * (1.0 + random.uniform(-0.05, 0.05))

    def _call(self, name: str, method: Any, request: Any) -> Any:
        start = time.perf_counter()
        response: Any = None
        error: Exception | None = None
        try:
            response = method(request, timeout=10.0)
        except grpc.RpcError as exc:
            error = exc
        events.request.fire(  # type: ignore[no-untyped-call]
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=response.ByteSize() if response is not None else 0,
            exception=error,
            context={},
        )
        return response

    def on_start(self) -> None:
        self._call(
            "Register",
            self.stub.Register,
            agent_pb2.RegisterRequest(device_type="raspberry-pi", agent_version="locust"),
        )

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def heartbeat(self) -> None:
        response = self._call(
            "Heartbeat",
            self.stub.Heartbeat,
            agent_pb2.HeartbeatRequest(
                desired_state_revision=self.revision,
                agent_version="locust",
                stats=agent_pb2.DeviceStats(
                    cpu_percent=20.0, memory_percent=40.0, disk_percent=30.0, uptime_seconds=60
                ),
            ),
        )
        if response is not None and response.HasField("desired_state"):
            self.revision = response.desired_state.revision
            for assignment in response.desired_state.assignments:
                self.pending.setdefault(assignment.assignment_id, list(LIFECYCLE))
        if self.pending and random.random() < self.report_fraction:
            assignment_id, states = next(iter(self.pending.items()))
            self.sequence += 1
            self._call(
                "ReportArtifactStatus",
                self.stub.ReportArtifactStatus,
                agent_pb2.ReportArtifactStatusRequest(
                    assignment_id=assignment_id,
                    state=states.pop(0),
                    sequence=self.sequence,
                    installed_version="locust",
                ),
            )
            if not states:
                del self.pending[assignment_id]


LIFECYCLE = (
    agent_pb2.ARTIFACT_STATE_DOWNLOADING,
    agent_pb2.ARTIFACT_STATE_VERIFYING,
    agent_pb2.ARTIFACT_STATE_APPLYING,
    agent_pb2.ARTIFACT_STATE_HEALTHY,
)
