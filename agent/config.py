"""Agent configuration: flags, then ``FLEETD_*`` environment variables, then the config
file (``--config``, TOML), then defaults — the first that sets an option wins.

Every option is listed once in :data:`OPTIONS` (flag, variable, file key, help); README
("The agent") documents them. List options take a repeatable flag, a comma-separated
variable, or a TOML array.
"""

from __future__ import annotations

import argparse
import os
import socket
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.instructions import Policy

AGENT_VERSION = "0.1.0"
DEFAULT_DATA_DIR = "/var/lib/fleetd-agent"
DEFAULT_UNIT = "fleetd-agent.service"


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
    enrollment_token_file: Path | None = None
    """Wiped with the key material at offboarding."""
    tuf_url: str = ""
    """Base URL of the TUF repository (metadata and targets); empty: no updates."""
    tuf_root: Path | None = None
    """The pinned TUF root; default: the one handed out at enrolment."""
    container_runtime: str = "auto"
    allowed_dirs: tuple[Path, ...] = ()
    exec_probes: tuple[str, ...] = ()
    reload_commands: tuple[str, ...] = ()
    systemd_units: tuple[str, ...] = ()
    probe_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    probe_file_dirs: tuple[Path, ...] = ()
    log_unit: str = DEFAULT_UNIT
    """The agent's own systemd unit: the journal log requests read."""
    log_file: Path | None = None
    """The agent's own log file (written by the agent; read where there is no journal)."""

    @property
    def api_target(self) -> str:
        """host:port of the control API, as gRPC wants it."""
        parts = urlsplit(self.api_endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"--api-endpoint {self.api_endpoint!r}: expected https://HOST:PORT")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"{host}:{parts.port or 443}"

    @property
    def policy(self) -> Policy:
        """The allowlists every instruction is checked against."""
        return Policy(
            allowed_dirs=self.allowed_dirs,
            exec_probes=self.exec_probes,
            reload_commands=self.reload_commands,
            systemd_units=self.systemd_units,
            probe_hosts=self.probe_hosts,
            probe_file_dirs=self.probe_file_dirs,
        )

    @property
    def pinned_root(self) -> Path:
        return self.tuf_root or self.data_dir / "tuf-root.json"


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    """Field name and config-file key."""
    env: str
    help: str
    many: bool = False
    default: Any = ""

    @property
    def flag(self) -> str:
        return "--" + ("tag" if self.key == "tags" else self.key.replace("_", "-"))


OPTIONS = (
    Option("api_endpoint", "FLEETD_API_ENDPOINT", "control API for enrolment, https://HOST:PORT"),
    Option("gateway", "FLEETD_GATEWAY", "gateway HOST:PORT; default: the one given at enrolment"),
    Option("ca_cert", "FLEETD_CA_CERT", "fleet CA certificate to trust before enrolment"),
    Option(
        "data_dir", "FLEETD_AGENT_DATA_DIR", "where keys and state live", default=DEFAULT_DATA_DIR
    ),
    Option("device_id", "FLEETD_DEVICE_ID", "device id to enrol as (default: hostname)"),
    Option("device_type", "FLEETD_DEVICE_TYPE", "device type, e.g. raspberry-pi"),
    Option("tags", "FLEETD_AGENT_TAGS", "a tag", many=True),
    Option(
        "enrollment_token_file",
        "FLEETD_ENROLLMENT_TOKEN_FILE",
        "file holding the enrolment token (else FLEETD_ENROLLMENT_TOKEN)",
    ),
    Option("tuf_url", "FLEETD_TUF_URL", "TUF repository base URL (metadata and targets)"),
    Option("tuf_root", "FLEETD_TUF_ROOT", "pinned TUF root.json (default: the one from enrolment)"),
    Option(
        "container_runtime",
        "FLEETD_CONTAINER_RUNTIME",
        "auto, podman, docker, none, or an absolute path",
        default="auto",
    ),
    Option(
        "allowed_dirs",
        "FLEETD_ALLOWED_DIRS",
        "a directory artifacts may be installed under",
        many=True,
    ),
    Option(
        "exec_probes",
        "FLEETD_EXEC_PROBES",
        "an executable exec probes may run (absolute)",
        many=True,
    ),
    Option(
        "reload_commands",
        "FLEETD_RELOAD_COMMANDS",
        "an executable reload actions may run (absolute)",
        many=True,
    ),
    Option("systemd_units", "FLEETD_SYSTEMD_UNITS", "a unit reload actions may restart", many=True),
    Option(
        "probe_hosts",
        "FLEETD_PROBE_HOSTS",
        "a host http probes may GET (default: loopback)",
        many=True,
        default=("localhost", "127.0.0.1", "::1"),
    ),
    Option(
        "probe_file_dirs",
        "FLEETD_PROBE_FILE_DIRS",
        "a directory file probes may look into (besides allowed dirs)",
        many=True,
    ),
    Option(
        "log_unit",
        "FLEETD_LOG_UNIT",
        "the agent's own systemd unit, for log requests",
        default=DEFAULT_UNIT,
    ),
    Option(
        "log_file",
        "FLEETD_LOG_FILE",
        "the agent's own log file (written and, without a journal, uploaded)",
    ),
)

