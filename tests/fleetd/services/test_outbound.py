"""The outbound guard against real local servers: what it refuses never gets a connection,
what the operator allowlists is reached at exactly the address that was checked, every
redirect is checked again, and every failure reads the same, so the guard is no port
scanner. (The address rules themselves: tests/fleetd/domain/test_network_policy.py.)"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Iterator, Sequence
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetd.domain.network_policy import IPAddress
from fleetd.services.outbound import (
    REFUSED,
    BadRedirect,
    BadUrl,
    OutboundGuard,
    Resolver,
    TooLarge,
    Unreachable,
    read_limited,
)
from tests.support.file_server import FileServer, file_server, has_ipv6_loopback, tcp_listener
from tests.support.waiting import free_port

BODY = b"internal content\n"


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        yield server


@pytest.fixture
def other() -> Iterator[FileServer]:
    """A second loopback server, on another address (127.0.0.2)."""
    with file_server(bind="127.0.0.2") as server:
        yield server


async def _get(guard: OutboundGuard, url: str, limit: int = 1 << 20) -> tuple[int, bytes]:
    async with guard.stream("GET", url, {"user-agent": "fleetd-test"}) as answer:
        return answer.status, await read_limited(answer, limit)


async def _refused(guard: OutboundGuard, url: str) -> str:
    with pytest.raises(Unreachable) as err:
        await _get(guard, url)
    return str(err.value)


def _resolving_to(*addresses: str) -> tuple[Resolver, list[str]]:
    """A resolver answering ``addresses`` for every name, and the names it was asked."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> Sequence[IPAddress]:
        asked.append(host)
        return [ip_address(a) for a in addresses]

    return resolver, asked


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "0.0.0.0",
        "localhost",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
    ],
)
async def test_loopback_is_refused_before_connecting(files: FileServer, spelling: str) -> None:
    url = files.serve("/secret", BODY).replace(
        f"127.0.0.1:{files.port}", f"{spelling}:{files.port}"
    )
    assert await _refused(OutboundGuard(), url) == REFUSED
    assert files.connections == []


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_loopback_is_refused_before_connecting() -> None:
    with file_server(bind="::1") as v6:
        url = v6.serve("/secret", BODY)
        assert await _refused(OutboundGuard(), url) == REFUSED
        assert await _refused(OutboundGuard.allowing(["127.0.0.0/8"]), url) == REFUSED
        assert v6.connections == []
        assert await _get(OutboundGuard.allowing([v6.host]), url) == (200, BODY)


async def test_an_allowlisted_server_is_reached(files: FileServer) -> None:
    url = files.serve("/a.bin", BODY)
    for entry in (files.host, "127.0.0.1", "127.0.0.0/8", f"127.0.0.0/8:{files.port}"):
        assert await _get(OutboundGuard.allowing([entry]), url) == (200, BODY), entry
    # Another port on the same address is not allowed by a rule with a port.
    assert await _refused(OutboundGuard.allowing([f"127.0.0.1:{files.port + 1}"]), url)


async def test_any_spelling_of_an_allowlisted_address_reaches_that_address(
    files: FileServer,
) -> None:
    files.serve("/a.bin", BODY)
    guard = OutboundGuard.allowing([files.host])
    for spelling in ("127.1", "2130706433", "0x7f.0.0.1", "[::ffff:127.0.0.1]"):
        assert await _get(guard, f"http://{spelling}:{files.port}/a.bin") == (200, BODY)
    assert len(files.connections) == 4


async def test_an_allowlisted_name_is_reached_whatever_it_resolves_to(files: FileServer) -> None:
    files.serve("/a.bin", BODY)
    url = f"http://localhost:{files.port}/a.bin"
    resolver, _ = _resolving_to("127.0.0.1")
    guard = OutboundGuard.allowing([f"localhost:{files.port}"])
    assert await _get(OutboundGuard(allow=guard.allow, resolver=resolver), url) == (200, BODY)
    # The name allows the name, not the address it resolves to.
    by_address = f"http://127.0.0.1:{files.port}/a.bin"
    assert await _refused(guard, by_address) == REFUSED
    assert files.request_headers[0]["host"] == f"localhost:{files.port}"


async def test_a_name_resolving_to_any_internal_address_is_refused_as_a_whole(
    files: FileServer,
) -> None:
    files.serve("/a.bin", BODY)
    resolver, asked = _resolving_to("93.184.215.14", "127.0.0.1")
    guard = OutboundGuard(resolver=resolver)
    assert await _refused(guard, f"http://mixed.example:{files.port}/a.bin") == REFUSED
    assert asked == ["mixed.example"]
    assert files.connections == []


