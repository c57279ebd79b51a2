"""Target paths, the container pin document and the assignment template (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from fleetd.device.v1 import agent_pb2
from fleetd.domain.catalog import spec, targets
from fleetd.services.tuf_repo.repository import check_target_path
from fleetd.v1 import update_pb2


def _shape(descriptor: Any, seen: frozenset[str] = frozenset()) -> object:
    """Field numbers, names, types and enum values, recursively: what the wire sees."""
    fields = []
    for f in descriptor.fields:
        nested: object = None
        if f.message_type is not None and f.message_type.full_name not in seen:
            nested = _shape(f.message_type, seen | {descriptor.full_name})
        elif f.enum_type is not None:
            nested = sorted(
                (v.number, v.name.removeprefix("RELOAD_ACTION_")) for v in f.enum_type.values
            )
        fields.append((f.number, f.name, f.type, f.is_repeated, nested))
    return sorted(fields, key=lambda x: x[0])


@pytest.mark.parametrize(
    ("operator", "device"),
    [
        (update_pb2.ConfigSpec, agent_pb2.ConfigSpec),
        (update_pb2.ContainerSpec, agent_pb2.ContainerSpec),
        (update_pb2.HealthProbe, agent_pb2.HealthProbe),
    ],
)
def test_operator_and_device_specs_have_the_same_wire_shape(
    operator: type[Message], device: type[Message]
) -> None:
    assert _shape(operator.DESCRIPTOR) == _shape(device.DESCRIPTOR)


def _plan(**artifact: object) -> spec.ArtifactPlan:
    request = json_format.ParseDict(
        {"name": "cam", "version": "2.0.0+build.7", "artifacts": [artifact]},
        update_pb2.CreateUpdateRequest(),
    )
    return spec.validate(request).artifacts[0]


def test_target_paths_are_valid_and_carry_platform_and_counter() -> None:
    plan = _plan(binary_id="b", platform="raspberry-pi")
    content = targets.Content("0" * 64, 3, targets.url_file_name("https://x/a/fw%201.bin?x=1"))
    path = targets.target_path(plan, 12, content)
    assert path == "cam/2.0.0+build.7/raspberry-pi/r12/fw-1.bin"
    assert check_target_path(path) == path
    assert targets.target_path(_plan(binary_id="b"), 1, content).startswith(
        "cam/2.0.0+build.7/any/"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "content"),
        ("..", "content"),
        ("a b.tar.gz", "a-b.tar.gz"),
        (".hidden", "hidden"),
        ("x" * 300, "x" * 128),
    ],
)
def test_file_names_are_made_safe(name: str, expected: str) -> None:
    assert targets.file_name(name) == expected


def test_the_container_document_is_canonical_json() -> None:
    doc = targets.container_document("reg.io/a:1", "sha256:" + "a" * 64)
    assert doc == b'{"digest":"sha256:' + b"a" * 64 + b'","image":"reg.io/a:1"}'
    assert json.loads(doc)["image"] == "reg.io/a:1"


def test_the_template_copies_config_and_probe_to_the_device_types() -> None:
    plan = _plan(
        binary_id="b",
        kind="CONFIG",
        platform="pi",
        config={
            "destination_path": "/etc/a",
            "reload_action": "COMMAND",
            "reload_command": {"path": "/bin/r", "args": ["-x"]},
        },
        health_probe={"http": {"url": "http://127.0.0.1/h"}, "attempts": 4},
    )
    content = targets.Content("f" * 64, 9, "a")
    template = targets.assignment_template(plan, "p/a", content)
    assert template == agent_pb2.ArtifactAssignment(
        name="cam",
        version="2.0.0+build.7",
        kind=agent_pb2.ARTIFACT_KIND_CONFIG,
        target_path="p/a",
        sha256="f" * 64,
        length=9,
        config=agent_pb2.ConfigSpec(
            destination_path="/etc/a",
            file_mode=0o644,
            reload_action=agent_pb2.RELOAD_ACTION_COMMAND,
            reload_command=agent_pb2.ExecAction(path="/bin/r", args=["-x"]),
        ),
        health_probe=agent_pb2.HealthProbe(
            http=agent_pb2.HealthProbe.Http(url="http://127.0.0.1/h"),
            attempts=4,
            timeout={"seconds": 10},
            interval={"seconds": 5},
            initial_delay={},
        ),
    )
    custom = targets.target_custom(plan, 5).to_json()
    assert custom == {"hardware": "pi", "release_counter": 5, "kind": "config", "name": "cam"}
