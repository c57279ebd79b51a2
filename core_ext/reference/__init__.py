"""Pure-Python reference implementations: they define what the compiled ones must do."""

from core_ext.reference.batcher import HeartbeatBatcher
from core_ext.reference.identity import DeviceIdentity, IdentityError, extract_identity

__all__ = ["DeviceIdentity", "HeartbeatBatcher", "IdentityError", "extract_identity"]