async def test_the_connection_goes_to_the_address_checked_not_a_second_lookup(
    files: FileServer, other: FileServer
) -> None:
    """DNS rebinding: the name is resolved once, by the guard, and the client connects to
    that answer. The system resolves ``localhost`` to 127.0.0.1 (``files``), and a name
    under .invalid to nothing; the guard's resolver answers 127.0.0.2 (``other``), the
    only address allowlisted, and that is where both requests arrive."""
    other.serve("/a.bin", BODY)
    resolver, asked = _resolving_to("127.0.0.2")
    guard = OutboundGuard(allow=OutboundGuard.allowing(["127.0.0.2"]).allow, resolver=resolver)
    for name in ("localhost", "rebind.invalid", "Rebind.Invalid."):
        assert await _get(guard, f"http://{name}:{other.port}/a.bin") == (200, BODY)
    assert asked == ["localhost", "rebind.invalid", "rebind.invalid."]
    assert len(other.connections) == 3  # other listens on 127.0.0.2 only
    assert [h["host"] for h in other.request_headers] == [
        f"{name}:{other.port}" for name in ("localhost", "rebind.invalid", "rebind.invalid.")
    ]
    assert files.connections == []


async def test_a_resolver_that_changes_its_answer_cannot_redirect_the_connection(
    files: FileServer, other: FileServer
) -> None:
    """First answer allowed (127.0.0.2), any later one not (127.0.0.1): the request is
    made with the first, and the resolver is asked exactly once."""
    other.serve("/a.bin", BODY)
    files.serve("/a.bin", b"the rebound target\n")
    answers = iter(["127.0.0.2", "127.0.0.1", "127.0.0.1"])
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> Sequence[IPAddress]:
        asked.append(host)
        return [ip_address(next(answers))]

    guard = OutboundGuard(allow=OutboundGuard.allowing(["127.0.0.2"]).allow, resolver=rebinding)
    assert await _get(guard, f"http://rebind.invalid:{other.port}/a.bin") == (200, BODY)
    assert asked == ["rebind.invalid"]
    assert files.connections == []


async def test_a_redirect_to_an_address_not_allowlisted_is_refused_before_connecting(
    files: FileServer, other: FileServer
) -> None:
    other.serve("/secret", BODY)
    guard = OutboundGuard.allowing([files.host])
    for location in (
        other.url("/secret"),
        f"http://0x7f000002:{other.port}/secret",
        f"http://localhost:{other.port}/secret",
        f"http://[::1]:{other.port}/secret",
        f"//127.0.0.2:{other.port}/secret",
    ):
        url = files.redirect("/go", location)
        assert await _refused(guard, url) == REFUSED, location
    assert other.connections == []


async def test_every_redirect_is_checked_again_and_followed_when_allowed(
    files: FileServer, other: FileServer
) -> None:
    other.serve("/final", BODY)
    files.redirect("/two", other.url("/final"), status=307)
    url = files.redirect("/one", "/two", status=301)
    guard = OutboundGuard.allowing([files.host, other.host])
    async with guard.stream("GET", url, {"authorization": "Bearer t", "x-kept": "1"}) as answer:
        assert (answer.status, answer.url) == (200, other.url("/final"))
        assert await read_limited(answer, 100) == BODY
    assert files.requests == ["/one", "/two"]
    # Credentials stay with the origin they were meant for.
    assert [h.get("authorization") for h in files.request_headers] == ["Bearer t"] * 2
    assert "authorization" not in other.request_headers[0]
    assert other.request_headers[0]["x-kept"] == "1"


@pytest.mark.parametrize(
    "location",
    [
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "file:///etc/passwd",
        "dict://127.0.0.1:11211/stats",
        "ftp://example.com/x",
        "http://[::1",
        "http://a b/",
    ],
)
async def test_a_redirect_to_another_scheme_or_a_malformed_url_is_a_bad_redirect(
    files: FileServer, location: str
) -> None:
    url = files.redirect("/go", location)
    with pytest.raises(BadRedirect):
        await _get(OutboundGuard.allowing([files.host]), url)


async def test_a_redirect_loop_stops(files: FileServer) -> None:
    url = files.redirect("/loop", "/loop")
    with pytest.raises(BadRedirect, match="more than 2 redirects"):
        await _get(
            OutboundGuard(allow=OutboundGuard.allowing([files.host]).allow, max_redirects=2), url
        )
    assert files.requests == ["/loop"] * 3


