"""The TUF repository served by a real deployment over HTTPS, fetched by python-tuf's
ngclient trusting only the fleet CA and presenting a device certificate, as the agent does.

Everything else here reads as an operator (the admin API key); who may read what is
tests/control_api/test_target_access.py."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import urllib3
from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.api.metadata import Metadata

from agent.tuf_fetcher import AgentFetcher
from fleetd.device.v1 import agent_pb2
from fleetd.services.pki import CertificateAuthority
from fleetd.services.tuf_repo import KeyDirs, TufRepository
from fleetd.storage.assignments import create_assignments
from fleetd.storage.blobs import FilesystemBlobStore
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import enrol_device
from tests.support.tuf_client import updater

CONTENT = b"\x7fELF a real enough firmware image\n" * 100
SHA = hashlib.sha256(CONTENT).hexdigest()
PATH = "firmware/raspberry-pi/app-1.2.0.bin"
CUSTOM = {"hardware": "raspberry-pi", "release_counter": 12, "kind": "file", "name": "app"}


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


async def _store_blob(dep: Deployment, content: bytes) -> Path:
    """Put ``content`` in the deployment's blob store; returns the blob's file."""
    store = FilesystemBlobStore(dep.settings.paths.blobs)
    async with store.writer(max_bytes=len(content)) as writer:
        await writer.write(content)
        blob = await writer.commit()
    return store.path(blob.sha256)


async def _publish(dep: Deployment, pool: asyncpg.Pool) -> Path:
    repo = TufRepository(pool, KeyDirs.under(dep.settings.paths.root))
    await repo.add_target(PATH, len(CONTENT), {"sha256": SHA}, CUSTOM)
    return await _store_blob(dep, CONTENT)


async def _device_assigned_the_target(
    dep: Deployment, pool: asyncpg.Pool, directory: Path
) -> tuple[Path, Path]:
    """Enrol a device assigned PATH; returns its certificate and key files."""
    creds = await enrol_device(
        pool, CertificateAuthority.load(dep.settings.paths, "default"), "rpi-1"
    )
    spec = agent_pb2.ArtifactAssignment(
        deployment_id="dep-1",
        name="app",
        version="1.2.0",
        kind=agent_pb2.ARTIFACT_KIND_FILE,
        target_path=PATH,
        sha256=SHA,
        length=len(CONTENT),
    )
    async with pool.acquire() as conn:
        await create_assignments(conn, "rpi-1", [spec])
    return _write_identity(directory, creds.cert_pem, creds.key_pem)


def _write_identity(directory: Path, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "device.pem", directory / "device.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def _get(dep: Deployment, path: str, method: str = "GET") -> urllib3.BaseHTTPResponse:
    """``path`` as an operator (the admin API key)."""
    http = urllib3.PoolManager(ca_certs=str(dep.settings.paths.ca_cert), retries=False)
    return http.request(
        method, f"{dep.api_endpoint}{path}", headers={"X-API-Key": dep.admin_api_key}
    )


def _download(dep: Deployment, workdir: Path, root: bytes, identity: tuple[Path, Path]) -> bytes:
    fetcher = AgentFetcher(
        dep.settings.paths.ca_cert, client_cert=identity[0], client_key=identity[1]
    )
    client = updater(workdir, root, fetcher, f"{dep.api_endpoint}/tuf")
    client.refresh()
    info = client.get_targetinfo(PATH)
    assert info is not None and info.custom == CUSTOM
    return Path(client.download_target(info)).read_bytes()


async def test_ngclient_over_https_downloads_a_target_and_refuses_it_tampered(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    blob = await _publish(deployment, pool)
    device = await _device_assigned_the_target(deployment, pool, tmp_path / "device")
    root = (await asyncio.to_thread(_get, deployment, "/tuf/root.json")).data
    assert Metadata.from_bytes(root).signed.type == "root"
    downloaded = await asyncio.to_thread(_download, deployment, tmp_path / "ok", root, device)
    assert downloaded == CONTENT
    # Same length, other bytes: the blob store was tampered with.
    await asyncio.to_thread(blob.write_bytes, CONTENT[:-1] + b"!")
    with pytest.raises(LengthOrHashMismatchError):
        await asyncio.to_thread(_download, deployment, tmp_path / "tampered", root, device)


async def test_metadata_and_targets_have_their_types_and_cache_headers(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    await _publish(deployment, pool)
    stamp = await asyncio.to_thread(_get, deployment, "/tuf/metadata/timestamp.json")
    assert stamp.status == 200 and stamp.headers["content-type"] == "application/json"
    assert stamp.headers["cache-control"] == "no-cache"
    snapshot = await asyncio.to_thread(_get, deployment, "/tuf/metadata/2.snapshot.json")
    assert snapshot.status == 200 and "immutable" in snapshot.headers["cache-control"]
    target_url = f"/tuf/targets/firmware/raspberry-pi/{SHA}.app-1.2.0.bin"
    target = await asyncio.to_thread(_get, deployment, target_url)
    assert target.status == 200 and target.data == CONTENT
    assert target.headers["content-type"] == "application/octet-stream"
    head = await asyncio.to_thread(_get, deployment, target_url, "HEAD")
    assert head.status == 200 and head.data == b""
    assert head.headers["content-length"] == str(len(CONTENT))


@pytest.mark.parametrize(
    "path",
    [
        "/tuf/metadata/99.snapshot.json",
        "/tuf/metadata/1.secrets.json",
        "/tuf/metadata/../../pki/server.key",
        "/tuf/targets/firmware/raspberry-pi/app-1.2.0.bin",
        f"/tuf/targets/firmware/{SHA}.app-1.2.0.bin",
        "/tuf/" + "a" * 2000,
    ],
)
async def test_anything_not_published_is_not_found(
    deployment: Deployment, pool: asyncpg.Pool, path: str
) -> None:
    await _publish(deployment, pool)
    response = await asyncio.to_thread(_get, deployment, path)
    assert response.status == 404


async def test_blobs_that_are_not_signed_targets_are_not_served(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    secret = b"a device's log bundle\n"
    sha = hashlib.sha256(secret).hexdigest()
    await _store_blob(deployment, secret)
    response = await asyncio.to_thread(_get, deployment, f"/tuf/targets/{sha}.bundle")
    assert response.status == 404


async def test_the_repository_is_read_only(deployment: Deployment) -> None:
    response = await asyncio.to_thread(_get, deployment, "/tuf/root.json", "POST")
    assert response.status == 405 and response.headers["allow"] == "GET, HEAD"
