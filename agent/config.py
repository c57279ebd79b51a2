"""Agent configuration: flags, then ``FLEETD_*`` environment variables, then defaults."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

AGENT_VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    api_endpoint: str
    gateway: str
    ca_cert: Path | None
    data_dir: Path
    device_id: str
    device_type: str
    tags: tuple[str, ...]
    enrollment_token: str
    once: bool
    heartbeat_stream: bool = True
    """Prefer the HeartbeatStream (falls back to unary Heartbeat on UNIMPLEMENTED)."""

    @property
    def api_target(self) -> str:
        """host:port of the control API, as gRPC wants it."""
        parts = urlsplit(self.api_endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"--api-endpoint {self.api_endpoint!r}: expected https://HOST:PORT")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"{host}:{parts.port or 443}"


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="fleetd-agent",
        description="The fleetd device agent: enrols, registers and heartbeats over mTLS.",
    )
    p.add_argument(
        "--api-endpoint",
        default=env("FLEETD_API_ENDPOINT", ""),
        help="control API for enrolment, https://HOST:PORT (FLEETD_API_ENDPOINT)",
    )
    p.add_argument(
        "--gateway",
        default=env("FLEETD_GATEWAY", ""),
        help="gateway HOST:PORT; default: the one given at enrolment (FLEETD_GATEWAY)",
    )
    p.add_argument(
        "--ca-cert",
        default=env("FLEETD_CA_CERT", ""),
        help="fleet CA certificate to trust before enrolment (FLEETD_CA_CERT)",
    )
    p.add_argument(
        "--data-dir",
        default=env("FLEETD_AGENT_DATA_DIR", "/var/lib/fleetd-agent"),
        help="where keys and state live (FLEETD_AGENT_DATA_DIR)",
    )
    p.add_argument(
        "--device-id",
        default=env("FLEETD_DEVICE_ID", socket.gethostname()),
        help="device id to enrol as (FLEETD_DEVICE_ID; default: hostname)",
    )
    p.add_argument(
        "--device-type",
        default=env("FLEETD_DEVICE_TYPE", ""),
        help="device type, e.g. raspberry-pi (FLEETD_DEVICE_TYPE)",
    )
    p.add_argument(
        "--tag",
        action="append",
        dest="tags",
        default=None,
        help="a tag; repeatable (FLEETD_AGENT_TAGS, comma-separated)",
    )
    p.add_argument(
        "--enrollment-token-file",
        default="",
        help="file holding the enrolment token (else FLEETD_ENROLLMENT_TOKEN)",
    )
    p.add_argument(
        "--once", action="store_true", help="register, send one heartbeat and exit (for checks)"
    )
    p.add_argument(
        "--unary-heartbeats",
        action="store_true",
        help="one call per heartbeat instead of the heartbeat stream",
    )
    return p  # fmt: skip


def load(argv: Sequence[str]) -> AgentConfig:
    args = parser().parse_args(list(argv))
    tags = args.tags
    if tags is None:
        tags = [t for t in os.environ.get("FLEETD_AGENT_TAGS", "").split(",") if t]
    token = os.environ.get("FLEETD_ENROLLMENT_TOKEN", "")
    if args.enrollment_token_file:
        token = Path(args.enrollment_token_file).read_text().strip()
    return AgentConfig(
        api_endpoint=args.api_endpoint,
        gateway=args.gateway,
        ca_cert=Path(args.ca_cert) if args.ca_cert else None,
        data_dir=Path(args.data_dir),
        device_id=args.device_id,
        device_type=args.device_type,
        tags=tuple(tags),
        enrollment_token=token,
        once=args.once,
        heartbeat_stream=not args.unary_heartbeats,
    )
