"""The one validator every request message passes at both edges (pure): each rule, the
path a refusal names, and that a valid message of every request type passes."""

from __future__ import annotations

import importlib
import math
import pkgutil

import pytest
from google.protobuf import duration_pb2, message_factory, timestamp_pb2
from google.protobuf.message import Message

import fleetd.device.v1
import fleetd.v1
from fleetd.device.v1 import agent_pb2
from fleetd.domain import device_fields, message_rules
from fleetd.domain.message_rules import Violation
from fleetd.v1 import device_pb2, update_pb2


def _refusal(message: Message) -> str:
    with pytest.raises(Violation) as refused:
        message_rules.check(message)
    return str(refused.value)


def _request_classes() -> list[type[Message]]:
    found: list[type[Message]] = []
    for package in (fleetd.v1, fleetd.device.v1):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.endswith("_pb2"):
                module = importlib.import_module(f"{package.__name__}.{info.name}")
                for service in module.DESCRIPTOR.services_by_name.values():
                    for method in service.methods:
                        found.append(message_factory.GetMessageClass(method.input_type))
    return found


@pytest.mark.parametrize("request_class", _request_classes(), ids=lambda c: c.__name__)
def test_every_request_type_has_a_check_and_its_empty_message_passes(
    request_class: type[Message],
) -> None:
    message_rules.prepare(request_class)
    message_rules.check(request_class())


def test_nul_in_a_string_names_the_field() -> None:
    assert _refusal(device_pb2.GetDeviceRequest(device_id="a\x00b")) == (
        "device_id must not contain NUL characters"
    )


def test_nul_in_a_nested_repeated_string_names_its_path() -> None:
    request = update_pb2.CreateUpdateRequest(
        artifacts=[
            update_pb2.Artifact(),
            update_pb2.Artifact(
                config=update_pb2.ConfigSpec(
                    reload_command=update_pb2.ExecAction(args=["ok", "ok", "b\x00d"])
                )
            ),
        ]
    )
    assert _refusal(request) == (
        "artifacts[1].config.reload_command.args[2] must not contain NUL characters"
    )


def test_nul_in_a_map_key_and_in_a_map_value_name_the_entry() -> None:
    key = agent_pb2.RegisterRequest(metadata={"a\x00": "x"})
    assert _refusal(key) == "metadata key 'a\\x00' must not contain NUL characters"
    value = agent_pb2.RegisterRequest(metadata={"rack": "4\x00"})
    assert _refusal(value) == "metadata['rack'] must not contain NUL characters"


def test_valid_non_ascii_text_passes() -> None:
    message_rules.check(device_pb2.RegisterDeviceRequest(device_name="Küche - 台所 🚀"))


def test_strings_are_bounded_by_the_default_or_their_own_limit() -> None:
    limit = message_rules.DEFAULT_MAX_CHARS
    message_rules.check(device_pb2.GetDeviceRequest(device_id="x" * limit))
    assert _refusal(device_pb2.GetDeviceRequest(device_id="x" * (limit + 1))) == (
        f"device_id is longer than {limit} characters"
    )
    # A filter may be longer; a device's self-description is shorter.
    message_rules.check(device_pb2.ListDevicesRequest(filter="x" * (limit + 1)))
    short = device_pb2.SystemInfo(hostname="h" * (device_fields.MAX_TEXT + 1))
    assert _refusal(device_pb2.RegisterDeviceRequest(system_info=short)) == (
        f"system_info.hostname is longer than {device_fields.MAX_TEXT} characters"
    )


def test_a_megabyte_string_is_refused() -> None:
    request = device_pb2.RegisterDeviceRequest(device_name="x" * 1_000_000)
    assert "device_name is longer than" in _refusal(request)


