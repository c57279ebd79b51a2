"""``fleetd-agent-tuf``: the agent's TUF client as the tuf-conformance suite's client CLI.

Same ngclient configuration (``agent.tuf_client.updater_config``: metadata size caps,
rotation and delegation limits), same fetcher (``agent.tuf_fetcher.AgentFetcher``) and
same verified download into the target directory as the agent, so the public
conformance suite exercises what devices run. Options come before the command::

    fleetd-agent-tuf --metadata-dir DIR init ROOT_FILE
    fleetd-agent-tuf --metadata-dir DIR --metadata-url URL refresh
    fleetd-agent-tuf --metadata-dir DIR --metadata-url URL --target-name PATH \\
        --target-base-url URL --target-dir DIR download

``init`` trusts the given root as is (it is copied to ``DIR/root.json``; no network, no
checks: the next refresh verifies it). ``refresh`` and ``download`` trust the
``root.json`` in DIR. Trusted metadata is kept in DIR under unversioned names
(``root.json`` -- a link to ngclient's ``root_history/<version>.root.json`` --,
``timestamp.json``, ``snapshot.json``, ``targets.json``, one file per delegated role).
``download`` refreshes first, skips the download when the file is already there with the
signed hashes, and always stores a target path under the same file name. HTTP and HTTPS
URLs are accepted; ``--ca-file`` restricts HTTPS to one CA (the agent passes the fleet CA).
``--client-cert`` and ``--client-key`` (both or neither) present a client certificate on
every HTTPS request, as the agent presents its device certificate: fleetd serves its
metadata and targets only to its devices (a device gets the targets assigned to it) and
operators. Without them nothing is presented, which is what a plain repository (the
tuf-conformance suite's) expects. Exit status: 0 on success, 1 on any failure (the reason
on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from agent.durable import write_atomic
from agent.tuf_client import (
    consistent_snapshot,
    download_verified,
    find_verified,
    open_updater,
    target_url,
)
from agent.tuf_fetcher import AgentFetcher

PROG = "fleetd-agent-tuf"


class _Failure(Exception):
    """A failure with a message for stderr (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 1 on usage errors (the CLI contract: 1 on any failure)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="The fleetd agent's TUF client (tuf-conformance CLI).")
    p.add_argument("--metadata-dir", type=Path, required=True, help="trusted metadata")
    p.add_argument("--metadata-url", help="base URL of the repository's metadata")
    p.add_argument("--target-name", help="TUF target path to download")
    p.add_argument("--target-base-url", help="base URL of the repository's targets")
    p.add_argument("--target-dir", type=Path, help="where verified targets are stored")
    p.add_argument("--ca-file", type=Path, help="trust only this CA for HTTPS")
    p.add_argument(
        "--client-cert", type=Path, help="present this certificate over HTTPS (PEM; a device's)"
    )
    p.add_argument("--client-key", type=Path, help="the key of --client-cert (PEM)")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = commands.add_parser("init", help="trust ROOT_FILE (no network)")
    init.add_argument("root_file", type=Path, metavar="ROOT_FILE")
    commands.add_parser("refresh", help="update the trusted metadata")
    commands.add_parser("download", help="refresh, then download and verify a target")
    return p


def _required(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise _Failure(f"{args.command} needs {', '.join(missing)}")


def init(metadata_dir: Path, root_file: Path) -> None:
    """Trust ``root_file``: copy it to ``metadata_dir/root.json`` (atomically)."""
    data = root_file.read_bytes()
    metadata_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(metadata_dir / "root.json", data, 0o644)


def refresh(metadata_dir: Path, metadata_url: str, fetcher: AgentFetcher) -> None:
    """Update the top-level metadata in ``metadata_dir`` from its trusted root."""
    open_updater(metadata_dir, metadata_url, fetcher, bootstrap=None).refresh()


def download(
    metadata_dir: Path,
    metadata_url: str,
    target_name: str,
    target_base_url: str,
    target_dir: Path,
    fetcher: AgentFetcher,
) -> Path:
    """Refresh, resolve ``target_name``, and download it unless already there verified."""
    updater = open_updater(metadata_dir, metadata_url, fetcher, bootstrap=None)
    updater.refresh()
    info = updater.get_targetinfo(target_name)
    if info is None:
        raise _Failure(f"{target_name}: no trusted role lists this target")
    cached = find_verified(target_dir, info)
    if cached is not None:
        return cached
    url = target_url(target_base_url, info, consistent_snapshot(metadata_dir))
    return download_verified(fetcher, info, url, target_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "init":
            init(args.metadata_dir, args.root_file)
            return 0
        _required(args, "metadata_url")
        if (args.client_cert is None) != (args.client_key is None):
            raise _Failure("--client-cert and --client-key go together")
        fetcher = AgentFetcher(
            args.ca_file, client_cert=args.client_cert, client_key=args.client_key
        )
        if args.command == "refresh":
            refresh(args.metadata_dir, args.metadata_url, fetcher)
            return 0
        _required(args, "target_name", "target_base_url", "target_dir")
        download(
            args.metadata_dir,
            args.metadata_url,
            args.target_name,
            args.target_base_url,
            args.target_dir,
            fetcher,
        )
    except Exception as e:  # the contract: exit 1 and a reason, never a traceback
        sys.stderr.write(f"{PROG}: {args.command} failed: {type(e).__name__}: {e}\n")
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
