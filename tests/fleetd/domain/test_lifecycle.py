"""The assignment lifecycle rules on their own: forward only, outcomes final."""

from __future__ import annotations

import itertools

import pytest

from fleetd.device.v1 import agent_pb2
from fleetd.domain import lifecycle

ORDER = ["pending", "downloading", "verifying", "applying"]
OUTCOMES = ["healthy", "rolled_back", "failed"]


@pytest.mark.parametrize(
    ("current", "reported"),
    [
        *((a, b) for a, b in itertools.combinations(ORDER, 2)),
        *((a, b) for a in ORDER for b in OUTCOMES),
    ],
)
def test_forward_moves_and_skips_are_accepted(current: str, reported: str) -> None:
    lifecycle.check_transition(current, reported)


@pytest.mark.parametrize(
    ("current", "reported"),
    [
        ("downloading", "downloading"),
        ("applying", "applying"),
        ("verifying", "downloading"),
        ("applying", "verifying"),
    ],
)
def test_same_or_earlier_state_is_a_stale_transition(current: str, reported: str) -> None:
    with pytest.raises(lifecycle.IllegalTransition, match="stale"):
        lifecycle.check_transition(current, reported)


@pytest.mark.parametrize(
    ("current", "reported"), list(itertools.product(OUTCOMES, ORDER[1:] + OUTCOMES))
)
def test_outcomes_are_final(current: str, reported: str) -> None:
    with pytest.raises(lifecycle.IllegalTransition, match="final"):
        lifecycle.check_transition(current, reported)


def test_cancelled_refuses_every_report() -> None:
    for reported in ORDER[1:] + OUTCOMES:
        with pytest.raises(lifecycle.IllegalTransition, match="cancelled"):
            lifecycle.check_transition("cancelled", reported)


def test_devices_cannot_report_pending_or_cancelled() -> None:
    for reported in ("pending", "cancelled"):
        with pytest.raises(lifecycle.IllegalTransition):
            lifecycle.check_transition("pending", reported)


def test_every_reportable_proto_state_has_a_name_and_unspecified_is_refused() -> None:
    names = {
        lifecycle.reported_state(value)
        for value in agent_pb2.ArtifactState.values()
        if value != agent_pb2.ARTIFACT_STATE_UNSPECIFIED
    }
    assert names == {"downloading", "verifying", "applying", *OUTCOMES}
    with pytest.raises(ValueError, match="state must be"):
        lifecycle.reported_state(agent_pb2.ARTIFACT_STATE_UNSPECIFIED)
    with pytest.raises(ValueError, match="state must be"):
        lifecycle.reported_state(99)
