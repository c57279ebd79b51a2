"""``AgentService/UploadLogs``: a device answers one of its log requests with a gzip bundle.

The stream is one ``header`` then ``chunk`` messages. Nothing is written before the header
names a pending, unexpired request issued to the calling device; bytes then stream into
the blob store (hashed as they arrive, never held in memory) under the request's
``max_bytes``. Only after the blob is durable does one transaction record the bundle, mark
the request fulfilled and bump the device's revision (so heartbeats stop carrying it);
Redis is told after the commit.

Refusals:

- INVALID_ARGUMENT: no header first, a second header, a message with neither header nor
  chunk, a chunk over 1 MiB, an encoding other than gzip, content without the gzip magic,
  an empty bundle, a source differing from the request's;
- NOT_FOUND: the request is unknown or another device's (the two are indistinguishable);
- ALREADY_EXISTS: the request was answered already (its bundle exists, so an agent
  retrying after a lost response can stop);
- FAILED_PRECONDITION: the request expired;
- RESOURCE_EXHAUSTED: the bundle is larger than the request's ``max_bytes`` (nothing
  is stored);
- DEADLINE_EXCEEDED: no message for ``idle_timeout`` seconds;
- PERMISSION_DENIED: the device was offboarded;
- UNAVAILABLE: PostgreSQL or the disk cannot be used right now (retry later).

The uncompressed size is the device's claim, recorded as sent: the gateway never
decompresses a bundle (a small bundle may expand enormously).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

import grpc
from google.protobuf import timestamp_pb2

from fleetd.device.v1 import agent_pb2
from fleetd.storage import log_requests
from fleetd.storage.blobs import Blob, BlobStore, BlobTooLarge
from fleetd.storage.desired import mark_changed
from fleetd.storage.errors import STORE_DOWN
from fleetd.storage.log_requests import (
    AlreadyFulfilled,
    Expired,
    LogRequestError,
    LogRequestNotFound,
)
from fleetd.storage.types import Pool, Redis
from gateway.aborts import Context, Refusal, abort, invalid, offboarded, store_down
from gateway.device_auth import CallerDevice

MAX_CHUNK_BYTES = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b\x08"
"""ID1, ID2 and CM=8 (deflate, the only method RFC 1952 defines)."""
MAX_ID = 128
MAX_UNCOMPRESSED = 2**40

_CODES: dict[type[LogRequestError], grpc.StatusCode] = {
    LogRequestNotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyFulfilled: grpc.StatusCode.ALREADY_EXISTS,
    Expired: grpc.StatusCode.FAILED_PRECONDITION,
}

_UNAVAILABLE = "the log bundle could not be stored right now; upload it again later"
_NOT_GZIP = "the bundle is not gzip data (it must start with the gzip magic 1f 8b 08)"


class LogUploads:
    """Receives log bundles for ``AgentService``."""

    def __init__(
        self,
        pool: Pool,
        redis: Redis,
        blobs: BlobStore,
        *,
        idle_timeout: float = 60.0,
        acquire_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._blobs = blobs
        self._idle_timeout = idle_timeout
        self._acquire_timeout = acquire_timeout

    async def upload(
        self,
        caller: CallerDevice,
        requests: AsyncIterable[agent_pb2.UploadLogsRequest],
        context: Context,
    ) -> agent_pb2.UploadLogsResponse:
        if caller.offboarded:
            await offboarded(context)
        try:
            return await self._upload(caller, aiter(requests))
        except Refusal as refusal:
            await abort(context, refusal.code, str(refusal))
        except LogRequestError as exc:
            code = _CODES.get(type(exc), grpc.StatusCode.FAILED_PRECONDITION)
            await abort(context, code, str(exc))
        except STORE_DOWN as exc:
            await store_down(context, exc, _UNAVAILABLE)

    async def _upload(
        self, caller: CallerDevice, messages: AsyncIterator[agent_pb2.UploadLogsRequest]
    ) -> agent_pb2.UploadLogsResponse:
        first = await self._next(messages)
        if first is None or first.WhichOneof("data") != "header":
            raise invalid("the first message of UploadLogs must be the header (then the chunks)")
        header = first.header
        _check_header(header)
        target = await log_requests.upload_target(
            self._pool, caller.device_id, header.log_request_id
        )
        if (
            header.source != agent_pb2.LOG_SOURCE_UNSPECIFIED
            and log_requests.SOURCES[target.source] != header.source
        ):
            raise invalid(f"header.source differs from the request's source ({target.source})")
        blob = await self._receive(messages, target.max_bytes)
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            result = await log_requests.fulfil(
                conn,
                caller.device_id,
                target.log_request_id,
                blob,
                content_encoding=header.content_encoding,
                uncompressed_size=header.uncompressed_size,
            )
        await mark_changed(self._redis, result.revisions)
        stored_at = timestamp_pb2.Timestamp()
        stored_at.FromDatetime(result.bundle.stored_at)
        return agent_pb2.UploadLogsResponse(
            bundle_id=result.bundle.bundle_id,
            size_bytes=result.bundle.size_bytes,
            stored_at=stored_at,
        )

    async def _next(
        self, messages: AsyncIterator[agent_pb2.UploadLogsRequest]
    ) -> agent_pb2.UploadLogsRequest | None:
        try:
            async with asyncio.timeout(self._idle_timeout):
                return await anext(messages)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise Refusal(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no UploadLogs message for {self._idle_timeout:g}s; start the upload again",
            ) from None

    async def _receive(
        self, messages: AsyncIterator[agent_pb2.UploadLogsRequest], max_bytes: int
    ) -> Blob:
        """The chunks, checked and stored; a refusal (or any error) leaves nothing behind."""
        head = b""
        async with self._blobs.writer(max_bytes=max_bytes) as writer:
            while (message := await self._next(messages)) is not None:
                kind = message.WhichOneof("data")
                if kind == "header":
                    raise invalid("the header was sent twice; send it once, first")
                if kind != "chunk":
                    raise invalid("a message carries neither a header nor a chunk")
                chunk = message.chunk
                if len(chunk) > MAX_CHUNK_BYTES:
                    raise invalid(
                        f"a chunk is {len(chunk)} bytes; at most {MAX_CHUNK_BYTES} per message"
                    )
                if len(head) < len(GZIP_MAGIC):
                    head += chunk[: len(GZIP_MAGIC) - len(head)]
                    if not GZIP_MAGIC.startswith(head):
                        raise invalid(_NOT_GZIP)
                try:
                    await writer.write(chunk)
                except BlobTooLarge:
                    raise Refusal(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the bundle exceeds the request's max_bytes ({max_bytes} bytes); "
                        "keep the newest entries within that size and upload again",
                    ) from None
            if not head:
                raise invalid("the bundle is empty")
            if head != GZIP_MAGIC:
                raise invalid(_NOT_GZIP)
            return await writer.commit()


def _check_header(header: agent_pb2.LogBundleHeader) -> None:
    if not header.log_request_id or len(header.log_request_id) > MAX_ID:
        raise invalid(f"header.log_request_id must be 1 to {MAX_ID} characters")
    if header.content_encoding != "gzip":
        raise invalid(
            f"header.content_encoding must be 'gzip', got {header.content_encoding[:32]!r}"
        )
    if not 0 <= header.uncompressed_size <= MAX_UNCOMPRESSED:
        raise invalid(f"header.uncompressed_size must be between 0 and {MAX_UNCOMPRESSED}")
    if header.source != agent_pb2.LOG_SOURCE_UNSPECIFIED and header.source not in (
        log_requests.SOURCES.values()
    ):
        raise invalid(f"header.source {header.source} is not a known log source")
