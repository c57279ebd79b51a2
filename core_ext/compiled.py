"""The compiled implementations, gathered under the names the seam exports.

Importing this module raises ImportError when either extension is not built.
"""

from fleetd_native import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    MAX_FILTER_VALUES,
    DeviceIdentity,
    Filter,
    FilterError,
    FleetSnapshot,
    IdentityError,
    compile_filter,
    extract_identity,
)

from core_ext._batcher import HeartbeatBatcher

__all__ = ["DeviceIdentity", "HeartbeatBatcher", "IdentityError", "extract_identity"]
__all__ += [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_FILTER_VALUES",
    "Filter",
    "FilterError",
    "FleetSnapshot",
    "compile_filter",
]
