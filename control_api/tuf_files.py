"""The TUF repository over HTTPS, on the control API's port: plain GET routes, no auth.

TUF metadata is public and signed, and target files are verified by the client against
it, so these routes need no credentials; they are read-only (GET and HEAD), bounded
(paths up to MAX_PATH, metadata is bounded by what the repository signs, targets are
streamed) and serve signed targets only: a target file is served when its path and
SHA-256 are in the ``tuf_targets`` index, never any other blob of the store.

- ``GET /tuf/root.json`` — the newest root (what an agent pins at enrolment; the
  RegisterDevice response carries the same bytes in ``tuf_root``)
- ``GET /tuf/metadata/timestamp.json`` — the newest timestamp (``Cache-Control: no-cache``)
- ``GET /tuf/metadata/<version>.<role>.json`` — any published version of any role
  (immutable: cached for a year)
- ``GET /tuf/targets/<dir>/<sha256>.<name>`` — the content of target ``<dir>/<name>``
  (consistent snapshot naming; immutable)

Target bytes are streamed from the blob store (``fleetd.storage.blobs``; by default the
deployment's ``FilesystemBlobStore`` under ``<data>/blobs``).

The timestamp refresher that keeps this metadata fresh is a background role of its own
(fleetd/services/tuf_repo/refresher.py), started by control_api/app.py.
"""

from __future__ import annotations

import logging

from connectrpc.errors import ConnectError

from control_api.asgi import Receive, Scope, Send, send_text
from control_api.resources import resources
from fleetd.services.tuf_repo import KeyDirs, TufRepository
from fleetd.services.tuf_repo.repository import split_target_url
from fleetd.storage.blobs import BlobStore, FilesystemBlobStore

log = logging.getLogger(__name__)

PREFIX = "/tuf/"
MAX_PATH = 1024
CHUNK = 1 << 20
IMMUTABLE = b"public, max-age=31536000, immutable"
NO_CACHE = b"no-cache"


def repository() -> TufRepository:
    """The repository on this event loop's pool (raises ConnectError while starting)."""
    res = resources()
    return TufRepository(res.pool, KeyDirs.under(res.settings.paths.root))


class TufFiles:
    """The ASGI app mounted at ``/tuf/``."""

    def __init__(self, blobs: BlobStore | None = None) -> None:
        self._blobs = blobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _respond(
                send, 405, b"text/plain", b"GET or HEAD only\n", extra=[(b"allow", b"GET, HEAD")]
            )
            return
        path: str = scope["path"]
        if len(path) > MAX_PATH or not path.startswith(PREFIX):
            await send_text(send, 404, "not found\n")
            return
        try:
            repo = repository()
            blobs = self._blobs or FilesystemBlobStore(resources().settings.paths.blobs)
        except ConnectError:  # resources not open yet (start-up, shutdown)
            await send_text(send, 503, "starting or stopping; retry shortly\n")
            return
        name = path[len(PREFIX) :]
        head = method == "HEAD"
        if name == "root.json":
            await _metadata(send, await repo.root(), NO_CACHE, head)
        elif name.startswith("metadata/"):
            file = name[len("metadata/") :]
            cache = NO_CACHE if file in ("timestamp.json", "root.json") else IMMUTABLE
            await _metadata(send, await repo.metadata(file), cache, head)
        elif name.startswith("targets/"):
            await _target(send, repo, blobs, name[len("targets/") :], head)
        else:
            await send_text(send, 404, "not found\n")


async def _target(send: Send, repo: TufRepository, blobs: BlobStore, name: str, head: bool) -> None:
    parsed = split_target_url(name)
    length = None if parsed is None else await repo.target_length(*parsed)
    if parsed is None or length is None:
        await send_text(send, 404, "no such target\n")
        return
    path, sha256 = parsed
    if not await blobs.exists(sha256):
        log.error("TUF target %s: blob %s is not in the blob store", path, sha256)
        await send_text(send, 404, "target content is not stored\n")
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(length).encode()),
                (b"cache-control", IMMUTABLE),
            ],
        }
    )
    if not head:
        sent = 0
        async for chunk in blobs.read(sha256, chunk_size=CHUNK):
            # Never more than the signed length (a blob is named by its content, so only
            # a corrupted one differs; the client's hash check refuses it either way).
            chunk = chunk[: length - sent]
            if chunk:
                sent += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _metadata(send: Send, body: bytes | None, cache: bytes, head: bool) -> None:
    if body is None:
        await send_text(send, 404, "no such metadata\n")
        return
    await _respond(
        send, 200, b"application/json", body, extra=[(b"cache-control", cache)], head=head
    )


async def _respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    *,
    extra: list[tuple[bytes, bytes]] | None = None,
    head: bool = False,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": b"" if head else body})
