"""Where server-side fetches may go: URLs parsed strictly, hosts in every spelling reduced
to one address or one name, and addresses classified. No IO (``fleetd.services.outbound``
resolves names and connects).

**URLs.** :func:`parse_url` accepts ``http`` and ``https`` URLs only and reads the host as
browsers and the HTTP client (the WHATWG URL standard) do, so the address checked is the
address connected to: ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1`` and
full-width digits are all 127.0.0.1; ``[::ffff:127.0.0.1]`` is IPv6 carrying it. What the
standard and Python's ``urllib`` would read differently (a backslash, ``%`` or a space
in the authority, an unbracketed IPv6 address, a zone id) is refused. The URL handed to
the HTTP client is :attr:`Target.url`, rebuilt from the parsed parts, so the client never
parses anything this module did not.

**Addresses.** :func:`internal_reason` names why an address is not a public Internet
address: loopback, unspecified, private (RFC 1918), shared (CGNAT), link-local,
unique-local, site-local, multicast, broadcast/reserved, documentation and benchmarking
ranges, IETF protocol assignments, anything outside IPv6 global unicast (2000::/3); an
IPv4 address inside IPv6 (IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``) is judged as that IPv4 address. The tables are written out here (IANA's
special-purpose registries) rather than taken from ``ipaddress.is_global``, whose answers
differ between Python releases and count multicast as global.

**Allowlist.** :func:`refusal` lets an internal address through when an operator rule
(``FLEETD_OUTBOUND_ALLOW``, :class:`fleetd.settings.OutboundRule`) names its network, or
names the URL's host, with a matching port if the rule has one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from fleetd.settings import OutboundRule

IPAddress = IPv4Address | IPv6Address

SCHEMES = {"http": 80, "https": 443}
MAX_HOST = 253


class InvalidUrl(ValueError):
    """The URL is not one a server-side fetch will use; the message says why."""


class UnsupportedScheme(InvalidUrl):
    """The URL's scheme is not http or https."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed http(s) URL: exactly one of ``ip`` (the host is an address, in any
    spelling) and ``name`` (a DNS name: lowercase ASCII, IDNA-encoded)."""

    scheme: str
    host: str
    """As written into :attr:`url`: a name, dotted IPv4 or bracket-less IPv6."""
    ip: IPAddress | None
    port: int
    userinfo: str
    path: str
    """Path and query (never empty: at least ``/``); no fragment."""

    @property
    def name(self) -> str | None:
        return None if self.ip is not None else self.host

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if isinstance(self.ip, IPv6Address) else self.host
        port = "" if SCHEMES[self.scheme] == self.port else f":{self.port}"
        userinfo = f"{self.userinfo}@" if self.userinfo else ""
        return f"{self.scheme}://{userinfo}{host}{port}{self.path}"


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_USERINFO = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:%]*$")
_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")


def parse_url(url: str) -> Target:
    """``url`` parsed strictly (see the module docstring).

    Raises:
        UnsupportedScheme: not http or https.
        InvalidUrl: anything else the fetchers will not use.
    """
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidUrl("the URL contains spaces or control characters")
    match = _SCHEME.match(url)
    if match is None:
        raise InvalidUrl("the URL has no scheme")
    scheme = match[1].lower()
    if scheme not in SCHEMES:
        raise UnsupportedScheme(f"{scheme}: URLs are not fetched, only http and https")
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise InvalidUrl("the URL has no //host")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:].partition("#")[0]
    if "\\" in authority:
        raise InvalidUrl("the URL's host part contains a backslash")
    userinfo, at, hostport = authority.rpartition("@")
    if at and not _USERINFO.match(userinfo):
        raise InvalidUrl("the URL's user information has characters that are not allowed")
    host_text, port_text = _split_host_port(hostport)
    port = SCHEMES[scheme]
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise InvalidUrl("the URL's port is not a number from 1 to 65535")
        port = int(port_text)
    host = parse_host(host_text)
    if not path.startswith("/"):
        path = "/" + path
    if isinstance(host, str):
        return Target(scheme, host, None, port, userinfo, path)
    return Target(scheme, str(host), host, port, userinfo, path)


def _split_host_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        inner, bracket, rest = hostport.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InvalidUrl("the URL's IPv6 address is not closed by ]")
        return inner + "]", rest[1:]
    host, _, port = hostport.partition(":")
    if ":" in port:
        raise InvalidUrl("an IPv6 address in a URL must be in brackets")
    return host, port


def parse_host(text: str) -> IPAddress | str:
    """A URL host (``[v6]`` with its brackets) as an address, or as a DNS name in
    lowercase ASCII (IDNA-encoded).

    Raises:
        InvalidUrl: not a host the fetchers will use.
    """
    if text.startswith("["):
        inner = text[1:-1] if text.endswith("]") else ""
        if "%" in inner:
            raise InvalidUrl("the URL's IPv6 address has a zone id")
        try:
            return IPv6Address(inner)
        except ValueError:
            raise InvalidUrl("the URL's IPv6 address is malformed") from None
    if not text:
        raise InvalidUrl("the URL has no host")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidUrl("the URL's host is not a valid international name") from None
    host = text.lower()
    if _ends_in_number(host):
        address = _whatwg_ipv4(host)
        if address is None:
            raise InvalidUrl("the URL's host is neither an IPv4 address nor a name")
        return address
    if len(host) > MAX_HOST or not _NAME.match(host):
        raise InvalidUrl("the URL's host has characters that are not allowed in a name")
    return host


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    return (last != "" and last.isdigit()) or _ipv4_number(last) is not None


def _ipv4_number(part: str) -> int | None:
    if not part:
        return None
    radix = 10
    if part.startswith(("0x", "0X")):
        part, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, radix = part[1:], 8
    if not part:
        return 0
    digits = {10: "0123456789", 16: "0123456789abcdefABCDEF", 8: "01234567"}[radix]
    if any(c not in digits for c in part):
        return None
    return int(part, radix)


def _whatwg_ipv4(host: str) -> IPv4Address | None:
    """The WHATWG URL standard's IPv4 parser: 1 to 4 parts, each decimal, ``0x`` hex or
    ``0`` octal, the last filling the remaining bytes (``127.1``, ``2130706433``)."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        return None
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1]
    for index, value in enumerate(values[:-1]):
        address += value * 256 ** (3 - index)
    return IPv4Address(address)