async def test_a_redirect_from_https_down_to_http_is_not_followed(
    tmp_path: Path, other: FileServer
) -> None:
    ca_pem, tls = _tls_files(tmp_path)
    other.serve("/a.bin", BODY)
    with file_server(tls=tls) as secure:
        secure.serve("/a.bin", BODY)
        allow = OutboundGuard.allowing([secure.host, other.host]).allow
        guard = OutboundGuard(allow=allow, extra_ca_pem=ca_pem)
        assert await _get(guard, secure.url("/a.bin")) == (200, BODY)
        url = secure.redirect("/down", other.url("/a.bin"))
        with pytest.raises(BadRedirect, match="from https to plain http"):
            await _get(guard, url)
    assert other.connections == []


@pytest.mark.parametrize("url", ["gopher://example.com/", "file:///etc/passwd", "http://[::1/"])
async def test_a_url_that_is_not_http_or_https_is_a_bad_url(url: str) -> None:
    with pytest.raises(BadUrl):
        await _get(OutboundGuard(), url)


async def test_open_and_closed_internal_ports_answer_alike(files: FileServer) -> None:
    """Not allowlisted: refused before connecting, whatever is listening. Allowlisted (an
    operator's own network): a closed port, a port that speaks something else, one that
    says nothing, a name that does not resolve all read the same (the cause is logged)."""
    files.serve("/a", BODY)
    closed = free_port()
    with tcp_listener(b"SSH-2.0-OpenSSH_9.6\r\n") as ssh, tcp_listener() as silent:
        urls = [files.url("/a"), f"http://127.0.0.1:{closed}/a", ssh.url(), silent.url()]
        denied = {await _refused(OutboundGuard(), url) for url in urls}
        assert denied == {REFUSED}
        assert files.connections == ssh.connections == silent.connections == []

        guard = OutboundGuard(
            allow=OutboundGuard.allowing(["127.0.0.1"]).allow,
            connect_timeout=2.0,
            read_timeout=0.5,
        )
        answers = {
            await _refused(guard, url)
            for url in (
                f"http://127.0.0.1:{closed}/a",
                ssh.url(),
                silent.url(),
                "http://no.invalid/",
            )
        }
        assert answers == {REFUSED}


async def test_what_really_happened_is_logged_not_returned(
    files: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fleetd.services.outbound"):
        await _refused(OutboundGuard(), files.url("/a?token=secret"))
    (record,) = caplog.records
    assert "loopback" in record.getMessage() and "refused before connecting" in record.getMessage()
    assert "secret" not in record.getMessage()  # the query is not logged


async def test_a_server_that_accepts_but_never_answers_is_unreachable_within_the_bound() -> None:
    with tcp_listener() as silent:
        guard = OutboundGuard(allow=OutboundGuard.allowing([silent.host]).allow, read_timeout=0.5)
        started = time.monotonic()
        assert await _refused(guard, silent.url()) == REFUSED
        assert time.monotonic() - started < 5
        assert silent.connections == ["127.0.0.1"]


async def test_a_resolver_that_never_answers_is_unreachable_within_the_bound() -> None:
    async def hanging(host: str, port: int) -> Sequence[IPAddress]:
        await asyncio.sleep(60)
        return []

    started = time.monotonic()
    assert await _refused(OutboundGuard(connect_timeout=0.3, resolver=hanging), "http://x.example/")
    assert time.monotonic() - started < 5


async def test_a_body_cut_short_is_unreachable() -> None:
    with tcp_listener(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b") as cut:
        assert await _refused(OutboundGuard.allowing([cut.host]), cut.url()) == REFUSED


async def test_a_body_longer_than_the_limit_is_too_large(files: FileServer) -> None:
    url = files.serve("/big", b"x" * 10_000)
    with pytest.raises(TooLarge, match="larger than 1000 bytes"):
        await _get(OutboundGuard.allowing([files.host]), url, limit=1000)


async def test_proxy_environment_variables_are_not_used(
    files: FileServer, other: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would resolve the name itself (and is another way to reach inside)."""
    files.serve("/a.bin", BODY)
    for variable in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(variable, other.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert await _get(OutboundGuard.allowing([files.host]), files.url("/a.bin")) == (200, BODY)
    assert other.connections == []


def _tls_files(tmp_path: Path) -> tuple[bytes, tuple[Path, Path]]:
    """A CA (its PEM) and a server certificate for 127.0.0.1 and localhost it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "outbound test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM), (cert_file, key_file)