def test_repeated_fields_and_maps_are_bounded() -> None:
    limit = message_rules.DEFAULT_MAX_ITEMS
    tags = agent_pb2.RegisterRequest(tags=["t"] * (limit + 1))
    assert _refusal(tags) == f"tags has more than {limit} entries"
    metadata = agent_pb2.RegisterRequest(metadata={str(i): "v" for i in range(limit + 1)})
    assert _refusal(metadata) == f"metadata has more than {limit} entries"
    many = message_rules.MAX_DEPLOY_DEVICE_IDS
    message_rules.check(update_pb2.DeployUpdateRequest(device_ids=["d"] * many))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(value: float) -> None:
    request = device_pb2.RegisterDeviceRequest(system_info=device_pb2.SystemInfo(disk_gb=value))
    assert _refusal(request) == "system_info.disk_gb must be a finite number"
    gate = update_pb2.DeployUpdateRequest(
        config=update_pb2.DeploymentConfig(health_gates=[update_pb2.HealthGate(min_value=value)])
    )
    assert _refusal(gate) == "config.health_gates[0].min_value must be a finite number"


def test_numbers_with_a_meaningful_range_are_held_to_it() -> None:
    huge = device_pb2.RegisterDeviceRequest(system_info=device_pb2.SystemInfo(disk_gb=1e308))
    assert _refusal(huge) == "system_info.disk_gb must be between 0 and 1000000000"
    negative = device_pb2.RegisterDeviceRequest(
        system_info=device_pb2.SystemInfo(memory_mb=-1, cpu_cores=2)
    )
    assert _refusal(negative).startswith("system_info.memory_mb must be between 0 and ")
    percent = agent_pb2.HeartbeatRequest(stats=agent_pb2.DeviceStats(cpu_percent=100.5))
    assert _refusal(percent) == "stats.cpu_percent must be between 0 and 100"
    cold = agent_pb2.HeartbeatRequest(stats=agent_pb2.DeviceStats(temperature_celsius=-40.0))
    message_rules.check(cold)  # below zero is a real temperature


def test_an_unknown_enum_value_is_refused() -> None:
    request = agent_pb2.ReportArtifactStatusRequest(state=999)  # type: ignore[arg-type]
    assert _refusal(request) == "state holds 999, which is not a known ArtifactState value"


def test_timestamps_and_durations_stay_in_protobufs_json_range() -> None:
    late = agent_pb2.ReportArtifactStatusRequest(
        observed_at=timestamp_pb2.Timestamp(seconds=message_rules.MAX_TIMESTAMP_SECONDS + 1)
    )
    assert _refusal(late) == "observed_at is not a timestamp between 0001-01-01 and 9999-12-31"
    wrong_sign = device_pb2.CreateEnrollmentTokenRequest(
        ttl=duration_pb2.Duration(seconds=5, nanos=-1)
    )
    assert _refusal(wrong_sign).startswith("ttl is not a valid duration")


def test_bytes_are_content_and_exempt() -> None:
    message_rules.check(agent_pb2.UploadLogsRequest(chunk=b"\x00\xff" * 1000))


def test_parse_refuses_a_corrupt_wire_format_and_bad_utf8_in_our_words() -> None:
    with pytest.raises(Violation) as corrupt:
        message_rules.parse(agent_pb2.RegisterRequest, b"\xff\xff\xff")
    assert str(corrupt.value) == (
        "the request is not a valid fleetd.device.v1.RegisterRequest: "
        "its protobuf wire format is corrupt"
    )
    with pytest.raises(Violation) as utf8:
        # field 2 (device_type), length 2, bytes that are not UTF-8
        message_rules.parse(agent_pb2.RegisterRequest, b"\x12\x02\xff\xfe")
    assert "a string in it is not valid UTF-8" in str(utf8.value)
    with pytest.raises(Violation, match="device_type must not contain NUL"):
        message_rules.parse(agent_pb2.RegisterRequest, b"\x12\x03a\x00b")


def test_a_full_heartbeat_passes() -> None:
    """What the agent sends passes (its cost is measured by bench/message_rules.py)."""
    beat = agent_pb2.HeartbeatRequest(
        desired_state_revision=42,
        stats=agent_pb2.DeviceStats(
            cpu_percent=12.5, memory_percent=40.0, disk_percent=70.0, uptime_seconds=86_400
        ),
        installed_artifacts=[
            agent_pb2.InstalledArtifact(name="app", version="1.2.3", sha256="ab" * 32)
        ],
        agent_version="1.4.0",
        boot_id="b6f0c1a2",
    )
    message_rules.check(beat)
