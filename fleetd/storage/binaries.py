"""Rows of the ``binaries`` table (migration 0006): what UploadBinary stored.

A binary is immutable once stored. Its bytes are a content-addressed blob
(fleetd/storage/blobs.py); several binaries may name the same blob (the same bytes uploaded twice
under different, or the same, metadata: each upload gets its own binary id, the bytes are
stored once). :func:`insert_binary` writes the blob's index row and the binary's row in one
transaction, called only after the blob is durable, so a row never names a missing file.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

import asyncpg

from core_ext import Manifest
from fleetd.storage.blobs import Blob, index_blob
from fleetd.storage.types import Connection, Pool, Queryable

DIGEST_BYTES = 32
_COLUMNS = """binary_id, sha256, size_bytes, name, version, platform, arch, content_type,
              description, metadata, chunk_size, chunk_digests, uploaded_by, uploaded_at"""


@dataclass(frozen=True, slots=True)
class NewBinary:
    """What the uploader described (validated by the caller)."""

    name: str
    version: str = ""
    platform: str = ""
    arch: str = ""
    content_type: str = "application/octet-stream"
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    uploaded_by: str = ""


@dataclass(frozen=True, slots=True)
class BinaryRecord:
    """One stored binary. ``chunk_digests`` is the manifest's chunk digests, 32 raw bytes
    each, concatenated (chunk ``i`` covers bytes ``[i * chunk_size, (i + 1) * chunk_size)``)."""

    binary_id: str
    sha256: str
    size_bytes: int
    name: str
    version: str
    platform: str
    arch: str
    content_type: str
    description: str
    metadata: dict[str, str]
    chunk_size: int
    chunk_digests: bytes
    uploaded_by: str
    uploaded_at: dt.datetime

    def manifest(self) -> Manifest:
        """The chunk manifest stored with the binary."""
        digests = self.chunk_digests
        chunks = tuple(
            digests[i : i + DIGEST_BYTES].hex() for i in range(0, len(digests), DIGEST_BYTES)
        )
        return Manifest(self.sha256, self.size_bytes, self.chunk_size, chunks)


def new_binary_id() -> str:
    return f"bin_{secrets.token_hex(8)}"


async def insert_binary(
    conn: Connection, binary: NewBinary, blob: Blob, manifest: Manifest
) -> BinaryRecord:
    """Index ``blob`` (already durable in the blob store) and record the binary, in one
    transaction.

    Raises:
        ValueError: when the manifest does not describe the blob.
    """
    if manifest.sha256 != blob.sha256 or manifest.size != blob.size:
        raise ValueError("the manifest does not describe the stored blob")
    async with conn.transaction():
        await index_blob(conn, blob)
        row = await conn.fetchrow(
            f"""INSERT INTO binaries (binary_id, sha256, size_bytes, name, version, platform,
                                      arch, content_type, description, metadata, chunk_size,
                                      chunk_digests, uploaded_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                RETURNING {_COLUMNS}""",
            new_binary_id(),
            blob.sha256,
            blob.size,
            binary.name,
            binary.version,
            binary.platform,
            binary.arch,
            binary.content_type,
            binary.description,
            binary.metadata,
            manifest.chunk_size,
            b"".join(bytes.fromhex(c) for c in manifest.chunks),
            binary.uploaded_by,
        )
    assert row is not None
    return BinaryRecord(**row)


async def record_upload(
    pool: Pool, binary: NewBinary, blob: Blob, manifest: Manifest
) -> BinaryRecord:
    """:func:`insert_binary` on a pooled connection, tried once more when the blob
    collector dropped the blob's index row between our commit and our insert.

    That race is the only foreign-key failure possible here: the collector removed the
    (then unreferenced, old) index row as we wrote ours, and puts back the file it sees
    freshly touched by our commit; writing the index row again settles it.
    """
    for attempt in (1, 2):
        try:
            async with pool.acquire() as conn:
                return await insert_binary(conn, binary, blob, manifest)
        except asyncpg.ForeignKeyViolationError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def get_binary(conn: Queryable, binary_id: str) -> BinaryRecord | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM binaries WHERE binary_id = $1", binary_id)
    return None if row is None else BinaryRecord(**row)