_V4_INTERNAL: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved (and broadcast)"),
    )
)
_V6_INTERNAL: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments (Teredo among them)"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address carries."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def canonical(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is; any other unchanged."""
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def internal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public Internet address (for logs); None when it is."""
    if isinstance(ip, IPv6Address):
        carried = embedded_ipv4(ip)
        if carried is not None:
            reason = internal_reason(carried)
            return None if reason is None else f"{reason} (IPv4 {carried} inside IPv6)"
        for network6, reason in _V6_INTERNAL:
            if ip in network6:
                return reason
        if ip not in _V6_GLOBAL_UNICAST:
            return "reserved (outside IPv6 global unicast 2000::/3)"
        return None
    for network4, reason in _V4_INTERNAL:
        if ip in network4:
            return reason
    return None


def allowed_by(rules: Iterable[OutboundRule], name: str | None, ip: IPAddress, port: int) -> bool:
    """Whether an operator rule names this destination: ``name`` (the URL's host when it
    is a name) or the network of ``ip``, and ``port`` when the rule has one."""
    address = canonical(ip)
    host = name.removesuffix(".") if name is not None else None
    for rule in rules:
        if rule.port is not None and rule.port != port:
            continue
        if rule.name is not None and rule.name == host:
            return True
        if rule.network is not None and address in rule.network:
            return True
    return False


def refusal(
    rules: Iterable[OutboundRule], name: str | None, ip: IPAddress, port: int
) -> str | None:
    """Why a fetch may not connect to ``ip``:``port`` (for logs); None when it may."""
    reason = internal_reason(ip)
    if reason is None or allowed_by(rules, name, ip, port):
        return None
    return f"{ip} is {reason} and FLEETD_OUTBOUND_ALLOW does not name it"
