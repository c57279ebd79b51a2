"""``fleetd-agent`` entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from agent.config import load
from agent.runner import run_agent


async def _main(argv: Sequence[str]) -> int:
    config = load(argv)
    task = asyncio.ensure_future(run_agent(config))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        return await task
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_main(sys.argv[1:] if argv is None else argv))


def run() -> None:
    sys.exit(main())
