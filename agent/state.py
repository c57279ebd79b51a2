"""The agent's own persistent state: what is installed, and the operation in progress.

One JSON file (``state.json`` in the data directory) written with
:func:`agent.durable.write_atomic`, so a kill -9 or a power cut at any moment leaves the
previous or the next state, always readable. The converge loop records every step of an
operation *before* doing what follows it, so that on the next start the interrupted
operation can be resumed or rolled back from the facts on disk (see agent.converge).

Invariants:

- ``installed`` holds, per artifact name, what the device runs now and what was kept
  for rollback (``previous``).
- ``operation`` is set from the moment the agent starts working on an assignment until
  its final status report is in the outbox; every temporary file or container the
  operation creates is named by it, so recovery knows what to clean up.
- ``finished`` maps assignment ids already concluded (healthy, rolled back or failed) to
  their outcome, so the same assignment is never applied twice.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.durable import write_atomic
from fleetd.device.v1 import agent_pb2

STATE_FILE = "state.json"
FORMAT = 1
MAX_FINISHED = 1024
"""Finished assignment ids remembered; the oldest are forgotten first (the server's
desired state holds at most one active assignment per artifact name)."""


class StateCorrupt(Exception):
    """state.json exists but cannot be read; the message says where it is."""


class Step(StrEnum):
    """Where an operation stands; each is recorded before the step after it begins."""

    FETCHING = "fetching"
    """Downloading and verifying; only temporary files may exist."""
    STAGED = "staged"
    """The verified content is staged beside the destination (or the image pulled)."""
    SWAPPED = "swapped"
    """The new version is in place; the previous one is kept; reload and probe follow."""
    ROLLING_BACK = "rolling_back"
    """The previous version is being restored."""


@dataclass(frozen=True, slots=True)
class Previous:
    """A version kept for rollback: where (a file path or a container name)."""

    version: str
    sha256: str
    location: str


@dataclass(frozen=True, slots=True)
class Installed:
    """One installed artifact. ``location`` is the destination path (files) or the
    container name (containers); ``sha256`` the content digest (image digest hex for
    containers)."""

    name: str
    version: str
    sha256: str
    kind: str
    location: str
    release_counter: int = 0
    assignment_id: str = ""
    previous: Previous | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """The assignment being applied. ``assignment`` is the instruction as received,
    so recovery does not depend on the server; ``reported`` the highest ArtifactState
    already put in the outbox; ``had_previous`` whether something was installed at the
    destination when the operation staged (a first install rolls back to nothing)."""

    assignment: agent_pb2.ArtifactAssignment
    step: Step
    reported: int = 0
    had_previous: bool = False
    previous_sha256: str = ""
    previous_version: str = ""
    release_counter: int = 0
    interruptions: int = 0
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class AgentState:
    installed: Mapping[str, Installed] = field(default_factory=dict)
    operation: Operation | None = None
    finished: Mapping[str, str] = field(default_factory=dict)

    def with_installed(self, artifact: Installed) -> AgentState:
        return replace(self, installed={**self.installed, artifact.name: artifact})

    def with_finished(self, assignment_id: str, outcome: str) -> AgentState:
        finished = {k: v for k, v in self.finished.items() if k != assignment_id}
        finished[assignment_id] = outcome
        while len(finished) > MAX_FINISHED:
            del finished[next(iter(finished))]
        return replace(self, finished=finished, operation=None)


def _previous_to_json(previous: Previous | None) -> dict[str, Any] | None:
    if previous is None:
        return None
    return {"version": previous.version, "sha256": previous.sha256, "location": previous.location}


def to_json(state: AgentState) -> dict[str, Any]:
    op = state.operation
    return {
        "format": FORMAT,
        "installed": {
            name: {
                "name": a.name,
                "version": a.version,
                "sha256": a.sha256,
                "kind": a.kind,
                "location": a.location,
                "release_counter": a.release_counter,
                "assignment_id": a.assignment_id,
                "previous": _previous_to_json(a.previous),
            }
            for name, a in sorted(state.installed.items())
        },
        "operation": None
        if op is None
        else {
            "assignment": base64.b64encode(op.assignment.SerializeToString()).decode(),
            "step": op.step.value,
            "reported": op.reported,
            "had_previous": op.had_previous,
            "previous_sha256": op.previous_sha256,
            "previous_version": op.previous_version,
            "release_counter": op.release_counter,
            "interruptions": op.interruptions,
            "reason": op.reason,
            "message": op.message,
        },
        "finished": dict(state.finished),
    }


def from_json(data: dict[str, Any]) -> AgentState:
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown state format {data.get('format')!r}")
    installed = {}
    for name, a in data["installed"].items():
        prev = a.get("previous")
        installed[name] = Installed(
            name=a["name"],
            version=a["version"],
            sha256=a["sha256"],
            kind=a["kind"],
            location=a["location"],
            release_counter=int(a.get("release_counter", 0)),
            assignment_id=a.get("assignment_id", ""),
            previous=None if prev is None else Previous(**prev),
        )
    op = data.get("operation")
    operation = None
    if op is not None:
        assignment = agent_pb2.ArtifactAssignment.FromString(base64.b64decode(op["assignment"]))
        operation = Operation(
            assignment=assignment,
            step=Step(op["step"]),
            reported=int(op["reported"]),
            had_previous=bool(op["had_previous"]),
            previous_sha256=op["previous_sha256"],
            previous_version=op["previous_version"],
            release_counter=int(op["release_counter"]),
            interruptions=int(op["interruptions"]),
            reason=op["reason"],
            message=op["message"],
        )
    finished = {str(k): str(v) for k, v in data.get("finished", {}).items()}
    return AgentState(installed=installed, operation=operation, finished=finished)


class StateStore:
    """Loads and saves :class:`AgentState` in ``<data_dir>/state.json``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE

    def load(self) -> AgentState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AgentState()
        try:
            return from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateCorrupt(
                f"{self.path} cannot be read ({exc}); move it aside to start over "
                "(installed artifacts stay in place but are no longer tracked)"
            ) from None

    def save(self, state: AgentState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(to_json(state), indent=1).encode())
