"""The TUF repository served by a real deployment over HTTPS, fetched by python-tuf's
ngclient trusting only the fleet CA, as a device will."""

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
from fleetd.services.tuf_repo import KeyDirs, TufRepository
from fleetd.storage.blobs import FilesystemBlobStore
from tests.support.deployment import Deployment, running_deployment
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


def _get(dep: Deployment, path: str, method: str = "GET") -> urllib3.BaseHTTPResponse:
    http = urllib3.PoolManager(ca_certs=str(dep.settings.paths.ca_cert), retries=False)
    return http.request(method, f"{dep.api_endpoint}{path}")


def _download(dep: Deployment, workdir: Path, root: bytes) -> bytes:
    client = updater(
        workdir, root, AgentFetcher(dep.settings.paths.ca_cert), f"{dep.api_endpoint}/tuf"
    )
    client.refresh()
    info = client.get_targetinfo(PATH)
    assert info is not None and info.custom == CUSTOM
    return Path(client.download_target(info)).read_bytes()


async def test_ngclient_over_https_downloads_a_target_and_refuses_it_tampered(
    deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    blob = await _publish(deployment, pool)
    root = (await asyncio.to_thread(_get, deployment, "/tuf/root.json")).data
    assert Metadata.from_bytes(root).signed.type == "root"
    assert await asyncio.to_thread(_download, deployment, tmp_path / "ok", root) == CONTENT
    # Same length, other bytes: the blob store was tampered with.
    await asyncio.to_thread(blob.write_bytes, CONTENT[:-1] + b"!")
    with pytest.raises(LengthOrHashMismatchError):
        await asyncio.to_thread(_download, deployment, tmp_path / "tampered", root)


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
