"""CreateUpdate may not be used to reach inside (issue #14): an update URL or a container
registry on an internal address is refused before anything connects, in every spelling
and after every redirect, unless the operator allowlists it (FLEETD_OUTBOUND_ALLOW); the
refusal reads the same whether a port is open, closed or silent, so the API is no port
scanner and leaks no size or checksum of internal content; nothing is stored.

The deployment here allowlists exactly one artifact server and one registry; ``internal``
(127.0.0.1, another port), ``other`` (127.0.0.2) and ``denied_registry`` stand for what
an operator must not reach."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import json_format

from fleetd.services.outbound import REFUSED
from fleetd.v1 import update_pb2, update_pb2_grpc
from tests.support.deployment import Deployment, running_deployment
from tests.support.file_server import FileServer, file_server, has_ipv6_loopback, tcp_listener
from tests.support.oci_registry import Registry, oci_registry
from tests.support.waiting import free_port

SECRET = b"internal-only configuration: password=hunter2\n" * 40
UNAVAILABLE, FAILED = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture
def files() -> Iterator[FileServer]:
    """The artifact server the deployment allowlists."""
    with file_server() as server:
        yield server


@pytest.fixture
def internal() -> Iterator[FileServer]:
    """An internal service on loopback, not allowlisted."""
    with file_server() as server:
        server.serve("/secret", SECRET)
        yield server


@pytest.fixture
def other() -> Iterator[FileServer]:
    """An internal service on another loopback address, not allowlisted."""
    with file_server(bind="127.0.0.2") as server:
        server.serve("/secret", SECRET)
        yield server


@pytest.fixture
def registry() -> Iterator[Registry]:
    with oci_registry() as reg:
        yield reg


@pytest.fixture
def denied_registry() -> Iterator[Registry]:
    with oci_registry() as reg:
        yield reg


@pytest.fixture
async def deployment(
    database_url: str,
    redis_url: str,
    files: FileServer,
    registry: Registry,
    denied_registry: Registry,
) -> AsyncIterator[Deployment]:
    async with running_deployment(
        database_url,
        redis_url,
        insecure_registries=(registry.host, denied_registry.host),
        outbound_allow=(files.host, registry.host),
    ) as dep:
        yield dep


class Api:
    """CreateUpdate over gRPC, as the admin."""

    def __init__(self, dep: Deployment, channel: grpc.aio.Channel) -> None:
        self.stub = update_pb2_grpc.UpdateServiceStub(channel)
        self.metadata = (("x-api-key", dep.admin_api_key),)

    async def create(self, *artifacts: dict[str, Any]) -> update_pb2.CreateUpdateResponse:
        body = {"name": "probe", "version": "1.0.0", "artifacts": list(artifacts)}
        request = json_format.ParseDict(body, update_pb2.CreateUpdateRequest())
        response: update_pb2.CreateUpdateResponse = await self.stub.CreateUpdate(
            request, metadata=self.metadata
        )
        return response

    async def refused(self, *artifacts: dict[str, Any]) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.create(*artifacts)
        return err.value.code(), err.value.details() or ""

    async def fetch(
        self, url: str, content: bytes = SECRET, **fields: Any
    ) -> tuple[grpc.StatusCode, str]:
        """CreateUpdate from ``url``, declaring ``content``'s checksum and size."""
        sha = f"sha256:{hashlib.sha256(content).hexdigest()}"
        return await self.refused(
            {"url": url, "checksum": sha, "size_bytes": len(content), **fields}
        )


@pytest.fixture
async def api(deployment: Deployment) -> AsyncIterator[Api]:
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds) as channel:
        yield Api(deployment, channel)


def _uniform(url: str) -> str:
    return f"artifacts[0].url: {url}: {REFUSED}; nothing was stored, retry later"


async def _nothing_stored(pool: asyncpg.Pool, dep: Deployment) -> bool:
    rows = await pool.fetchval(
        "SELECT (SELECT count(*) FROM updates) + (SELECT count(*) FROM tuf_targets)"
    )
    blobs = dep.settings.paths.blobs
    return rows == 0 and not (blobs.exists() and list(blobs.glob("??/*")))


LOOPBACK_SPELLINGS = (
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "localhost",
    "LOCALHOST.",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # full-width digits
)


async def test_update_url_to_loopback_is_refused_before_connecting(
    api: Api, deployment: Deployment, pool: asyncpg.Pool, internal: FileServer
) -> None:
    for spelling in LOOPBACK_SPELLINGS:
        url = f"http://{spelling}:{internal.port}/secret"
        # A wrong checksum and size (the attack's first probes) and the right ones (its
        # third call, which would store the content) are refused alike, revealing neither.
        for content in (b"guess", SECRET):
            assert await api.fetch(url, content) == (UNAVAILABLE, _uniform(url)), spelling
    assert internal.connections == []
    assert await _nothing_stored(pool, deployment)


