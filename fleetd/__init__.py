"""fleetd: the Python SDK (``fleetd.Client``) and the generated API modules.

``from fleetd.v1 import device_pb2`` gives the operator API's messages and
``fleetd.Client`` a ready client. The client is imported lazily so that the device
agent, which only needs ``fleetd.device.v1``, does not pull in the HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetd.client import Client

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from fleetd.client import Client

        return Client
    raise AttributeError(f"module 'fleetd' has no attribute {name!r}")
