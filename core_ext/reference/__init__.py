"""Pure-Python reference implementations: they define what the compiled ones must do."""

from core_ext.reference.batcher import HeartbeatBatcher
from core_ext.reference.checksum import ChunkHasher, Manifest, hash_file, verify_chunk
from core_ext.reference.filter import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    MAX_FILTER_VALUES,
    Filter,
    FilterError,
    FleetSnapshot,
    compile_filter,
)
from core_ext.reference.identity import DeviceIdentity, IdentityError, extract_identity
from core_ext.reference.identity_cache import IdentityCache
from core_ext.reference.sketch import Sketch

__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_FILTER_VALUES",
    "ChunkHasher",
    "DeviceIdentity",
    "Filter",
    "FilterError",
    "FleetSnapshot",
    "HeartbeatBatcher",
    "IdentityCache",
    "IdentityError",
    "Manifest",
    "Sketch",
    "compile_filter",
    "extract_identity",
    "hash_file",
    "verify_chunk",
]
