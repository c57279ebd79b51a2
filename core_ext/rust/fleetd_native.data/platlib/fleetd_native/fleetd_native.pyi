"""The compiled extension module itself: the ``fleetd_native`` package re-exports all of it.

The API is described in ``fleetd_native/__init__.pyi``.
"""

from fleetd_native import MAX_CERTIFICATE_SIZE as MAX_CERTIFICATE_SIZE
from fleetd_native import DeviceIdentity as DeviceIdentity
from fleetd_native import IdentityError as IdentityError
from fleetd_native import extract_identity as extract_identity

__all__ = ["MAX_CERTIFICATE_SIZE", "DeviceIdentity", "IdentityError", "extract_identity"]
