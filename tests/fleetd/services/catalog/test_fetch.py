"""Fetching artifact content from a URL into the blob store (a local HTTP server, which
the guard reaches only because the test allowlists it; the guard itself is tested in
tests/fleetd/services/test_outbound.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetd.services.catalog.fetch import (
    ContentMismatch,
    SourceRefused,
    SourceUnavailable,
    fetch_into,
)
from fleetd.services.outbound import REFUSED, OutboundGuard
from fleetd.storage.blobs import FilesystemBlobStore
from tests.support.file_server import FileServer, file_server
from tests.support.waiting import free_port

BODY = b"0123456789abcdef" * 70_000  # > 1 MiB: several chunks
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        yield server


def _allowing(files: FileServer) -> OutboundGuard:
    return OutboundGuard.allowing([files.host])


def _stored(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_content_is_stored_under_its_digest(files: FileServer, tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    url = files.serve("/a.bin", BODY)
    blob = await fetch_into(store, url, SHA, len(BODY), guard=_allowing(files))
    assert (blob.sha256, blob.size) == (SHA, len(BODY))
    assert store.path(SHA).read_bytes() == BODY


@pytest.mark.parametrize(
    ("body", "declared", "size", "message"),
    [
        (BODY[:-1] + b"!", None, len(BODY), "not the declared checksum"),
        (BODY, -1, len(BODY) - 1, "serves more than size_bytes"),
        (BODY, None, len(BODY) - 1, f"serves {len(BODY)} bytes, but size_bytes is"),
        (BODY[:-10], -1, len(BODY), f"served {len(BODY) - 10} bytes"),
    ],
)
async def test_other_content_than_declared_stores_nothing(
    files: FileServer, tmp_path: Path, body: bytes, declared: int | None, size: int, message: str
) -> None:
    url = files.serve("/a.bin", body, declared_length=declared)
    with pytest.raises(ContentMismatch, match=message):
        await fetch_into(FilesystemBlobStore(tmp_path), url, SHA, size, guard=_allowing(files))
    assert _stored(tmp_path) == []


async def test_client_errors_are_refusals_and_server_errors_unavailable(
    files: FileServer, tmp_path: Path
) -> None:
    store = FilesystemBlobStore(tmp_path)
    guard = OutboundGuard.allowing(["127.0.0.1"])
    with pytest.raises(SourceRefused, match="HTTP 404"):
        await fetch_into(store, files.url("/missing"), SHA, 1, guard=guard)
    with pytest.raises(SourceUnavailable, match="HTTP 502"):
        await fetch_into(store, files.serve("/b", b"", status=502), SHA, 1, guard=guard)
    with pytest.raises(SourceUnavailable):
        await fetch_into(store, f"http://127.0.0.1:{free_port()}/x", SHA, 1, guard=guard)
    assert _stored(tmp_path) == []


async def test_a_url_the_guard_refuses_is_unavailable_without_connecting(
    files: FileServer, tmp_path: Path
) -> None:
    """By default (no allowlist) the local server is internal: the uniform refusal."""
    url = files.serve("/a.bin", BODY)
    with pytest.raises(SourceUnavailable) as err:
        await fetch_into(FilesystemBlobStore(tmp_path), url, SHA, len(BODY))
    assert str(err.value) == f"{url}: {REFUSED}"
    assert files.connections == []
    assert _stored(tmp_path) == []


async def test_a_redirect_the_guard_does_not_follow_is_a_refusal(
    files: FileServer, tmp_path: Path
) -> None:
    url = files.redirect("/a.bin", "gopher://127.0.0.1:70/_x")
    with pytest.raises(SourceRefused, match="redirected to a URL that is not http or https"):
        await fetch_into(FilesystemBlobStore(tmp_path), url, SHA, 1, guard=_allowing(files))
    assert _stored(tmp_path) == []
