"""Reporting the statements a pooled connection runs, for request traces (``X-Debug``).

asyncpg calls a connection's query loggers after each statement, through
``loop.call_soon`` in the querying task's context; so a reporter that reads a
ContextVar sees the request that ran the statement. Only the statement text and its
duration are reported, never the bind values (they may hold secrets).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

QueryReporter = Callable[[float, str], None]
"""Called with (elapsed seconds, statement text) after each statement."""


def reporting_to(report: QueryReporter) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """An ``on_connect`` hook for ``fleetd.storage.postgres.connect`` that makes every new
    connection report its statements to ``report``."""

    def log_query(record: Any) -> None:
        report(record.elapsed, str(record.query))

    async def install(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(log_query)

    return install
