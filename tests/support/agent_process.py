"""The real agent (agent.main) as its own process, fetching artifacts through the
directory test double of the TUF client (tests/support/target_dir.py) instead of
agent.tuf_client. Everything else — enrolment, heartbeats, converge, outbox, logs — is the
agent as shipped.

Usage: python -m tests.support.agent_process --targets DIR --tuf-cache DIR -- AGENT_ARGS...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import AgentConfig
from agent.main import main
from agent.targets import TargetFetcher
from tests.support.target_dir import DirectoryFetcher


def run() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=Path, required=True)
    parser.add_argument("--tuf-cache", type=Path, required=True)
    parser.add_argument("agent_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    agent_args = args.agent_args[1:] if args.agent_args[:1] == ["--"] else args.agent_args

    def fetcher(config: AgentConfig) -> TargetFetcher:
        return DirectoryFetcher(args.targets, args.tuf_cache)

    return main(agent_args, fetcher_factory=fetcher)


if __name__ == "__main__":
    sys.exit(run())
