"""Where server-side fetches may go, without IO: every spelling of an internal address is
read as the address it is and refused, the operator's allowlist lets exactly what it names
through, and URLs the HTTP client could read differently are not used at all. (Names are
resolved and checked by the guard: tests/fleetd/services/test_outbound.py.)"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from fleetd.domain.network_policy import (
    InvalidUrl,
    UnsupportedScheme,
    internal_reason,
    parse_url,
    refusal,
)
from fleetd.settings import OutboundRule, parse_outbound_rule


def _refused(url: str, *allow: str) -> str | None:
    """Why the guard would refuse ``url`` before connecting (an address literal)."""
    target = parse_url(url)
    assert target.ip is not None, f"{url} names a host; the guard resolves it"
    rules = [parse_outbound_rule(a) for a in allow]
    return refusal(rules, target.name, target.ip, target.port)


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0X7F.0.0.1/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://127.0.0.1./",
    "http://127.255.255.254/",
    "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/",  # full-width 127.0.0.1
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "https://user:pass@127.1:8443/path?q",
    "HTTP://127.1/",
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_read_as_loopback_and_refused(url: str) -> None:
    reason = _refused(url)
    assert reason is not None and "loopback" in reason


def test_localhost_is_a_name_the_guard_resolves_and_checks() -> None:
    target = parse_url("http://LocalHost.:8080/x")
    assert (target.name, target.ip, target.port) == ("localhost.", None, 8080)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://172.31.255.255/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://3232235777/", "private"),  # 192.168.1.1 as one number
        ("http://[::ffff:192.168.1.1]/", "private"),
        ("http://100.64.0.1/", "shared address space"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
        ("http://0xa9fea9fe/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fc00::1]/", "unique-local"),
        ("http://[fd12:3456::1]/", "unique-local"),
        ("http://[fec0::1]/", "site-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://239.255.255.250/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://192.0.2.1/", "documentation"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://[2001::1]/", "IETF protocol assignments"),  # Teredo
        ("http://[::7f00:1]/", "outside IPv6 global unicast"),  # IPv4-compatible, deprecated
        ("http://[100::1]/", "discard-only"),
    ],
)
def test_internal_and_special_addresses_are_refused(url: str, kind: str) -> None:
    reason = _refused(url)
    assert reason is not None and kind in reason, reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert internal_reason(ip_address(address)) is None


def test_an_allowlisted_network_matches_however_the_url_spells_the_address() -> None:
    for url in ("http://127.1:8080/", "http://2130706433:8080/", "http://[::ffff:7f00:1]:8080/"):
        assert _refused(url, "127.0.0.0/8") is None, url
        assert _refused(url, "127.0.0.1:8080") is None, url
        assert _refused(url, "127.0.0.1:8081") is not None, url  # another port
        assert _refused(url, "127.0.0.2") is not None, url  # another address
    assert _refused("http://[::1]:5000/", "[::1]:5000") is None
    assert _refused("http://[::1]:5000/", "::1") is None
    assert _refused("http://[fd00::7]/", "fd00::/8") is None
    assert _refused("http://[fd00::7]/", "[fd00::/8]:443") is not None
    assert _refused("https://[fd00::7]/", "[fd00::/8]:443") is None


def test_a_name_in_the_allowlist_matches_only_a_url_that_names_it() -> None:
    rules = [parse_outbound_rule("registry.lan:5000")]
    lan = ip_address("10.0.0.5")
    assert refusal(rules, "registry.lan", lan, 5000) is None
    assert refusal(rules, "registry.lan.", lan, 5000) is None
    assert refusal(rules, "registry.lan", lan, 5001) is not None
    assert refusal(rules, "other.lan", lan, 5000) is not None
    # The same address written as a literal is not the name the operator allowed.
    assert refusal(rules, None, lan, 5000) is not None


def test_an_allowlist_rule_leaves_public_addresses_alone() -> None:
    rules = [OutboundRule(name="registry.lan")]
    assert refusal(rules, "example.com", IPv4Address("93.184.215.14"), 443) is None
    assert refusal((), None, IPv6Address("2606:4700::1"), 443) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://0x7f.1:8080/a/b?c=d#frag", "http://127.0.0.1:8080/a/b?c=d"),
        ("https://[::FFFF:127.0.0.1]/", "https://[::ffff:7f00:1]/"),
        ("HTTPS://Example.COM:443", "https://example.com/"),
        ("http://example.com:0080?x", "http://example.com/?x"),
        ("http://u:p@example.com/x", "http://u:p@example.com/x"),
        ("http://b\u00fccher.example/", "http://xn--bcher-kva.example/"),
        ("http://evil.com#@127.0.0.1/", "http://evil.com/"),
        ("http://127.0.0.1?@evil.com/", "http://127.0.0.1/?@evil.com/"),
    ],
)
def test_the_url_handed_to_the_client_is_rebuilt_from_what_was_checked(
    url: str, expected: str
) -> None:
    assert parse_url(url).url == expected


@pytest.mark.parametrize(
    "url",
    [
        "gopher://127.0.0.1:6379/_INFO",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "dict://127.0.0.1:11211/stats",
        "ldap://example.com/",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "ws://example.com/",
    ],
)
def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    with pytest.raises(UnsupportedScheme):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com/x",
        "//example.com/x",
        "http:/example.com/",
        "http:///example.com/",
        "http:\\\\127.0.0.1\\x",
        "http://127.0.0.1\\@example.com/",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://example.com:8o/",
        "http://example.com:\uff18\uff10/",  # full-width port digits
        "http://exa mple.com/",
        "http://example.com/a b",
        "http://example.com/\x00",
        "http://ex%61mple.com/",
        "http://a@b@example.com/",
        "http://::1/",
        "http://[::1/",
        "http://[::1]x/",
        "http://[fe80::1%25eth0]/",
        "http://[not-v6]/",
        "http:///",
        "http://:80/",
        "http://1.2.3.4.5/",
        "http://256.0.0.1/",
        "http://4294967296/",
        "http://example.123/",
        "http://" + "a." * 127 + "com/",
        "http://exa_mple!.com/",
    ],
)
def test_malformed_or_ambiguous_urls_are_not_used(url: str) -> None:
    with pytest.raises(InvalidUrl):
        parse_url(url)