_PATHS = {"ca_cert", "data_dir", "enrollment_token_file", "tuf_root", "log_file"}
_PATH_LISTS = {"allowed_dirs", "probe_file_dirs"}
_ABSOLUTE = {"exec_probes", "reload_commands", "allowed_dirs", "probe_file_dirs", "log_file"}


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the option."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fleetd-agent",
        description="The fleetd device agent: enrols, heartbeats over mTLS, converges on "
        "TUF-verified artifacts, reports, uploads its own logs.",
    )
    p.add_argument("--config", help="TOML configuration file (FLEETD_AGENT_CONFIG)")
    for option in OPTIONS:
        extra = "; repeatable" if option.many else ""
        p.add_argument(
            option.flag,
            dest=option.key,
            action="append" if option.many else "store",
            default=None,
            help=f"{option.help}{extra} ({option.env}; file key {option.key})",
        )
    p.add_argument(
        "--once", action="store_true", help="register, send one heartbeat and exit (for checks)"
    )
    p.add_argument(
        "--unary-heartbeats",
        action="store_true",
        help="one call per heartbeat instead of the heartbeat stream",
    )
    return p


def _file_values(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None
    known = {o.key for o in OPTIONS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"--config {path}: unknown keys {', '.join(unknown)}")
    return data


def _resolve(option: Option, flags: Any, env: Mapping[str, str], file: dict[str, Any]) -> Any:
    value = getattr(flags, option.key)
    if value is None and env.get(option.env):
        raw = env[option.env]
        value = [v.strip() for v in raw.split(",") if v.strip()] if option.many else raw
    if value is None and option.key in file:
        value = file[option.key]
        if option.many and not isinstance(value, list):
            raise ConfigError(f"config key {option.key} must be a list")
        if not option.many and not isinstance(value, str):
            raise ConfigError(f"config key {option.key} must be a string")
    if value is None:
        value = option.default
    if option.many:
        values = tuple(str(v) for v in value)
        for v in values if option.key in _ABSOLUTE else ():
            if not os.path.isabs(v) or os.path.normpath(v) != v:
                raise ConfigError(f"{option.flag} {v!r}: an absolute, normalised path")
        return tuple(Path(v) for v in values) if option.key in _PATH_LISTS else values
    if option.key in _ABSOLUTE and value and not os.path.isabs(value):
        raise ConfigError(f"{option.flag} {value!r}: an absolute path")
    if option.key in _PATHS:
        return Path(value) if value else None
    return value


def load(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> AgentConfig:
    """The configuration from ``argv``, the environment and the config file."""
    env = os.environ if environ is None else environ
    args = parser().parse_args(list(argv))
    config_path = args.config or env.get("FLEETD_AGENT_CONFIG", "")
    file = _file_values(config_path) if config_path else {}
    values = {o.key: _resolve(o, args, env, file) for o in OPTIONS}
    values["device_id"] = values["device_id"] or socket.gethostname()
    token = env.get("FLEETD_ENROLLMENT_TOKEN", "")
    token_file: Path | None = values["enrollment_token_file"]
    if token_file is not None:
        token = token_file.read_text().strip()
    if values["container_runtime"] not in ("auto", "podman", "docker", "none") and not (
        os.path.isabs(values["container_runtime"])
    ):
        raise ConfigError("--container-runtime: auto, podman, docker, none or an absolute path")
    return AgentConfig(
        **values,
        enrollment_token=token,
        once=args.once,
        heartbeat_stream=not args.unary_heartbeats,
    )
