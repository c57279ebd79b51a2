"""Pure-Python reference implementations: they define what the compiled ones must do."""

from core_ext.reference.batcher import HeartbeatBatcher
from core_ext.reference.identity import DeviceIdentity, IdentityError, extract_identity
from core_ext.reference.identity_cache import IdentityCache

__all__ = [
    "DeviceIdentity",
    "HeartbeatBatcher",
    "IdentityCache",
    "IdentityError",
    "extract_identity",
]
