"""Waiting in tests for something that happens asynchronously (a flush, a notice)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable


async def until(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    """Poll ``check`` every 20 ms until it is true; AssertionError after ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
