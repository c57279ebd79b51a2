"""What "the store is down" means: defined once, for the gateway, the control API and the
background roles alike.

``STORE_DOWN`` lists the exceptions that mean PostgreSQL, Redis or the blob filesystem could
not be reached or did not answer in time: the caller should retry later, and the servers
answer UNAVAILABLE (each in one place: ``gateway/aborts.py``, ``control_api/auth.py``'s
``answer``).
``StoreUnavailable`` is the one type storage code raises itself for the same condition
(for example a cache that cannot be filled).

A data error (a value PostgreSQL refuses: out of range, not representable in the
database's encoding) is deliberately not here: it is bad input that validation at the edge
(``fleetd.domain.message_rules``) let through, never "retry later", and must not make an
agent retry for ever. ``DATA_ERRORS`` names it, so that both servers answer it
INVALID_ARGUMENT (without the database's text) and log it as a gap in validation. Any other
exception is a bug: INTERNAL, with a request id to quote.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions


class StoreUnavailable(Exception):
    """A store could not be reached or did not answer in time; retry later."""


STORE_DOWN: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    OSError,  # refused or reset connections, an unreachable host, a full or failing disk
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,  # admin or crash shutdown of the server
    asyncpg.InterfaceError,  # the pool is closing (a drain), a connection went away
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)
"""Catch this tuple (``except STORE_DOWN``) to answer "unavailable, retry later"."""

DATA_ERRORS: tuple[type[BaseException], ...] = (asyncpg.DataError,)
"""A value the database refused (SQLSTATE class 22, or asyncpg refusing a query argument
before sending it): the request's fault, never an outage."""

DATA_REFUSED = (
    "a value in the request cannot be stored (out of range or not representable); "
    "check the request's fields"
)
"""What a caller is told for one of ``DATA_ERRORS`` (the database's own text stays in the
server's log: it may quote SQL or other rows)."""

REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
"""Any failure of a Redis call, for best-effort work (a notice, a cache fill, a lease) whose
failure is logged and skipped rather than answered."""


POSTGRES_ERRORS: tuple[type[BaseException], ...] = (*STORE_DOWN, asyncpg.PostgresError)
"""Any failure of a PostgreSQL call, for background work that logs and tries again next
round (a flush, a sweep, an engine tick) rather than answering a caller: an outage or a
statement PostgreSQL refused."""


def is_store_down(exc: BaseException) -> bool:
    """Whether ``exc`` means a store is unreachable (see STORE_DOWN)."""
    return isinstance(exc, STORE_DOWN)


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a value the database refused (see DATA_ERRORS)."""
    return isinstance(exc, DATA_ERRORS)
