"""The running control API collects blobs by itself: an old orphan blob and a stale
temporary disappear, while an uploaded binary's blob and a young orphan stay."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator

import asyncpg
import grpc

from fleetd.storage.blobs import FilesystemBlobStore
from fleetd.v1 import binary_pb2, binary_pb2_grpc
from tests.support.deployment import running_deployment
from tests.support.waiting import until

GRACE = 600.0


async def test_the_control_api_collects_old_orphans_and_keeps_what_is_in_use(
    database_url: str, redis_url: str, pool: asyncpg.Pool
) -> None:
    async with running_deployment(
        database_url, redis_url, blob_grace_period=GRACE, blob_collect_interval=0.2
    ) as dep:
        store = FilesystemBlobStore(dep.settings.paths.blobs)
        creds = grpc.ssl_channel_credentials(root_certificates=dep.ca_pem)
        async with grpc.aio.secure_channel(f"127.0.0.1:{dep.api_port}", creds) as channel:
            stub = binary_pb2_grpc.BinaryServiceStub(channel)

            async def messages() -> AsyncIterator[binary_pb2.UploadBinaryRequest]:
                yield binary_pb2.UploadBinaryRequest(
                    metadata=binary_pb2.BinaryMetadata(name="kept.bin")
                )
                yield binary_pb2.UploadBinaryRequest(chunk=b"in use")

            uploaded: binary_pb2.UploadBinaryResponse = await stub.UploadBinary(
                messages(), metadata=(("x-api-key", dep.admin_api_key),), timeout=30
            )
        kept = uploaded.checksum.removeprefix("sha256:")
        old = time.time() - 2 * GRACE
        # An uploaded binary's blob, however old, is referenced and stays.
        os.utime(store.path(kept), (old, old))
        await pool.execute("UPDATE blobs SET created_at = now() - interval '1 day'")
        # An orphan (a crash between commit and row) past the grace period goes...
        async with store.writer(max_bytes=1 << 20) as writer:
            await writer.write(b"orphan")
            orphan = (await writer.commit()).sha256
        os.utime(store.path(orphan), (old, old))
        # ...a young orphan (an upload about to write its row) stays...
        async with store.writer(max_bytes=1 << 20) as writer:
            await writer.write(b"young")
            young = (await writer.commit()).sha256
        # ...and so does a temporary being written, while a stale one goes.
        tmp = dep.settings.paths.blobs / "tmp"
        stale, live = tmp / "upload-crashed", tmp / "upload-live"
        stale.write_bytes(b"x")
        live.write_bytes(b"y")
        os.utime(stale, (old, old))

        async def collected() -> bool:
            return not store.path(orphan).exists() and not stale.exists()

        await until(collected, within=20)
        await asyncio.sleep(0.5)  # a few more rounds: nothing else goes
        assert store.path(kept).read_bytes() == b"in use"
        assert store.path(young).read_bytes() == b"young"
        assert live.exists()
        assert hashlib.sha256(b"orphan").hexdigest() == orphan
        assert [r["sha256"] for r in await pool.fetch("SELECT sha256 FROM blobs")] == [kept]
