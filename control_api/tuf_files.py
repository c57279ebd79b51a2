"""The TUF repository over HTTPS, on the control API's port: plain GET routes.

Read-only (GET and HEAD), bounded (paths up to MAX_PATH, metadata is bounded by what the
repository signs, targets are streamed) and serving signed targets only: a target file is
served when its path and SHA-256 are in the ``tuf_targets`` index, never any other blob of
the store.

- ``GET /tuf/root.json`` — the newest root (what an agent pins at enrolment; the
  RegisterDevice response carries the same bytes in ``tuf_root``). Public: keys only.
- ``GET /tuf/metadata/timestamp.json`` — the newest timestamp (``Cache-Control: no-cache``)
- ``GET /tuf/metadata/<version>.<role>.json`` — any published version of any role
  (immutable: cached for a year)
- ``GET /tuf/targets/<dir>/<sha256>.<name>`` — the content of target ``<dir>/<name>``
  (consistent snapshot naming; immutable)

Who may read what (docs/tuf.md, "Who may download"):

- **a device** — its fleet client certificate (verified by Envoy, forwarded in
  ``x-forwarded-client-cert``, ``control_api.client_cert``) with the standing the operator
  API and the gateway require (issued by fleetd to that device, not revoked, device not
  offboarded: ``control_api.auth``, ``fleetd.storage.devices.certificate_standing``), or a
  device's API key: every metadata file, and the target files its active assignments name
  (``fleetd.storage.target_access``: what to install, the version it replaces, rollback
  targets);
- **an operator** — ``X-API-Key`` or ``Authorization: Bearer`` as for the RPCs, with the
  ``update:view`` permission: everything;
- **anyone else** — nothing but the root: 401 before anything is looked up, so a missing
  and an existing target get the same answer, of the same length. A device asking for a
  target it is not assigned gets 403, whether or not the target exists.

Metadata is signed and carries no content, but it names every artifact with its length and
SHA-256 (a low-entropy config could be guessed from its hash), so it is not public either.

Target bytes are streamed from the blob store (``fleetd.storage.blobs``; by default the
deployment's ``FilesystemBlobStore`` under ``<data>/blobs``).

The timestamp refresher that keeps this metadata fresh is a background role of its own
(fleetd/services/tuf_repo/refresher.py), started by control_api/app.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from connectrpc.errors import ConnectError

from control_api import client_cert
from control_api.asgi import Receive, Scope, Send, send_text
from control_api.auth import (
    ANONYMOUS,
    Principal,
    authenticate_api_key,
    authenticate_bearer,
    authenticate_certificate,
)
from control_api.permissions import allows
from control_api.resources import resources
from fleetd.services.tuf_repo import KeyDirs, TufRepository
from fleetd.services.tuf_repo.repository import split_target_url
from fleetd.storage.blobs import BlobStore, FilesystemBlobStore
from fleetd.storage.errors import is_store_down
from fleetd.storage.target_access import device_may_fetch
from fleetd.storage.types import Queryable

log = logging.getLogger(__name__)

PREFIX = "/tuf/"
MAX_PATH = 1024
CHUNK = 1 << 20
IMMUTABLE = b"private, max-age=31536000, immutable"
"""Immutable, but only for the caller's own cache: the answer depends on credentials, so
no shared cache (a CDN, a reverse proxy) may keep it for others."""
NO_CACHE = b"no-cache"
PERMISSION = "update:view"
"""What an operator needs to read the repository (as for GetUpdate and DownloadBinary)."""

UNAUTHENTICATED = (
    "authentication required: a device client certificate, X-API-Key or "
    "Authorization: Bearer <JWT>\n"
)
NOT_ASSIGNED = "this target is not assigned to this device\n"


class Refusal(Exception):
    """An answer other than the content: an HTTP status and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
            pool = resources().pool
            blobs = self._blobs or FilesystemBlobStore(resources().settings.paths.blobs)
        except ConnectError:  # resources not open yet (start-up, shutdown)
            await send_text(send, 503, "starting or stopping; retry shortly\n")
            return
        name = path[len(PREFIX) :]
        head = method == "HEAD"
        if name == "root.json":  # public: the trust anchor, keys only
            await _metadata(send, await repo.root(), NO_CACHE, head)
            return
        section, _, rest = name.partition("/")
        if section not in ("metadata", "targets"):
            await send_text(send, 404, "not found\n")
            return
        try:
            principal = await admitted(scope)
            if section == "metadata":
                cache = NO_CACHE if rest in ("timestamp.json", "root.json") else IMMUTABLE
                body = await repo.metadata(rest)
            else:
                sha256, length = await _find_target(pool, repo, blobs, principal, rest)
        except Refusal as refusal:
            await send_text(send, refusal.status, refusal.reason)
            return
        except Exception as exc:
            if not is_store_down(exc):
                log.exception("TUF request %s failed", path[:200])
                await send_text(send, 500, "internal error\n")
                return
            log.warning("TUF request %s: store unavailable: %r", path[:200], exc)
            await send_text(send, 503, "storage unavailable; retry shortly\n")
            return
        if section == "metadata":
            await _metadata(send, body, cache, head)
        else:
            await _stream_target(send, blobs, sha256, length, head)


