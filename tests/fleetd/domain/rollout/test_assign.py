"""What a wave's devices are assigned, decided without a database."""

from __future__ import annotations

import itertools

from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout.artifacts import Artifact, applicable
from fleetd.domain.rollout.assign import HeldAssignment, plan_assignments, previous_of


def artifact(name: str, version: str, platform: str = "") -> Artifact:
    template = agent_pb2.ArtifactAssignment(
        name=name, version=version, sha256="ab" * 32, target_path=f"{name}/{version}/f"
    )
    return Artifact(
        f"art-{name}-{platform or 'any'}", name, platform, version, template.SerializeToString()
    )


def held(device: str, name: str, version: str, state: str, assignment_id: str) -> HeldAssignment:
    spec = agent_pb2.ArtifactAssignment(
        assignment_id=assignment_id,
        name=name,
        version=version,
        sha256="cd" * 32,
        target_path=f"{name}/{version}/f",
        previous=agent_pb2.PreviousVersion(version="0.9.0"),
    )
    return HeldAssignment(assignment_id, device, name, version, state, True, spec)


def ids() -> itertools.count[int]:
    return itertools.count(1)


def test_the_artifact_for_the_type_wins_over_the_one_for_every_type() -> None:
    generic, own, other = artifact("app", "2"), artifact("app", "2", "rpi"), artifact("cfg", "1")
    assert applicable([generic, own, other], "rpi") == [own, other]
    assert applicable([generic, own, other], "jetson") == [generic, other]
    assert applicable([own], "jetson") == []


def test_skips_offboarded_devices_types_without_artifacts_and_devices_up_to_date() -> None:
    app = artifact("app", "2.0.0", "rpi")
    counter = ids()
    plan = plan_assignments(
        "dep-1",
        ["gone", "jetson-1", "rpi-current", "rpi-new"],
        {"jetson-1": "jetson", "rpi-current": "rpi", "rpi-new": "rpi"},
        {("rpi-current", "app"): held("rpi-current", "app", "2.0.0", "healthy", "as_old")},
        [app],
        lambda: f"as_{next(counter)}",
    )
    assert plan.skipped == {
        "DEVICE_OFFBOARDED": ["gone"],
        "NO_ARTIFACT_FOR_TYPE": ["jetson-1"],
        "ALREADY_RUNNING": ["rpi-current"],
    }
    [new] = plan.new
    assert (new.device_id, new.spec.assignment_id, new.spec.deployment_id) == (
        "rpi-new",
        "as_1",
        "dep-1",
    )
    assert not new.spec.HasField("previous") and plan.superseded == []
    assert [(t.device_id, t.previous_assignment_id, t.index) for t in plan.targets] == [
        ("rpi-new", "", 0)
    ]


def test_a_healthy_assignment_is_the_previous_version_and_the_rollback_source() -> None:
    counter = ids()
    plan = plan_assignments(
        "dep-1",
        ["d"],
        {"d": "rpi"},
        {("d", "app"): held("d", "app", "1.0.0", "healthy", "as_old")},
        [artifact("app", "2.0.0")],
        lambda: f"as_{next(counter)}",
    )
    [new] = plan.new
    assert new.spec.previous.version == "1.0.0"
    assert plan.superseded == ["as_old"]
    [target] = plan.targets
    assert (target.previous_assignment_id, target.previous_version) == ("as_old", "1.0.0")


def test_an_unfinished_assignment_passes_on_what_it_replaced_but_is_no_rollback_source() -> None:
    counter = ids()
    plan = plan_assignments(
        "dep-1",
        ["d"],
        {"d": "rpi"},
        {("d", "app"): held("d", "app", "1.5.0", "applying", "as_old")},
        [artifact("app", "2.0.0")],
        lambda: f"as_{next(counter)}",
    )
    [new] = plan.new
    assert new.spec.previous.version == "0.9.0"  # what the device still runs
    assert plan.superseded == ["as_old"]
    [target] = plan.targets
    assert (target.previous_assignment_id, target.previous_version) == ("", "0.9.0")


def test_previous_of_a_failed_first_install_is_unset() -> None:
    first = agent_pb2.ArtifactAssignment(name="app", version="1.0.0")
    assert not previous_of(first, "failed").version
    assert previous_of(first, "healthy").version == "1.0.0"
