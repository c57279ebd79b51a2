"""Configuration: flags over environment over the TOML file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load


def test_file_environment_and_flags_layer(tmp_path: Path) -> None:
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        'device_type = "raspberry-pi"\n'
        'allowed_dirs = ["/opt/models", "/etc/detector"]\n'
        'exec_probes = ["/usr/lib/detector/healthcheck"]\n'
        'container_runtime = "none"\n'
        'log_unit = "fleetd-agent.service"\n'
    )
    env = {"FLEETD_CONTAINER_RUNTIME": "podman", "FLEETD_TUF_URL": "https://fleet/tuf"}
    config = load(["--config", str(config_file), "--container-runtime", "docker"], env)
    assert config.container_runtime == "docker"  # flag over environment over file
    assert config.tuf_url == "https://fleet/tuf"
    assert config.device_type == "raspberry-pi"
    assert config.policy.allowed_dirs == (Path("/opt/models"), Path("/etc/detector"))
    assert config.policy.exec_probes == ("/usr/lib/detector/healthcheck",)
    assert config.policy.probe_hosts == ("localhost", "127.0.0.1", "::1")
    assert config.pinned_root == Path("/var/lib/fleetd-agent/tuf-root.json")


def test_list_options_from_the_environment_are_comma_separated() -> None:
    config = load([], {"FLEETD_SYSTEMD_UNITS": "a.service, b.service", "FLEETD_AGENT_TAGS": "x"})
    assert config.systemd_units == ("a.service", "b.service")
    assert config.tags == ("x",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("allowed_dir = []\n", "unknown keys allowed_dir"),
        ('allowed_dirs = "/opt"\n', "must be a list"),
        ('allowed_dirs = ["opt"]\n', "absolute"),
        ('exec_probes = ["/usr/../bin/sh"]\n', "normalised"),
        ("device_type = [\n", "agent.toml"),
    ],
)
def test_bad_configuration_is_refused_with_the_option_named(
    tmp_path: Path, content: str, message: str
) -> None:
    config_file = tmp_path / "agent.toml"
    config_file.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load(["--config", str(config_file)], {})


def test_container_runtime_must_be_known_or_absolute() -> None:
    with pytest.raises(ConfigError, match="container-runtime"):
        load(["--container-runtime", "rkt"], {})