async def caller(scope: Scope) -> Principal:
    """Who is asking, authenticated as the operator API does (``control_api.auth``): an
    API key, else a bearer JWT, else the forwarded client certificate; ANONYMOUS when none
    is given. Refusal 401 (with the reason) for credentials that do not hold."""
    headers = scope.get("headers", ())
    try:
        api_key = _header(headers, b"x-api-key")
        if api_key is not None:
            return await authenticate_api_key(api_key.strip())
        authorization = _header(headers, b"authorization")
        if authorization is not None:
            return await authenticate_bearer(authorization)
        pem = client_cert.from_headers(headers)
        if pem is not None:
            return await authenticate_certificate(pem)
    except ConnectError as refused:
        raise Refusal(401, f"{refused.message}\n") from None
    return ANONYMOUS


async def admitted(scope: Scope) -> Principal:
    """The caller (:func:`caller`), if :func:`admit` lets it in; else a Refusal."""
    return admit(await caller(scope))


def admit(principal: Principal) -> Principal:
    """Who may read the repository's metadata (IO-free): a device, which may then read
    its own targets only, or a holder of ``update:view``. Refusal 401 for the anonymous,
    403 for anyone else."""
    if not principal.authenticated:
        raise Refusal(401, UNAUTHENTICATED)
    if principal.device_id is None and not allows(principal.role, PERMISSION):
        raise Refusal(403, f"role {principal.role} does not have permission {PERMISSION}\n")
    return principal


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _find_target(
    pool: Queryable, repo: TufRepository, blobs: BlobStore, principal: Principal, name: str
) -> tuple[str, int]:
    """(sha256, length) of the signed target at URL name ``name`` that ``principal``
    may download; else a Refusal. A device is checked against its assignments before
    anything about the target is looked up, so it learns nothing of other targets."""
    parsed = split_target_url(name)
    if principal.device_id is not None and (
        parsed is None or not await device_may_fetch(pool, principal.device_id, parsed[0])
    ):
        raise Refusal(403, NOT_ASSIGNED)
    length = None if parsed is None else await repo.target_length(*parsed)
    if parsed is None or length is None:
        raise Refusal(404, "no such target\n")
    path, sha256 = parsed
    if not await blobs.exists(sha256):
        log.error("TUF target %s: blob %s is not in the blob store", path, sha256)
        raise Refusal(404, "target content is not stored\n")
    return sha256, length


async def _stream_target(
    send: Send, blobs: BlobStore, sha256: str, length: int, head: bool
) -> None:
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