async def test_update_url_to_other_internal_addresses_is_refused_before_connecting(
    api: Api, other: FileServer
) -> None:
    for host in ("127.0.0.2", "127.2", "[::ffff:127.0.0.2]", "[64:ff9b::7f00:2]"):
        url = f"http://{host}:{other.port}/secret"
        assert await api.fetch(url) == (UNAVAILABLE, _uniform(url))
    if has_ipv6_loopback():
        with file_server(bind="::1") as v6:
            v6.serve("/secret", SECRET)
            url = v6.url("/secret")
            assert await api.fetch(url) == (UNAVAILABLE, _uniform(url))
            assert v6.connections == []
    for url in (
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
    ):
        assert await api.fetch(url) == (UNAVAILABLE, _uniform(url))
    assert other.connections == []


async def test_update_url_on_the_allowlisted_server_is_fetched(api: Api, files: FileServer) -> None:
    content = b"firmware 2.0\n" * 100
    url = files.serve("/fw.bin", content)
    sha = f"sha256:{hashlib.sha256(content).hexdigest()}"
    created = await api.create({"url": url, "checksum": sha, "size_bytes": len(content)})
    assert created.update.artifacts[0].size_bytes == len(content)
    assert files.requests == ["/fw.bin"]


async def test_update_url_redirect_to_loopback_is_refused(
    api: Api,
    deployment: Deployment,
    pool: asyncpg.Pool,
    files: FileServer,
    internal: FileServer,
    other: FileServer,
) -> None:
    for location in (
        internal.url("/secret"),
        f"http://localhost:{internal.port}/secret",
        f"http://2130706433:{internal.port}/secret",
        other.url("/secret"),
        f"http://[::1]:{internal.port}/secret",
    ):
        url = files.redirect("/release.bin", location)
        assert await api.fetch(url) == (UNAVAILABLE, _uniform(url)), location
    assert internal.connections == other.connections == []
    assert files.requests == ["/release.bin"] * 5
    assert await _nothing_stored(pool, deployment)


async def test_update_url_redirect_to_gopher_is_failed_precondition_not_internal(
    api: Api, files: FileServer, internal: FileServer
) -> None:
    for location in (
        f"gopher://127.0.0.1:{internal.port}/_GET%20/secret",
        "file:///etc/passwd",
    ):
        url = files.redirect("/release.bin", location)
        code, message = await api.fetch(url)
        assert code == FAILED, message
        assert message.startswith(f"artifacts[0].url: {url}: redirected to a URL that is not")
    assert internal.connections == []


async def test_closed_and_open_internal_ports_answer_alike(api: Api, internal: FileServer) -> None:
    closed = free_port()
    with tcp_listener(b"SSH-2.0-OpenSSH_9.6\r\n") as ssh, tcp_listener() as silent:
        probes = {
            "open, http": internal.url("/secret"),
            "open, http, no such path": internal.url("/nothing"),
            "open, not http": ssh.url(),
            "open, silent": silent.url(),
            "closed": f"http://127.0.0.1:{closed}/",
        }
        answers = {}
        for what, url in probes.items():
            code, message = await api.fetch(url)
            answers[what] = (code, message.replace(url, "URL"))
        assert set(answers.values()) == {(UNAVAILABLE, _uniform("URL"))}, answers
        assert internal.connections == ssh.connections == silent.connections == []


async def test_registry_on_loopback_is_refused_unless_allowlisted(
    api: Api,
    deployment: Deployment,
    pool: asyncpg.Pool,
    registry: Registry,
    denied_registry: Registry,
) -> None:
    denied_registry.push("team/app", "1.0")
    for host in (denied_registry.host, f"localhost:{denied_registry.port}"):
        code, message = await api.refused({"container": {"image": f"{host}/team/app:1.0"}})
        assert code == UNAVAILABLE, message
        assert message == (
            f"artifacts[0].container.image: registry {host}: {REFUSED}; "
            "nothing was stored, retry later"
        )
    assert denied_registry.seen == []
    assert await _nothing_stored(pool, deployment)

    digest = registry.push("team/app", "1.0")
    created = await api.create({"container": {"image": f"{registry.host}/team/app:1.0"}})
    assert created.update.artifacts[0].container.digest == digest


async def test_registry_token_service_on_an_internal_address_is_refused(
    api: Api, registry: Registry, internal: FileServer
) -> None:
    """An allowlisted registry may not send the server elsewhere inside: the token realm
    its challenge names is checked like any URL."""
    registry.push("team/app", "1.0")
    registry.require_token = True
    registry.realm = internal.url("/token")
    code, message = await api.refused({"container": {"image": f"{registry.host}/team/app:1.0"}})
    assert (code, REFUSED in message) == (UNAVAILABLE, True), message
    assert internal.connections == []
