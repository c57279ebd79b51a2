"""The compiled extension module itself: the ``fleetd_native`` package re-exports all of it.

The API is described in ``fleetd_native/__init__.pyi``.
"""

from fleetd_native import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from fleetd_native import MAX_CACHE_CAPACITY as MAX_CACHE_CAPACITY
from fleetd_native import MAX_CERTIFICATE_SIZE as MAX_CERTIFICATE_SIZE
from fleetd_native import MAX_CHUNK_SIZE as MAX_CHUNK_SIZE
from fleetd_native import MAX_FILTER_DEPTH as MAX_FILTER_DEPTH
from fleetd_native import MAX_FILTER_LENGTH as MAX_FILTER_LENGTH
from fleetd_native import MAX_FILTER_TERMS as MAX_FILTER_TERMS
from fleetd_native import MAX_FILTER_VALUES as MAX_FILTER_VALUES
from fleetd_native import ChunkHasher as ChunkHasher
from fleetd_native import DeviceIdentity as DeviceIdentity
from fleetd_native import Filter as Filter
from fleetd_native import FilterError as FilterError
from fleetd_native import FleetSnapshot as FleetSnapshot
from fleetd_native import IdentityCache as IdentityCache
from fleetd_native import IdentityError as IdentityError
from fleetd_native import Manifest as Manifest
from fleetd_native import Sketch as Sketch
from fleetd_native import compile_filter as compile_filter
from fleetd_native import extract_identity as extract_identity
from fleetd_native import hash_file as hash_file
from fleetd_native import verify_chunk as verify_chunk

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CACHE_CAPACITY",
    "MAX_CERTIFICATE_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_FILTER_VALUES",
    "ChunkHasher",
    "DeviceIdentity",
    "Filter",
    "FilterError",
    "FleetSnapshot",
    "IdentityCache",
    "IdentityError",
    "Manifest",
    "Sketch",
    "compile_filter",
    "extract_identity",
    "hash_file",
    "verify_chunk",
]
