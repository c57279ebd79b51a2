"""The compiled extension module itself: the ``fleetd_native`` package re-exports all of it.

The API is described in ``fleetd_native/__init__.pyi``.
"""

from fleetd_native import MAX_CERTIFICATE_SIZE as MAX_CERTIFICATE_SIZE
from fleetd_native import MAX_FILTER_DEPTH as MAX_FILTER_DEPTH
from fleetd_native import MAX_FILTER_LENGTH as MAX_FILTER_LENGTH
from fleetd_native import MAX_FILTER_TERMS as MAX_FILTER_TERMS
from fleetd_native import MAX_FILTER_VALUES as MAX_FILTER_VALUES
from fleetd_native import DeviceIdentity as DeviceIdentity
from fleetd_native import Filter as Filter
from fleetd_native import FilterError as FilterError
from fleetd_native import FleetSnapshot as FleetSnapshot
from fleetd_native import IdentityError as IdentityError
from fleetd_native import compile_filter as compile_filter
from fleetd_native import extract_identity as extract_identity

__all__ = ["MAX_CERTIFICATE_SIZE", "DeviceIdentity", "IdentityError", "extract_identity"]
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
