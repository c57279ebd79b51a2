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
from agent.credentials import CA_FILE, CERT_FILE, KEY_FILE
from agent.logs import LOG_TIME_FORMAT
from agent.runner import run_agent
from agent.targets import TargetFetcher
from agent.tuf_client import TufClient

FetcherFactory = Callable[[AgentConfig], TargetFetcher | None]


def tuf_fetcher(config: AgentConfig) -> TargetFetcher | None:
    """The agent's TUF client: the repository at ``--tuf-url`` (default: the control
    API's ``/tuf``), trusting the fleet CA, presenting the device's certificate and key
    (the control API serves a device only the targets assigned to it), anchored in the
    pinned root. The root, the CA and the certificate are read when a target is fetched,
    so they may arrive with enrolment (and the certificate change with a renewal). None
    (every assignment then fails with NO_ARTIFACT_SOURCE) without a repository URL."""
    base = config.tuf_url or (f"{config.api_endpoint}/tuf" if config.api_endpoint else "")
    if not base:
        return None
    base = base.rstrip("/")
    return TufClient(
        metadata_dir=config.data_dir / "tuf" / "metadata",
        targets_dir=config.data_dir / "tuf" / "targets",
        metadata_url=f"{base}/metadata/",
        targets_url=f"{base}/targets/",
        ca_file=config.ca_cert or config.data_dir / CA_FILE,
        pinned_root=config.pinned_root,
        client_cert=config.data_dir / CERT_FILE,
        client_key=config.data_dir / KEY_FILE,
    )


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


def main(argv: Sequence[str] | None = None, fetcher_factory: FetcherFactory = tuf_fetcher) -> int:
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
