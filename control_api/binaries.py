"""``fleetd.v1.BinaryService``: streaming upload and download of artifact content.

**UploadBinary** (client stream, ``update:create``): one ``metadata`` message, then the
content in ``chunk`` messages of at most 4 MiB. Bytes stream into the blob store as they
arrive (hashed on the way by core_ext's ChunkHasher: SHA-256 and a 1 MiB chunk manifest,
never held in memory). Only when the whole stream was received and checked is the blob
committed (fsynced, renamed under its SHA-256), and then one transaction writes the blob's
index row and the binary's row. Every refusal happens before the commit, so a refused
upload leaves nothing behind: no blob, no row, no temporary file.

Refusals:

- INVALID_ARGUMENT: an empty stream; a first message that is not metadata; a second
  metadata message; a message with neither metadata nor chunk; a chunk over 4 MiB; no
  ``name`` or an oversize or malformed field (limits in :func:`new_binary`); a
  ``binary_id`` or ``uploaded_at`` set by the client (the server assigns them); no
  content at all; a declared ``size_bytes`` or ``checksum`` the content does not match;
- RESOURCE_EXHAUSTED: the content (or the declared ``size_bytes``) exceeds
  ``FLEETD_MAX_BINARY_BYTES`` (default 2 GiB) — the gRPC convention for a size limit,
  as for log bundles; retrying the same upload will not help;
- DEADLINE_EXCEEDED: no message for IDLE_TIMEOUT seconds (a stalled client frees its
  temporary file);
- UNAVAILABLE: PostgreSQL or the disk cannot be used right now (upload again later).

Uploading the same bytes twice stores one blob and two binaries (two ids, each with its
own metadata): a binary is an upload, the blob is its content.

**DownloadBinary** (server stream, ``update:view``): the binary's full metadata first
(``binary_id``, ``uploaded_at``, ``checksum``, ``size_bytes`` included), then its bytes
from ``offset`` in chunks of ``chunk_size`` (0 means 1 MiB, more than 4 MiB is clamped to
4 MiB). NOT_FOUND for an unknown id; INVALID_ARGUMENT for a negative ``offset`` or
``chunk_size`` and for an ``offset`` past the end (``offset == size_bytes`` is valid: the
metadata, then no chunk — a finished download resumed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from control_api import convert
from control_api.auth import audit_target, current_principal
from control_api.errors import invalid
from control_api.resources import resources
from core_ext import Manifest
from fleetd.storage import binaries as binary_store
from fleetd.storage.binaries import BinaryRecord, NewBinary
from fleetd.storage.blobs import Blob, BlobNotFound, BlobStore, BlobTooLarge, FilesystemBlobStore
from fleetd.v1 import binary_pb2
from fleetd.v1.binary_connect import BinaryService

MAX_CHUNK_BYTES = 4 << 20
"""The largest chunk accepted in an upload and sent in a download."""
MAX_MESSAGE_BYTES = MAX_CHUNK_BYTES + (64 << 10)
"""The ASGI app's read limit per request message: a 4 MiB chunk plus its framing (the
metadata message is far smaller, see the limits below)."""
DEFAULT_DOWNLOAD_CHUNK = 1 << 20
IDLE_TIMEOUT = 60.0

MAX_NAME = 255
MAX_SHORT = 64
MAX_CONTENT_TYPE = 128
MAX_DESCRIPTION = 4096
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024
MAX_BINARY_ID = 64
_CHECKSUM = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Ctx = RequestContext[Any, Any]


def _too_large(limit: int) -> ConnectError:
    return ConnectError(
        Code.RESOURCE_EXHAUSTED,
        f"the binary exceeds this server's limit of {limit} bytes (FLEETD_MAX_BINARY_BYTES)",
    )


@dataclass(frozen=True, slots=True)
class Declared:
    """What the uploader promised about the content (0 / "" = nothing promised)."""

    size_bytes: int = 0
    sha256: str = ""


def new_binary(
    metadata: binary_pb2.BinaryMetadata, *, uploaded_by: str, max_bytes: int
) -> tuple[NewBinary, Declared]:
    """The upload's metadata, checked: a NewBinary to store and the promises to verify.

    Raises:
        ConnectError: INVALID_ARGUMENT naming the field, or RESOURCE_EXHAUSTED when the
            declared size is over ``max_bytes``.
    """
    name = metadata.name
    if not name:
        raise invalid("metadata.name is required (the file name, e.g. firmware.bin)")
    if len(name) > MAX_NAME or name in (".", "..") or "/" in name or "\\" in name:
        raise invalid(
            f"metadata.name must be a file name of at most {MAX_NAME} characters, "
            "without '/' or '\\'"
        )
    for field_name, value, limit in (
        ("name", name, MAX_NAME),
        ("version", metadata.version, MAX_SHORT),
        ("platform", metadata.platform, MAX_SHORT),
        ("arch", metadata.arch, MAX_SHORT),
        ("content_type", metadata.content_type, MAX_CONTENT_TYPE),
    ):
        if len(value) > limit:
            raise invalid(f"metadata.{field_name} is longer than {limit} characters")
        if _CONTROL.search(value):
            raise invalid(f"metadata.{field_name} contains control characters")
    if len(metadata.description) > MAX_DESCRIPTION:
        raise invalid(f"metadata.description is longer than {MAX_DESCRIPTION} characters")
    if len(metadata.metadata) > MAX_METADATA_ENTRIES or any(
        not k or len(k) > MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE
        for k, v in metadata.metadata.items()
    ):
        raise invalid(
            f"metadata.metadata: at most {MAX_METADATA_ENTRIES} entries, keys of 1 to "
            f"{MAX_METADATA_KEY} and values of at most {MAX_METADATA_VALUE} characters"
        )
    if metadata.binary_id or metadata.HasField("uploaded_at"):
        raise invalid("metadata.binary_id and metadata.uploaded_at are assigned by the server")
    if metadata.size_bytes < 0:
        raise invalid("metadata.size_bytes must not be negative (0 = not declared)")
    if metadata.size_bytes > max_bytes:
        raise _too_large(max_bytes)
    sha256 = ""
    if metadata.checksum:
        match = _CHECKSUM.match(metadata.checksum)
        if match is None:
            raise invalid('metadata.checksum must be "sha256:" followed by 64 hex digits')
        sha256 = match[1].lower()
    binary = NewBinary(
        name=name,
        version=metadata.version,
        platform=metadata.platform,
        arch=metadata.arch,
        content_type=metadata.content_type or "application/octet-stream",
        description=metadata.description,
        metadata=dict(metadata.metadata),
        uploaded_by=uploaded_by,
    )
    return binary, Declared(metadata.size_bytes, sha256)


def binary_metadata(record: BinaryRecord) -> binary_pb2.BinaryMetadata:
    """A stored binary as DownloadBinary describes it (every field filled in)."""
    return binary_pb2.BinaryMetadata(
        name=record.name,
        version=record.version,
        platform=record.platform,
        size_bytes=record.size_bytes,
        checksum=f"sha256:{record.sha256}",
        content_type=record.content_type,
        arch=record.arch,
        description=record.description,
        metadata=record.metadata,
        binary_id=record.binary_id,
        uploaded_at=convert.timestamp(record.uploaded_at),
    )


def download_chunk_size(requested: int) -> int:
    """The seed's chunk_size: 0 means 1 MiB, more than 4 MiB is clamped.

    Raises:
        ConnectError: INVALID_ARGUMENT when negative.
    """
    if requested < 0:
        raise invalid("chunk_size must not be negative (0 = 1 MiB)")
    return min(requested or DEFAULT_DOWNLOAD_CHUNK, MAX_CHUNK_BYTES)


class BinaryServiceImpl(BinaryService):
    """BinaryService over the deployment's blob store (``Settings.paths.blobs``)."""

    def __init__(self, *, blobs: BlobStore | None = None, idle_timeout: float = IDLE_TIMEOUT):
        self._blobs = blobs
        self._idle_timeout = idle_timeout

    def _store(self) -> BlobStore:
        return self._blobs or FilesystemBlobStore(resources().settings.paths.blobs)

    async def upload_binary(
        self, request: AsyncIterator[binary_pb2.UploadBinaryRequest], ctx: Ctx
    ) -> binary_pb2.UploadBinaryResponse:
        messages = aiter(request)
        first = await self._next(messages)
        if first is None:
            raise invalid("the stream is empty: send a metadata message, then the chunks")
        if first.WhichOneof("data") != "metadata":
            raise invalid("the first message must be the metadata (then the chunks)")
        limit = resources().settings.max_binary_bytes
        binary, declared = new_binary(
            first.metadata, uploaded_by=current_principal().id, max_bytes=limit
        )
        # A store that is down (disk, PostgreSQL) is UNAVAILABLE (control_api/auth.py);
        # the writer discards what it received, so nothing is left behind either way.
        blob, manifest = await self._receive(messages, declared, limit)
        record = await binary_store.record_upload(resources().pool, binary, blob, manifest)
        audit_target(record.binary_id)
        return binary_pb2.UploadBinaryResponse(
            binary_id=record.binary_id,
            checksum=f"sha256:{record.sha256}",
            size_bytes=record.size_bytes,
            uploaded_at=convert.timestamp(record.uploaded_at),
        )

    async def _next(
        self, messages: AsyncIterator[binary_pb2.UploadBinaryRequest]
    ) -> binary_pb2.UploadBinaryRequest | None:
        try:
            async with asyncio.timeout(self._idle_timeout):
                return await anext(messages)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise ConnectError(
                Code.DEADLINE_EXCEEDED,
                f"no UploadBinary message for {self._idle_timeout:g}s; start the upload again",
            ) from None

    async def _receive(
        self,
        messages: AsyncIterator[binary_pb2.UploadBinaryRequest],
        declared: Declared,
        limit: int,
    ) -> tuple[Blob, Manifest]:
        """The chunks, checked and committed; any refusal (or error) discards them."""
        received = 0
        async with self._store().writer(max_bytes=limit) as writer:
            while (message := await self._next(messages)) is not None:
                kind = message.WhichOneof("data")
                if kind == "metadata":
                    raise invalid("the metadata was sent twice; send it once, first")
                if kind != "chunk":
                    raise invalid("a message carries neither metadata nor a chunk")
                chunk = message.chunk
                if len(chunk) > MAX_CHUNK_BYTES:
                    raise invalid(
                        f"a chunk is {len(chunk)} bytes; at most {MAX_CHUNK_BYTES} per message"
                    )
                received += len(chunk)
                if declared.size_bytes and received > declared.size_bytes:
                    raise invalid(
                        f"the content is longer than the declared size_bytes "
                        f"({declared.size_bytes})"
                    )
                try:
                    await writer.write(chunk)
                except BlobTooLarge:
                    raise _too_large(limit) from None
            manifest = writer.manifest()
            if manifest.size == 0:
                raise invalid("the binary is empty: send its content in chunk messages")
            if declared.size_bytes and manifest.size != declared.size_bytes:
                raise invalid(
                    f"the content is {manifest.size} bytes, not the declared size_bytes "
                    f"({declared.size_bytes}); nothing was stored"
                )
            if declared.sha256 and manifest.sha256 != declared.sha256:
                raise invalid(
                    f"the content's checksum is sha256:{manifest.sha256}, not the declared "
                    f"sha256:{declared.sha256}; nothing was stored"
                )
            return await writer.commit(), manifest

    async def download_binary(
        self, request: binary_pb2.DownloadBinaryRequest, ctx: Ctx
    ) -> AsyncIterator[binary_pb2.DownloadBinaryResponse]:
        if not request.binary_id:
            raise invalid("binary_id is required")
        if len(request.binary_id) > MAX_BINARY_ID:
            raise ConnectError(Code.NOT_FOUND, "no such binary")
        if request.offset < 0:
            raise invalid("offset must not be negative")
        chunk_size = download_chunk_size(request.chunk_size)
        record = await binary_store.get_binary(resources().pool, request.binary_id)
        if record is None:
            raise ConnectError(Code.NOT_FOUND, f"binary {request.binary_id} not found")
        if request.offset > record.size_bytes:
            raise invalid(
                f"offset {request.offset} is past the end of the binary ({record.size_bytes} bytes)"
            )
        store = self._store()
        if not await store.exists(record.sha256):
            raise ConnectError(
                Code.INTERNAL,
                f"the content of binary {record.binary_id} is missing from the blob store",
            )
        yield binary_pb2.DownloadBinaryResponse(metadata=binary_metadata(record))
        remaining = record.size_bytes - request.offset
        try:
            async for chunk in store.read(
                record.sha256, offset=request.offset, chunk_size=chunk_size
            ):
                piece = chunk[:remaining]
                if not piece:
                    break
                remaining -= len(piece)
                yield binary_pb2.DownloadBinaryResponse(chunk=piece)
        except BlobNotFound:
            raise ConnectError(
                Code.INTERNAL,
                f"the content of binary {record.binary_id} is missing from the blob store",
            ) from None
