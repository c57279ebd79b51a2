"""``fleetd-agent`` entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence

from agent.config import AgentConfig, ConfigError, load
from agent.logs import LOG_TIME_FORMAT
from agent.runner import run_agent
from agent.targets import TargetFetcher

FetcherFactory = Callable[[AgentConfig], TargetFetcher | None]


def no_fetcher(config: AgentConfig) -> TargetFetcher | None:
    """Until the TUF client is wired in here, assignments fail with NO_ARTIFACT_SOURCE."""
    return None


async def _main(config: AgentConfig, fetcher: TargetFetcher | None) -> int:
    task = asyncio.ensure_future(run_agent(config, fetcher))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        return await task
    return 0


def _log_to_file(config: AgentConfig) -> None:
    """The agent's own log file (UTC-stamped lines, so log requests can cut ranges)."""
    if config.log_file is None:
        return
    handler = logging.FileHandler(config.log_file)
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt=LOG_TIME_FORMAT
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.getLogger().addHandler(handler)


def main(argv: Sequence[str] | None = None, fetcher_factory: FetcherFactory = no_fetcher) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load(sys.argv[1:] if argv is None else argv)
    except (ConfigError, OSError) as exc:
        sys.stderr.write(f"fleetd-agent: {exc}\n")
        return 2
    _log_to_file(config)
    return asyncio.run(_main(config, fetcher_factory(config)))


def run() -> None:
    sys.exit(main())
