"""Re-validation of every instruction the control plane sends, against the device's own
allowlists. Nothing here trusts the server: an assignment that names a destination
outside the allowlisted directories, an executable or unit not on the device's lists,
or probe bounds outside the documented ranges is refused with a reason, reported as
``failed``, and never acted on.

:func:`validate` is pure (no IO); :func:`resolve_destination` is the one filesystem
check (symlinks can only be seen on disk) and runs again right before staging.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from google.protobuf import duration_pb2

from fleetd.device.v1 import agent_pb2

NOT_ALLOWLISTED = "NOT_ALLOWLISTED"
INVALID_INSTRUCTION = "INVALID_INSTRUCTION"

MIN_TIMEOUT, MAX_TIMEOUT, DEFAULT_TIMEOUT = 1.0, 300.0, 10.0
MAX_ATTEMPTS, DEFAULT_ATTEMPTS = 10, 3
MAX_INITIAL_DELAY = 600.0
MAX_INTERVAL, DEFAULT_INTERVAL = 300.0, 5.0
MAX_ARGS, MAX_ARG_LEN = 32, 1024
MAX_URL = 2048
MAX_PATH = 1024
DEFAULT_MODE = 0o644

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,511}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:-]{0,254}$")


class Refused(Exception):
    """An instruction the device will not follow; ``reason`` is reported as is."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Policy:
    """The device's allowlists (from its own configuration, never from the server)."""

    allowed_dirs: tuple[Path, ...] = ()
    """Directories file, model and config artifacts may be installed under."""
    exec_probes: tuple[str, ...] = ()
    """Absolute paths of executables exec probes may run."""
    reload_commands: tuple[str, ...] = ()
    """Absolute paths of executables reload actions may run."""
    systemd_units: tuple[str, ...] = ()
    """Units a reload action may ``systemctl restart``."""
    probe_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    """Hosts http probes may GET (loopback by default: a probe is not a way to make the
    device reach into its network)."""
    probe_file_dirs: tuple[Path, ...] = ()
    """Directories besides ``allowed_dirs`` that file probes may look into."""
    max_artifact_bytes: int = 8 * 1024**3


class Kind(StrEnum):
    FILE = "file"
    MODEL = "model"
    CONFIG = "config"
    CONTAINER = "container"


KINDS = {
    agent_pb2.ARTIFACT_KIND_FILE: Kind.FILE,
    agent_pb2.ARTIFACT_KIND_MODEL: Kind.MODEL,
    agent_pb2.ARTIFACT_KIND_CONFIG: Kind.CONFIG,
    agent_pb2.ARTIFACT_KIND_CONTAINER: Kind.CONTAINER,
}


@dataclass(frozen=True, slots=True)
class Reload:
    """What to do after a file is swapped in (and again after it is restored)."""

    unit: str = ""
    command: tuple[str, ...] = ()
    """argv for RELOAD_ACTION_COMMAND; empty with no unit means no reload."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A validated probe; ``kind`` "none" means healthy once applied."""

    kind: str = "none"
    argv: tuple[str, ...] = ()
    url: str = ""
    path: str = ""
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    initial_delay: float = 0.0
    interval: float = DEFAULT_INTERVAL


@dataclass(frozen=True, slots=True)
class Instruction:
    """An assignment after validation: only what the device agreed to do."""

    kind: Kind
    destination: Path | None = None
    mode: int = DEFAULT_MODE
    reload: Reload = Reload()
    image: str = ""
    digest: str = ""
    container_name: str = ""
    probe: Probe = Probe()

    @property
    def reference(self) -> str:
        """The digest-pinned image reference a container runs."""
        return f"{self.image}@{self.digest}"


def clean_absolute(value: str, what: str) -> PurePosixPath:
    """``value`` as an absolute, normalised path, or Refused: no ``..``, no ``.``, no
    doubled slashes, no NUL, not too long."""
    if not value or len(value) > MAX_PATH or "\x00" in value:
        raise Refused(INVALID_INSTRUCTION, f"{what} must be an absolute path (1-{MAX_PATH} chars)")
    path = PurePosixPath(value)
    if not path.is_absolute() or ".." in path.parts or os.path.normpath(value) != value:
        raise Refused(
            NOT_ALLOWLISTED, f"{what} {value!r} is not a plain absolute path (no '..', '.', '//')"
        )
    return path


def _under(path: PurePosixPath, roots: tuple[Path, ...]) -> bool:
    return any(path != PurePosixPath(r) and path.is_relative_to(PurePosixPath(r)) for r in roots)


def _seconds(
    duration: duration_pb2.Duration, what: str, default: float, low: float, high: float
) -> float:
    if duration.ByteSize() == 0:
        return default
    seconds: float = duration.ToTimedelta().total_seconds()
    if not low <= seconds <= high:
        raise Refused(INVALID_INSTRUCTION, f"{what} must be between {low:g}s and {high:g}s")
    return seconds


