"""Tag -> manifest digest against the registry double (plain HTTP, listed as insecure,
and allowlisted for the outbound guard)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetd.domain.catalog.image_ref import parse
from fleetd.services.catalog.fetch import SourceRefused, SourceUnavailable
from fleetd.services.catalog.registry import api_base, resolve_digest
from fleetd.services.outbound import REFUSED, OutboundGuard
from tests.support.oci_registry import Registry, oci_registry


@pytest.fixture
def registry() -> Iterator[Registry]:
    with oci_registry() as reg:
        yield reg


def _allowing(registry: Registry) -> OutboundGuard:
    return OutboundGuard.allowing([registry.host])


def test_registries_are_https_unless_listed_as_insecure() -> None:
    assert api_base("docker.io", ()) == "https://registry-1.docker.io"
    assert api_base("reg.lan:5000", ("reg.lan:5000",)) == "http://reg.lan:5000"
    assert api_base("reg.lan:5000", ("reg.lan",)) == "https://reg.lan:5000"


async def test_a_tag_resolves_with_the_anonymous_token_flow(registry: Registry) -> None:
    registry.require_token = True
    digest = registry.push("team/app", "1.0")
    ref = parse(f"{registry.host}/team/app:1.0")
    assert await resolve_digest(ref, insecure=[registry.host], guard=_allowing(registry)) == digest
    token_requests = [s.path for s in registry.seen if s.path.startswith("/token")]
    assert token_requests and "repository%3Ateam%2Fapp%3Apull" in token_requests[0]


async def test_an_unknown_tag_is_refused(registry: Registry) -> None:
    registry.push("team/app", "1.0")
    with pytest.raises(SourceRefused, match="no such image or tag"):
        await resolve_digest(
            parse(f"{registry.host}/team/app:2.0"),
            insecure=[registry.host],
            guard=_allowing(registry),
        )


async def test_an_insecure_registry_not_listed_is_asked_over_https(registry: Registry) -> None:
    registry.push("team/app", "1.0")
    with pytest.raises(SourceUnavailable):
        await resolve_digest(parse(f"{registry.host}/team/app:1.0"), guard=_allowing(registry))
    assert registry.seen == []  # the TLS handshake failed; no plain request was made


async def test_a_digest_in_the_reference_asks_no_registry(registry: Registry) -> None:
    digest = "sha256:" + "1" * 64
    assert await resolve_digest(parse(f"{registry.host}/a@{digest}")) == digest
    assert registry.seen == []


async def test_a_registry_the_guard_refuses_is_unavailable_without_connecting(
    registry: Registry,
) -> None:
    registry.push("team/app", "1.0")
    with pytest.raises(SourceUnavailable) as err:
        await resolve_digest(parse(f"{registry.host}/team/app:1.0"), insecure=[registry.host])
    assert str(err.value) == f"registry {registry.host}: {REFUSED}"
    assert registry.seen == []
