"""The one seam between fleetd and its compiled hot path.

Application code imports only from here. The compiled implementations (the Rust
``fleetd_native`` extension and the Cython ``core_ext._batcher`` module) are used when
they are importable; ``FLEETD_PURE_PYTHON=1`` forces the pure-Python references in
``core_ext.reference``, which define the semantics both must share. For the type
checker the names are the reference's: the compiled ones are stubbed to match.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

# Shared by both batchers (one class, so results compare equal): no implementation choice.
from core_ext.heartbeat_types import CopyRecord, Flush, Rollup, StateTransition

IMPLEMENTATION: Literal["compiled", "reference"]

if TYPE_CHECKING or os.environ.get("FLEETD_PURE_PYTHON") == "1":
    from core_ext.reference import (
        MAX_FILTER_DEPTH,
        MAX_FILTER_LENGTH,
        MAX_FILTER_TERMS,
        MAX_FILTER_VALUES,
        ChunkHasher,
        DeviceIdentity,
        Filter,
        FilterError,
        FleetSnapshot,
        HeartbeatBatcher,
        IdentityCache,
        IdentityError,
        Manifest,
        Sketch,
        compile_filter,
        extract_identity,
        hash_file,
        verify_chunk,
    )

    IMPLEMENTATION = "reference"
else:
    try:
        from core_ext.compiled import (
            MAX_FILTER_DEPTH,
            MAX_FILTER_LENGTH,
            MAX_FILTER_TERMS,
            MAX_FILTER_VALUES,
            ChunkHasher,
            DeviceIdentity,
            Filter,
            FilterError,
            FleetSnapshot,
            HeartbeatBatcher,
            IdentityCache,
            IdentityError,
            Manifest,
            Sketch,
            compile_filter,
            extract_identity,
            hash_file,
            verify_chunk,
        )

        IMPLEMENTATION = "compiled"
    except ImportError:  # not built (a source checkout before `make build`)
        from core_ext.reference import (
            MAX_FILTER_DEPTH,
            MAX_FILTER_LENGTH,
            MAX_FILTER_TERMS,
            MAX_FILTER_VALUES,
            ChunkHasher,
            DeviceIdentity,
            Filter,
            FilterError,
            FleetSnapshot,
            HeartbeatBatcher,
            IdentityCache,
            IdentityError,
            Manifest,
            Sketch,
            compile_filter,
            extract_identity,
            hash_file,
            verify_chunk,
        )

        IMPLEMENTATION = "reference"

__all__ = [
    "IMPLEMENTATION",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_FILTER_VALUES",
    "ChunkHasher",
    "CopyRecord",
    "DeviceIdentity",
    "Filter",
    "FilterError",
    "FleetSnapshot",
    "Flush",
    "HeartbeatBatcher",
    "IdentityCache",
    "IdentityError",
    "Manifest",
    "Rollup",
    "Sketch",
    "StateTransition",
    "compile_filter",
    "extract_identity",
    "hash_file",
    "verify_chunk",
]
