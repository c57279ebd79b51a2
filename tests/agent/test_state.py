"""The agent's state file round-trips and is replaced atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.state import (
    MAX_FINISHED,
    AgentState,
    Installed,
    Operation,
    Previous,
    StateCorrupt,
    StateStore,
    Step,
)
from fleetd.device.v1 import agent_pb2


def test_state_round_trips_with_an_operation_in_progress(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.load() == AgentState()
    spec = agent_pb2.ArtifactAssignment(assignment_id="as-1", name="m", version="2")
    kept = Previous("0", "b" * 64, "/opt/m.fleetd-previous")
    state = AgentState(
        installed={"m": Installed("m", "1", "a" * 64, "model", "/opt/m", 3, "as-0", kept)},
        operation=Operation(spec, Step.SWAPPED, reported=3, had_previous=True, interruptions=1),
        finished={"as-0": "healthy"},
    )
    store.save(state)
    assert store.load() == state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_finished_assignments_are_bounded_oldest_first() -> None:
    state = AgentState()
    for i in range(MAX_FINISHED + 5):
        state = state.with_finished(f"as-{i}", "healthy")
    assert len(state.finished) == MAX_FINISHED
    assert "as-0" not in state.finished and f"as-{MAX_FINISHED + 4}" in state.finished


def test_an_unreadable_state_file_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StateCorrupt, match="move it aside"):
        StateStore(tmp_path).load()
