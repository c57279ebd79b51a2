"""Ending a call with a status, and which storage failures mean "try again later".

Shared by the RPC modules beside ``gateway.service``. A refusal's message names what was
wrong and what to do; storage outages become UNAVAILABLE (retryable) and never reach a
device as INTERNAL with a traceback's text.
"""

from __future__ import annotations

from typing import Any, NoReturn

import asyncpg
import grpc

STORAGE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # the pool is closing (a drain), a connection went away
)
"""Exceptions that mean PostgreSQL (or the disk) cannot be reached right now."""


async def abort(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str
) -> NoReturn:
    """End the call with ``code`` and ``message`` (``context.abort`` raises)."""
    await context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")
