"""The compiled extension module itself: the ``fleetd_native`` package re-exports all of it.

The API is described in ``fleetd_native/__init__.pyi``.
"""

from fleetd_native import MAX_CACHE_CAPACITY as MAX_CACHE_CAPACITY
from fleetd_native import MAX_CERTIFICATE_SIZE as MAX_CERTIFICATE_SIZE
from fleetd_native import DeviceIdentity as DeviceIdentity
from fleetd_native import IdentityCache as IdentityCache
from fleetd_native import IdentityError as IdentityError
from fleetd_native import extract_identity as extract_identity

__all__ = [
    "MAX_CACHE_CAPACITY",
    "MAX_CERTIFICATE_SIZE",
    "DeviceIdentity",
    "IdentityCache",
    "IdentityError",
    "extract_identity",
]
