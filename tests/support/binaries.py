"""Uploaded binaries for tests, written the way UploadBinary stores them: a blob in the
deployment's blob store, indexed, and a ``binaries`` row (0006_binaries.sql)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from fleetd.storage.blobs import FilesystemBlobStore, index_blob
from fleetd.storage.types import Queryable

CHUNK_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredBinary:
    binary_id: str
    sha256: str
    size_bytes: int


async def store_binary(
    conn: Queryable, blobs_root: Path, content: bytes, *, name: str = "app.bin"
) -> StoredBinary:
    """Store ``content`` as an uploaded binary named ``name``."""
    store = FilesystemBlobStore(blobs_root)
    async with store.writer(max_bytes=len(content)) as writer:
        await writer.write(content)
        blob = await writer.commit()
    await index_blob(conn, blob)
    digests = b"".join(
        hashlib.sha256(content[i : i + CHUNK_SIZE]).digest()
        for i in range(0, len(content), CHUNK_SIZE)
    )
    binary_id = f"bin_{secrets.token_hex(8)}"
    await conn.execute(
        """INSERT INTO binaries (binary_id, sha256, size_bytes, name, chunk_size, chunk_digests)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        binary_id,
        blob.sha256,
        blob.size,
        name,
        CHUNK_SIZE,
        digests,
    )
    return StoredBinary(binary_id, blob.sha256, blob.size)
