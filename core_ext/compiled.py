"""The compiled implementations, gathered under the names the seam exports.

Importing this module raises ImportError when either extension is not built.
"""

from fleetd_native import DeviceIdentity, IdentityCache, IdentityError, extract_identity

from core_ext._batcher import HeartbeatBatcher

__all__ = [
    "DeviceIdentity",
    "HeartbeatBatcher",
    "IdentityCache",
    "IdentityError",
    "extract_identity",
]
