"""CreateUpdateRequest validation (pure): defaults made explicit, rules named by field.
The refusals are exercised end to end in tests/control_api/test_update_catalog.py."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from fleetd.domain.catalog import spec
from fleetd.v1 import update_pb2

SHA = "sha256:" + "AB" * 32


def _request(**fields: Any) -> update_pb2.CreateUpdateRequest:
    body = {"name": "app", "version": "1.0.0", "artifacts": [{"binary_id": "bin-1"}], **fields}
    return json_format.ParseDict(body, update_pb2.CreateUpdateRequest())


def test_defaults_are_made_explicit() -> None:
    plan = spec.validate(
        _request(
            artifacts=[
                {
                    "binary_id": "bin-1",
                    "checksum": SHA,
                    "config": {"destination_path": "/opt/a"},
                    "health_probe": {"file": {"path": "/run/a"}},
                }
            ]
        )
    )
    (artifact,) = plan.artifacts
    assert (artifact.name, artifact.version, artifact.kind, artifact.platform) == (
        "app",
        "1.0.0",
        "file",
        "",
    )
    assert artifact.source == spec.FromBinary("bin-1", "ab" * 32, None)
    assert artifact.spec.config.file_mode == 0o644
    assert artifact.spec.config.reload_action == update_pb2.ConfigSpec.NONE
    probe = artifact.spec.health_probe
    assert (probe.timeout.seconds, probe.attempts, probe.interval.seconds) == (10, 3, 5)
    assert probe.HasField("initial_delay") and probe.initial_delay.seconds == 0


def test_a_container_spec_without_kind_is_a_container() -> None:
    plan = spec.validate(_request(artifacts=[{"container": {"image": "nginx"}}]))
    (artifact,) = plan.artifacts
    assert artifact.kind == "container"
    assert isinstance(artifact.source, spec.FromImage)
    assert artifact.source.reference.name == "docker.io/library/nginx"
    assert artifact.spec.container.container_name == "app"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Firmware Update v2.0", "Firmware-Update-v2.0"), ("  --x  y", "x-y"), ("été", "t")],
)
def test_the_default_artifact_name_comes_from_the_update_name(name: str, expected: str) -> None:
    assert spec.default_artifact_name(name) == expected


def test_an_update_name_without_usable_characters_needs_artifact_names() -> None:
    with pytest.raises(spec.InvalidSpec, match=r"artifacts\[0\]\.name"):
        spec.validate(_request(name="ééé"))
    assert spec.validate(_request(name="ééé", artifacts=[{"binary_id": "b", "name": "x"}]))


def test_same_name_on_different_platforms_is_allowed() -> None:
    plan = spec.validate(
        _request(
            artifacts=[{"binary_id": "b", "platform": "a"}, {"binary_id": "b", "platform": "c"}]
        )
    )
    assert [a.platform for a in plan.artifacts] == ["a", "c"]


@pytest.mark.parametrize(
    "path", ["relative", "/a/../b", "/a/./b", "/a//b", "/a/", "/", "/a\x00b", "/a\nb"]
)
def test_destination_paths_must_be_absolute_and_normalised(path: str) -> None:
    with pytest.raises(spec.InvalidSpec, match=r"artifacts\[0\]\.config\.destination_path"):
        spec.validate(
            _request(artifacts=[{"binary_id": "b", "config": {"destination_path": path}}])
        )


@pytest.mark.parametrize(
    "unit", ["detector.service", "getty@tty1.service", "backup.timer", "x-y_z.socket"]
)
def test_systemd_units_are_accepted(unit: str) -> None:
    config = {
        "destination_path": "/etc/a",
        "reload_action": "SYSTEMD_RESTART",
        "systemd_unit": unit,
    }
    assert spec.validate(_request(artifacts=[{"binary_id": "b", "config": config}]))


@pytest.mark.parametrize("unit", ["", "detector", "a b.service", "../x.service", "x.exe"])
def test_bad_systemd_units_are_refused(unit: str) -> None:
    config = {
        "destination_path": "/etc/a",
        "reload_action": "SYSTEMD_RESTART",
        "systemd_unit": unit,
    }
    with pytest.raises(spec.InvalidSpec, match="systemd_unit"):
        spec.validate(_request(artifacts=[{"binary_id": "b", "config": config}]))


def test_output_only_fields_are_refused() -> None:
    with pytest.raises(spec.InvalidSpec, match="output only"):
        spec.validate(_request(artifacts=[{"binary_id": "b", "id": "artifact-1"}]))


def test_strategy_percentages_are_bounded_and_nan_is_refused() -> None:
    request = _request()
    request.strategy.max_failure_percentage = float("nan")
    with pytest.raises(spec.InvalidSpec, match=r"strategy\.max_failure_percentage"):
        spec.validate(request)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://evil.example\\@127.0.0.1/a", "backslash"),
        ("http://[::1/a", "not a valid URL"),
        ("http://a.example:99999/a", "not a valid URL"),
        ("http://::1/a", "not a valid URL"),
        ("http://a.example:\uff18\uff10/a", "not a valid URL"),
        ("http://a%41.example/a", "not allowed in a name"),
    ],
)
def test_an_ambiguous_artifact_url_is_refused_before_any_fetch(url: str, problem: str) -> None:
    """A URL the outbound guard would read differently from urllib is refused as bad
    input (INVALID_ARGUMENT) rather than when fetching."""
    body = {"url": url, "checksum": SHA, "size_bytes": 1}
    with pytest.raises(spec.InvalidSpec, match=rf"artifacts\[0\]\.url .*{problem}"):
        spec.validate(_request(artifacts=[body]))
