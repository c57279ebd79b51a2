"""The compiled implementations, gathered under the names the seam exports.

Importing this module raises ImportError when either extension is not built.
"""

from fleetd_native import (
    ChunkHasher,
    DeviceIdentity,
    IdentityCache,
    IdentityError,
    Manifest,
    extract_identity,
    hash_file,
    verify_chunk,
)

from core_ext._batcher import HeartbeatBatcher

__all__ = [
    "ChunkHasher",
    "DeviceIdentity",
    "HeartbeatBatcher",
    "IdentityCache",
    "IdentityError",
    "Manifest",
    "extract_identity",
    "hash_file",
    "verify_chunk",
]
