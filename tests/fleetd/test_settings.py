"""Settings read from the environment: FLEETD_OUTBOUND_ALLOW, the internal destinations
server-side fetches may reach (docs/updates.md, "the outbound guard")."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

import pytest

from fleetd.settings import ConfigError, OutboundRule, Settings, parse_outbound_rule


def test_outbound_allow_is_empty_by_default() -> None:
    assert Settings.from_env({}).outbound_allow == ()
    assert Settings.from_env({"FLEETD_OUTBOUND_ALLOW": " , "}).outbound_allow == ()


def test_outbound_allow_is_a_comma_separated_list_that_survives_a_child_process() -> None:
    env = {"FLEETD_OUTBOUND_ALLOW": " registry.lan:5000, 10.0.0.0/8 ,[::1]:8080,"}
    settings = Settings.from_env(env)
    assert settings.outbound_allow == ("registry.lan:5000", "10.0.0.0/8", "[::1]:8080")
    assert Settings.from_env(settings.to_env()).outbound_allow == settings.outbound_allow


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("registry.lan", OutboundRule(name="registry.lan")),
        ("Registry.LAN.:5000", OutboundRule(name="registry.lan", port=5000)),
        ("localhost", OutboundRule(name="localhost")),
        ("10.1.2.3", OutboundRule(network=IPv4Network("10.1.2.3/32"))),
        ("10.1.2.3:8080", OutboundRule(network=IPv4Network("10.1.2.3/32"), port=8080)),
        ("10.0.0.0/8", OutboundRule(network=IPv4Network("10.0.0.0/8"))),
        ("10.1.2.3/8:443", OutboundRule(network=IPv4Network("10.0.0.0/8"), port=443)),
        ("::1", OutboundRule(network=IPv6Network("::1/128"))),
        ("[::1]:8080", OutboundRule(network=IPv6Network("::1/128"), port=8080)),
        ("fd00::/8", OutboundRule(network=IPv6Network("fd00::/8"))),
        ("[fd00::/8]:443", OutboundRule(network=IPv6Network("fd00::/8"), port=443)),
        # An IPv4-mapped address is the IPv4 address it carries.
        ("::ffff:127.0.0.1", OutboundRule(network=IPv4Network("127.0.0.1/32"))),
        ("::ffff:10.0.0.0/104", OutboundRule(network=IPv4Network("10.0.0.0/8"))),
    ],
)
def test_an_outbound_allow_entry_is_a_name_or_a_network_and_maybe_a_port(
    entry: str, rule: OutboundRule
) -> None:
    assert parse_outbound_rule(entry) == rule


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "127.1",  # IPv4 as four decimal numbers only: no shorthand that reads as a name
        "2130706433",
        "0x7f000001",
        "10.0.0.0/33",
        "host:0",
        "host:65536",
        "host:http",
        "host:\uff18\uff10",  # full-width digits
        "[registry.lan]:5000",
        "[::1",
        "[::1]8080",
        "::1:8080:",
        "http://registry.lan",
        "registry.lan/v2",
        "bad_name!",
        "-leading.lan",
        "a" * 64 + ".lan",
        "*.lan",
    ],
)
def test_a_malformed_outbound_allow_entry_is_a_config_error_naming_it(entry: str) -> None:
    with pytest.raises(ConfigError, match="FLEETD_OUTBOUND_ALLOW entry"):
        parse_outbound_rule(entry)


def test_a_malformed_entry_stops_settings_from_loading() -> None:
    with pytest.raises(ConfigError, match=r"'127\.1'"):
        Settings.from_env({"FLEETD_OUTBOUND_ALLOW": "registry.lan,127.1"})
