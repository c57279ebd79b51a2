"""How a gateway call ends with a status: refusals, and storage outages as UNAVAILABLE.

Shared by every RPC module of the gateway (``gateway.service`` and the modules beside
it), so that each status means the same thing everywhere:

* a refusal's message names what was wrong and what to do (``abort``; or ``Refusal``,
  raised where the problem is found and answered by the RPC's handler);
* a storage outage (``fleetd.storage.errors.STORE_DOWN``) is answered by ``store_down``,
  the one place the gateway maps it to UNAVAILABLE (devices retry that, with backoff),
  never INTERNAL with a traceback's text. A data error is not an outage and is not
  caught there.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

Context = grpc.aio.ServicerContext[Any, Any]


class Refusal(Exception):
    """Ends the call with ``code``. Raised (not aborted) deep inside a call, so that what
    the call holds (a blob writer's temporary file) is released before the device hears
    the answer; the RPC's handler passes it to ``abort``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> Refusal:
    """INVALID_ARGUMENT: the request itself is wrong; ``message`` says how to fix it."""
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, message)


async def abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code`` and ``message`` (``context.abort`` raises)."""
    await context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


async def store_down(context: Context, exc: BaseException, message: str | None = None) -> NoReturn:
    """End the call with UNAVAILABLE for ``exc``, one of ``STORE_DOWN``.

    ``message`` tells the device what to retry; by default it names only the exception's
    class (its text may carry addresses or credentials of the store).
    """
    if message is None:
        message = f"storage unavailable ({exc.__class__.__name__}); retry later"
    await abort(context, grpc.StatusCode.UNAVAILABLE, message)


async def offboarded(context: Context) -> NoReturn:
    """PERMISSION_DENIED for an offboarded device: what every call but its first heartbeat
    after the offboarding hears (that heartbeat is told ``offboarded`` instead)."""
    await abort(context, grpc.StatusCode.PERMISSION_DENIED, "device was offboarded")
