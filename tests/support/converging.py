"""Building the agent's converge loop for tests, and reading back what it reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import duration_pb2

from agent.containers import ContainerRuntime
from agent.converge import Converger
from agent.instructions import Policy
from agent.outbox import Outbox
from agent.state import StateStore
from fleetd.device.v1 import agent_pb2
from tests.support.target_dir import DirectoryFetcher, Published

STATE_NAMES = {
    agent_pb2.ARTIFACT_STATE_DOWNLOADING: "downloading",
    agent_pb2.ARTIFACT_STATE_VERIFYING: "verifying",
    agent_pb2.ARTIFACT_STATE_APPLYING: "applying",
    agent_pb2.ARTIFACT_STATE_HEALTHY: "healthy",
    agent_pb2.ARTIFACT_STATE_ROLLED_BACK: "rolled_back",
    agent_pb2.ARTIFACT_STATE_FAILED: "failed",
}


@dataclass
class Rig:
    """A converger over temporary directories: ``apps`` is the allowlisted directory."""

    root: Path
    fetcher: DirectoryFetcher
    converger: Converger
    slept: list[float]

    @property
    def apps(self) -> Path:
        return self.root / "apps"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def reports(self) -> list[agent_pb2.ReportArtifactStatusRequest]:
        return self.converger.outbox.pending()

    def states(self, assignment_id: str | None = None) -> list[str]:
        return [
            STATE_NAMES[r.state]
            for r in self.reports()
            if assignment_id is None or r.assignment_id == assignment_id
        ]

    def reload_state(self) -> Converger:
        """A new converger over the same directories and settings, as after a restart."""
        old = self.converger
        self.converger = make_converger(
            self.root,
            self.fetcher,
            policy=old.policy,
            runtime=old.runtime,
            device_type=old.device_type,
        ).converger
        return self.converger


def make_converger(
    root: Path,
    fetcher: DirectoryFetcher | None = None,
    *,
    policy: Policy | None = None,
    runtime: ContainerRuntime | None = None,
    device_type: str = "raspberry-pi",
) -> Rig:
    (root / "apps").mkdir(parents=True, exist_ok=True)
    (root / "repo").mkdir(parents=True, exist_ok=True)
    fetcher = fetcher or DirectoryFetcher(root / "repo", root / "tuf-cache")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    converger = Converger(
        policy=policy or Policy(allowed_dirs=(root / "apps",)),
        fetcher=fetcher,
        store=StateStore(root / "data"),
        outbox=Outbox(root / "data" / "outbox"),
        device_type=device_type,
        runtime=runtime,
        sleep=sleep,
    )
    return Rig(root, fetcher, converger, slept)


def seconds(value: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(int(value * 1000))
    return d


def file_assignment(
    published: Published,
    destination: Path,
    *,
    name: str = "detector-model",
    version: str = "2.0.0",
    assignment_id: str | None = None,
    kind: agent_pb2.ArtifactKind = agent_pb2.ARTIFACT_KIND_MODEL,
    probe: agent_pb2.HealthProbe | None = None,
    mode: int = 0,
    reload_command: agent_pb2.ExecAction | None = None,
) -> agent_pb2.ArtifactAssignment:
    spec = agent_pb2.ArtifactAssignment(
        assignment_id=assignment_id or f"as-{name}-{version}",
        deployment_id="dep-1",
        name=name,
        version=version,
        kind=kind,
        target_path=published.target_path,
        sha256=published.sha256,
        length=published.length,
        config=agent_pb2.ConfigSpec(destination_path=str(destination), file_mode=mode),
    )
    if reload_command is not None:
        spec.config.reload_action = agent_pb2.RELOAD_ACTION_COMMAND
        spec.config.reload_command.CopyFrom(reload_command)
    if probe is not None:
        spec.health_probe.CopyFrom(probe)
    return spec


def file_probe(path: Path, attempts: int = 2) -> agent_pb2.HealthProbe:
    return agent_pb2.HealthProbe(
        file=agent_pb2.HealthProbe.File(path=str(path)),
        attempts=attempts,
        timeout=seconds(1),
        interval=seconds(0.1),
    )


def exec_probe(path: Path, *args: str, attempts: int = 2) -> agent_pb2.HealthProbe:
    return agent_pb2.HealthProbe(
        exec=agent_pb2.ExecAction(path=str(path), args=list(args)),
        attempts=attempts,
        timeout=seconds(5),
        interval=seconds(0.1),
    )


def http_probe(url: str, attempts: int = 2) -> agent_pb2.HealthProbe:
    return agent_pb2.HealthProbe(
        http=agent_pb2.HealthProbe.Http(url=url),
        attempts=attempts,
        timeout=seconds(2),
        interval=seconds(0.1),
    )


def leftovers(directory: Path) -> list[str]:
    """Temporary files the agent may have left in ``directory``."""
    return sorted(
        p.name for p in directory.iterdir() if p.name.endswith((".fleetd-staging", ".tmp"))
    )
