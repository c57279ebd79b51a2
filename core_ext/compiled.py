"""The compiled implementations, gathered under the names the seam exports.

Importing this module raises ImportError when either extension is not built.
"""

from fleetd_native import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    MAX_FILTER_VALUES,
    ChunkHasher,
    DeviceIdentity,
    Filter,
    FilterError,
    FleetSnapshot,
    IdentityCache,
    IdentityError,
    Manifest,
    Sketch,
    compile_filter,
    extract_identity,
    hash_file,
    verify_chunk,
)

from core_ext._batcher import HeartbeatBatcher

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
