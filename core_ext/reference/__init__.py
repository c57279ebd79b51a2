"""Pure-Python reference implementations: they define what the compiled ones must do."""

from core_ext.reference.batcher import HeartbeatBatcher
from core_ext.reference.checksum import ChunkHasher, Manifest, hash_file, verify_chunk
from core_ext.reference.identity import DeviceIdentity, IdentityError, extract_identity
from core_ext.reference.identity_cache import IdentityCache

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
