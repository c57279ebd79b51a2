"""Background roles that run a round every so often, one task per event loop.

A server process may run its app on several event loops (the control API does: see
control_api/resources.py), each with its own pool, so each loop's start-up starts its
own task for a role and its shutdown stops that task. Several tasks (loops, replicas)
may run one role at once: a role that must run once at a time takes a lock in its round
(the blob collector's advisory lock, the TUF writer lock).

A round that fails is reported and the next one runs on schedule: a background role
stops only when it is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended (nothing for None): every background
    task of the servers is stopped this way, so a stop never leaves one running."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class PeriodicRole:
    """``round()`` at once, then every ``interval`` seconds, on each loop that starts it."""

    def __init__(self, on_failure: Callable[[Exception], None]) -> None:
        """``on_failure`` reports a round's exception (the role logs it its own way)."""
        self._on_failure = on_failure
        self._tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def start(self, round_: Callable[[], Awaitable[object]], interval: float) -> None:
        """Start the running loop's task; nothing if this loop runs one already."""
        loop = asyncio.get_running_loop()
        if loop not in self._tasks:
            self._tasks[loop] = loop.create_task(self._run(round_, interval))

    async def stop(self) -> None:
        """Stop the running loop's task (cancelled mid-round if need be)."""
        await stop_task(self._tasks.pop(asyncio.get_running_loop(), None))

    async def _run(self, round_: Callable[[], Awaitable[object]], interval: float) -> None:
        while True:
            try:
                await round_()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep going; the next round may succeed
                self._on_failure(exc)
            await asyncio.sleep(interval)
