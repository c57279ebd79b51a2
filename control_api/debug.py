"""``X-Debug: true`` (admins only): the request's timeline, the SQL it ran and timings.

The trace travels in a ContextVar; every pooled connection of the control API reports its
statements to :func:`record_query` (fleetd/storage/query_log.py), which appends them to
it. The result is returned as one compact JSON response header, ``x-debug``:
``{"request_id", "total_ms", "timeline": [[ms, event]...], "sql": [{"ms", "query"}...],
"error"}``. Bind values are never included (they may hold secrets); statements are cut to
500 characters, at most 50 of them.
"""

from __future__ import annotations

import contextvars
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_QUERIES = 50
MAX_QUERY_CHARS = 500


@dataclass
class DebugTrace:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    def mark(self, event: str) -> None:
        self.timeline.append((round((time.perf_counter() - self.started) * 1000, 3), event))

    def header(self) -> str:
        return orjson.dumps(
            {
                "request_id": self.request_id,
                "total_ms": round((time.perf_counter() - self.started) * 1000, 3),
                "timeline": self.timeline,
                "sql": self.queries,
                "error": self.error,
            }
        ).decode()

    def record_error(self, error: BaseException) -> None:
        self.error = "".join(traceback.format_exception(error))[-4000:]


trace_var: contextvars.ContextVar[DebugTrace | None] = contextvars.ContextVar(
    "debug_trace", default=None
)


def mark(event: str) -> None:
    """Add an event to the current request's timeline, if it is being debugged."""
    trace = trace_var.get()
    if trace is not None:
        trace.mark(event)


def record_query(elapsed: float, query: str) -> None:
    """Add a statement that took ``elapsed`` seconds to the current request's trace, if it
    is being debugged (a ``fleetd.storage.query_log.QueryReporter``)."""
    # Runs via loop.call_soon in the querying task's context, so the var is visible.
    trace = trace_var.get()
    if trace is not None and len(trace.queries) < MAX_QUERIES:
        trace.queries.append({"ms": round(elapsed * 1000, 3), "query": query[:MAX_QUERY_CHARS]})