def _argv(action: agent_pb2.ExecAction, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    path = str(clean_absolute(action.path, f"{what} path"))
    if path not in allowed:
        raise Refused(NOT_ALLOWLISTED, f"{what} {path!r} is not on this device's allowlist")
    if len(action.args) > MAX_ARGS:
        raise Refused(INVALID_INSTRUCTION, f"{what}: at most {MAX_ARGS} arguments")
    for arg in action.args:
        if len(arg) > MAX_ARG_LEN or "\x00" in arg:
            raise Refused(INVALID_INSTRUCTION, f"{what}: arguments up to {MAX_ARG_LEN} chars")
    return (path, *action.args)


def _probe(spec: agent_pb2.ArtifactAssignment, policy: Policy) -> Probe:
    if not spec.HasField("health_probe"):
        return Probe()
    p = spec.health_probe
    timeout = _seconds(p.timeout, "probe timeout", DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT)
    attempts = p.attempts or DEFAULT_ATTEMPTS
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise Refused(INVALID_INSTRUCTION, f"probe attempts must be 1 to {MAX_ATTEMPTS}")
    delay = _seconds(p.initial_delay, "probe initial_delay", 0.0, 0.0, MAX_INITIAL_DELAY)
    interval = _seconds(p.interval, "probe interval", DEFAULT_INTERVAL, 0.0, MAX_INTERVAL)

    def probe(kind: str, argv: tuple[str, ...] = (), url: str = "", path: str = "") -> Probe:
        return Probe(kind, argv, url, path, timeout, attempts, delay, interval)

    kind = p.WhichOneof("probe")
    if kind == "exec":
        argv = _argv(p.exec, policy.exec_probes, "exec probe")
        return probe("exec", argv=argv)
    if kind == "http":
        url = p.http.url
        parts = urlsplit(url)
        if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused(INVALID_INSTRUCTION, "http probe url must be http(s)://HOST[:PORT]/...")
        if parts.hostname not in policy.probe_hosts:
            raise Refused(
                NOT_ALLOWLISTED, f"http probe host {parts.hostname!r} is not on the allowlist"
            )
        return probe("http", url=url)
    if kind == "file":
        path = clean_absolute(p.file.path, "file probe")
        if not _under(path, policy.allowed_dirs + policy.probe_file_dirs):
            raise Refused(NOT_ALLOWLISTED, f"file probe {str(path)!r} is outside the allowlist")
        return probe("file", path=str(path))
    raise Refused(INVALID_INSTRUCTION, "health_probe names no exec, http or file probe")


def _reload(config: agent_pb2.ConfigSpec, policy: Policy) -> Reload:
    action = config.reload_action
    if action in (agent_pb2.RELOAD_ACTION_UNSPECIFIED, agent_pb2.RELOAD_ACTION_NONE):
        return Reload()
    if action == agent_pb2.RELOAD_ACTION_SYSTEMD_RESTART:
        unit = config.systemd_unit
        if not _UNIT.match(unit):
            raise Refused(INVALID_INSTRUCTION, f"systemd_unit {unit[:64]!r} is not a unit name")
        if unit not in policy.systemd_units:
            raise Refused(NOT_ALLOWLISTED, f"systemd unit {unit!r} is not on the allowlist")
        return Reload(unit=unit)
    if action == agent_pb2.RELOAD_ACTION_COMMAND:
        return Reload(command=_argv(config.reload_command, policy.reload_commands, "reload"))
    raise Refused(INVALID_INSTRUCTION, f"unknown reload action {action}")


def validate(spec: agent_pb2.ArtifactAssignment, policy: Policy) -> Instruction:
    """The instruction the device agrees to carry out, or :class:`Refused`."""
    kind = KINDS.get(spec.kind)
    if kind is None:
        raise Refused(INVALID_INSTRUCTION, f"unsupported artifact kind {spec.kind}")
    if not _SHA256.match(spec.sha256):
        raise Refused(INVALID_INSTRUCTION, "sha256 must be 64 lowercase hex digits")
    if not 0 <= spec.length <= policy.max_artifact_bytes:
        raise Refused(INVALID_INSTRUCTION, f"length must be 0 to {policy.max_artifact_bytes} bytes")
    if not spec.target_path or len(spec.target_path) > MAX_PATH:
        raise Refused(INVALID_INSTRUCTION, "target_path is required")
    probe = _probe(spec, policy)
    if kind is Kind.CONTAINER:
        c = spec.container
        if not _IMAGE.match(c.image):
            raise Refused(INVALID_INSTRUCTION, "container image must be a plain reference")
        if not _DIGEST.match(c.digest):
            raise Refused(INVALID_INSTRUCTION, "container digest must be sha256:<64 hex>")
        if not _CONTAINER_NAME.match(c.container_name):
            raise Refused(INVALID_INSTRUCTION, "container_name: letters, digits, _ . -")
        return Instruction(
            kind, image=c.image, digest=c.digest, container_name=c.container_name, probe=probe
        )
    destination = clean_absolute(spec.config.destination_path, "destination_path")
    if not _under(destination, policy.allowed_dirs):
        raise Refused(
            NOT_ALLOWLISTED,
            f"destination {str(destination)!r} is not under an allowlisted directory",
        )
    mode = spec.config.file_mode or DEFAULT_MODE
    if mode & ~0o777:
        raise Refused(INVALID_INSTRUCTION, "file_mode may set permission bits only (no setuid)")
    return Instruction(
        kind,
        destination=Path(destination),
        mode=mode,
        reload=_reload(spec.config, policy),
        probe=probe,
    )


def resolve_destination(destination: Path, policy: Policy) -> None:
    """Refuse a destination that escapes its allowlisted directory through a symlink
    (in any parent) or is itself a symlink or not a regular file."""
    parent = Path(os.path.realpath(destination.parent))
    roots = tuple(Path(os.path.realpath(r)) for r in policy.allowed_dirs)
    if not any(parent == r or parent.is_relative_to(r) for r in roots):
        raise Refused(
            NOT_ALLOWLISTED, f"{destination} resolves outside the allowlisted directories"
        )
    if not parent.is_dir():
        raise Refused(INVALID_INSTRUCTION, f"{destination.parent} does not exist")
    try:
        st = os.lstat(destination)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise Refused(NOT_ALLOWLISTED, f"{destination} exists and is not a regular file")
