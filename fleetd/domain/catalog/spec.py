"""CreateUpdateRequest -> UpdatePlan: every check CreateUpdate makes before any IO.

Pure: no database, no network. ``validate`` either returns the plan (defaults applied, so
what is stored and returned is explicit: kind, name, version, file mode, reload action,
probe timeout/attempts/delays) or raises ``InvalidSpec`` whose message names the field,
e.g. ``artifacts[1].health_probe.timeout must be between 1s and 300s``.

Where the content comes from is one of three ``Source`` kinds: an uploaded binary, a URL
the server fetches once, or (CONTAINER) an image reference pinned by digest, which the
server turns into a small JSON document so the pin itself is a signed TUF target.
"""

from __future__ import annotations

import datetime as dt
import math
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from google.protobuf import duration_pb2

from fleetd.domain import network_policy
from fleetd.domain.catalog import image_ref
from fleetd.v1 import update_pb2

MAX_ARTIFACTS = 64
MAX_NAME = 128
MAX_DESCRIPTION = 4096
MAX_METADATA = 64
MAX_URL = 2048
MAX_PATH = 1024
MAX_ARGS = 32
MAX_ARG = 1024
MAX_ARTIFACT_BYTES = 8 << 30
"""Largest artifact fetched from a URL (8 GiB)."""
MAX_PARALLEL = 1_000_000
MAX_VALIDATION = dt.timedelta(days=7)

DEFAULT_FILE_MODE = 0o644
DEFAULT_TIMEOUT = dt.timedelta(seconds=10)
DEFAULT_ATTEMPTS = 3
DEFAULT_INTERVAL = dt.timedelta(seconds=5)
TIMEOUT_RANGE = (dt.timedelta(seconds=1), dt.timedelta(seconds=300))
ATTEMPTS_RANGE = (1, 10)
INITIAL_DELAY_RANGE = (dt.timedelta(0), dt.timedelta(seconds=3600))
INTERVAL_RANGE = (dt.timedelta(0), dt.timedelta(seconds=600))

RESERVED_PLATFORM = "any"
"""Used in target paths for artifacts of every platform, so no platform may be named so."""

VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PLATFORM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CHECKSUM = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
BINARY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SYSTEMD_UNIT = re.compile(
    r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?"
    r"\.(service|socket|target|timer|path|mount|automount|swap|slice)$"
)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

KIND_NAMES: dict[int, str] = {
    update_pb2.Artifact.FILE: "file",
    update_pb2.Artifact.MODEL: "model",
    update_pb2.Artifact.CONFIG: "config",
    update_pb2.Artifact.CONTAINER: "container",
}


class InvalidSpec(ValueError):
    """The request is not a valid update; the message names the field and the rule."""


@dataclass(frozen=True, slots=True)
class FromBinary:
    """Content of an uploaded binary; ``sha256``/``size`` are what the request declared
    (None when it did not), to be checked against the binary."""

    binary_id: str
    sha256: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class FromUrl:
    """Content the server fetches once from ``url`` and must hash to ``sha256``."""

    url: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class FromImage:
    """A container image; ``digest`` is None until resolved against its registry."""

    reference: image_ref.ImageReference
    digest: str | None


Source = FromBinary | FromUrl | FromImage


@dataclass(frozen=True, slots=True)
class ArtifactPlan:
    """One validated artifact. ``spec`` is the fleetd.v1.Artifact with defaults applied;
    content fields (checksum, size, container digest), id and target path are filled in
    once the content is resolved."""

    index: int
    name: str
    platform: str
    kind: str
    version: str
    source: Source
    spec: update_pb2.Artifact

    @property
    def field(self) -> str:
        return f"artifacts[{self.index}]"


@dataclass(frozen=True, slots=True)
class UpdatePlan:
    name: str
    version: str
    description: str
    metadata: dict[str, str]
    strategy: update_pb2.UpdateStrategy
    artifacts: tuple[ArtifactPlan, ...]


def default_artifact_name(update_name: str) -> str:
    """The update name as an artifact name: runs of other characters than letters,
    digits, ``. _ -`` become ``-`` ("Firmware Update v2.0" -> "Firmware-Update-v2.0")."""
    slug = _UNSAFE_NAME_CHARS.sub("-", update_name).lstrip("._-")
    return slug[:MAX_NAME].rstrip("-") or ""


def validate(request: update_pb2.CreateUpdateRequest) -> UpdatePlan:
    """The plan for ``request``; raises InvalidSpec at the first violation."""
    name = request.name
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable() or name != name.strip():
        raise InvalidSpec(
            f"name must be 1 to {MAX_NAME} printable characters without leading or trailing spaces"
        )
    if not VERSION.match(request.version):
        raise InvalidSpec(
            "version must be 1 to 64 characters of letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit (e.g. 2.0.0)"
        )
    if len(request.description) > MAX_DESCRIPTION:
        raise InvalidSpec(f"description is longer than {MAX_DESCRIPTION} characters")
    if len(request.metadata) > MAX_METADATA:
        raise InvalidSpec(f"metadata holds more than {MAX_METADATA} entries")
    for key, value in request.metadata.items():
        if not METADATA_KEY.match(key) or len(value) > 256:
            raise InvalidSpec(
                f"metadata[{key[:64]!r}]: keys are 1-64 of [A-Za-z0-9_.-], values at most 256"
            )
    strategy = _strategy(request.strategy) if request.HasField("strategy") else None
    if not 1 <= len(request.artifacts) <= MAX_ARTIFACTS:
        raise InvalidSpec(f"artifacts: an update has 1 to {MAX_ARTIFACTS} artifacts")
    plans: list[ArtifactPlan] = []
    seen: dict[tuple[str, str], int] = {}
    for index, artifact in enumerate(request.artifacts):
        plan = _artifact(index, artifact, name, request.version)
        identity = (plan.name, plan.platform)
        if identity in seen:
            raise InvalidSpec(
                f"{plan.field}.name: artifact {plan.name!r} for platform "
                f"{plan.platform or '(all)'} is already artifacts[{seen[identity]}]"
            )
        seen[identity] = index
        plans.append(plan)
    return UpdatePlan(
        name=name,
        version=request.version,
        description=request.description,
        metadata=dict(request.metadata),
        strategy=strategy or update_pb2.UpdateStrategy(),
        artifacts=tuple(plans),
    )


def _strategy(strategy: update_pb2.UpdateStrategy) -> update_pb2.UpdateStrategy:
    if strategy.type not in update_pb2.RolloutStrategy.values():
        raise InvalidSpec(f"strategy.type {strategy.type} is not a known rollout strategy")
    if not 0 <= strategy.max_parallel <= MAX_PARALLEL:
        raise InvalidSpec(f"strategy.max_parallel must be between 0 and {MAX_PARALLEL}")
    for field in ("max_failure_percentage", "canary_percentage"):
        value = getattr(strategy, field)
        if not math.isfinite(value) or not 0 <= value <= 100:
            raise InvalidSpec(f"strategy.{field} must be between 0 and 100")
    if strategy.HasField("validation_duration"):
        _duration(
            strategy.validation_duration,
            "strategy.validation_duration",
            (dt.timedelta(0), MAX_VALIDATION),
        )
    out = update_pb2.UpdateStrategy()
    out.CopyFrom(strategy)
    return out


def _duration(
    value: duration_pb2.Duration, field: str, bounds: tuple[dt.timedelta, dt.timedelta]
) -> dt.timedelta:
    low, high = bounds
    if not -999_999_999 <= value.nanos <= 999_999_999 or (value.seconds * value.nanos < 0):
        raise InvalidSpec(f"{field} is not a valid duration")
    duration = value.ToTimedelta()
    if not low <= duration <= high:
        raise InvalidSpec(f"{field} must be between {_human(low)} and {_human(high)}")
    return duration


def _human(value: dt.timedelta) -> str:
    return f"{value.total_seconds():g}s"


def _artifact(
    index: int, artifact: update_pb2.Artifact, update_name: str, update_version: str
) -> ArtifactPlan:
    field = f"artifacts[{index}]"
    spec = update_pb2.Artifact()
    spec.CopyFrom(artifact)
    if artifact.id or artifact.tuf_target_path:
        raise InvalidSpec(f"{field}: id and tuf_target_path are output only; leave them empty")
    platform = artifact.platform
    if platform and (not PLATFORM.match(platform) or platform == RESERVED_PLATFORM):
        raise InvalidSpec(
            f"{field}.platform must be a device type (1-64 of letters, digits, . _ -, not "
            f"{RESERVED_PLATFORM!r}), or empty for every device type"
        )
    name = artifact.name or default_artifact_name(update_name)
    if not ARTIFACT_NAME.match(name):
        hint = "" if artifact.name else f" (the default, from the update name, is {name!r})"
        raise InvalidSpec(
            f"{field}.name must be 1 to 128 of letters, digits, '.', '_' or '-', starting "
            f"with a letter or digit{hint}"
        )
    version = artifact.version or update_version
    if not VERSION.match(version):
        raise InvalidSpec(f"{field}.version must be 1 to 64 of letters, digits, . _ + -")
    kind_value = artifact.kind
    if kind_value == update_pb2.Artifact.KIND_UNSPECIFIED:
        container = artifact.HasField("container")
        kind_value = update_pb2.Artifact.CONTAINER if container else update_pb2.Artifact.FILE
    if kind_value not in KIND_NAMES:
        raise InvalidSpec(f"{field}.kind {artifact.kind} is not FILE, MODEL, CONFIG or CONTAINER")
    kind = KIND_NAMES[kind_value]
    spec.name, spec.version, spec.kind = name, version, kind_value
    if kind == "container":
        source: Source = _container(field, artifact, spec, name)
    else:
        source = _content(field, artifact)
        if artifact.HasField("container"):
            raise InvalidSpec(f"{field}.container is only for CONTAINER artifacts")
        if kind == "config" and not artifact.config.destination_path:
            raise InvalidSpec(f"{field}.config.destination_path is required for CONFIG")
        if artifact.HasField("config"):
            _config(f"{field}.config", spec.config)
    if artifact.HasField("health_probe"):
        _probe(f"{field}.health_probe", spec.health_probe)
    return ArtifactPlan(index, name, platform, kind, version, source, spec)


def _checksum(field: str, checksum: str) -> str:
    match = CHECKSUM.match(checksum)
    if match is None:
        raise InvalidSpec(f"{field}.checksum must be sha256:<64 hex digits>")
    return match[1].lower()


def _content(field: str, artifact: update_pb2.Artifact) -> FromBinary | FromUrl:
    if artifact.binary_id and artifact.url:
        raise InvalidSpec(f"{field}: give binary_id or url, not both")
    if artifact.size_bytes < 0:
        raise InvalidSpec(f"{field}.size_bytes must not be negative")
    if artifact.binary_id:
        if not BINARY_ID.match(artifact.binary_id):
            raise InvalidSpec(f"{field}.binary_id is not a binary id")
        sha = _checksum(field, artifact.checksum) if artifact.checksum else None
        return FromBinary(artifact.binary_id, sha, artifact.size_bytes or None)
    if not artifact.url:
        raise InvalidSpec(f"{field}: give the content, by binary_id or by url")
    _http_url(f"{field}.url", artifact.url)
    try:  # the server fetches it: read as the outbound guard will (fleetd.services.outbound)
        network_policy.parse_url(artifact.url)
    except network_policy.InvalidUrl as exc:
        raise InvalidSpec(f"{field}.url is not a URL the server fetches: {exc}") from None
    if not artifact.checksum:
        raise InvalidSpec(f"{field}.checksum is required with url (sha256:<64 hex digits>)")
    sha = _checksum(field, artifact.checksum)
    if not 1 <= artifact.size_bytes <= MAX_ARTIFACT_BYTES:
        raise InvalidSpec(
            f"{field}.size_bytes is required with url: the exact length, 1 to "
            f"{MAX_ARTIFACT_BYTES} bytes"
        )
    return FromUrl(artifact.url, sha, artifact.size_bytes)


def _http_url(field: str, url: str) -> None:
    if len(url) > MAX_URL:
        raise InvalidSpec(f"{field} is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a malformed port raises
    except ValueError:
        raise InvalidSpec(f"{field} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidSpec(f"{field} must be an http:// or https:// URL with a host")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidSpec(f"{field} must not contain spaces or control characters")


def _container(
    field: str, artifact: update_pb2.Artifact, spec: update_pb2.Artifact, name: str
) -> FromImage:
    if artifact.binary_id or artifact.url or artifact.checksum or artifact.size_bytes:
        raise InvalidSpec(
            f"{field}: a CONTAINER artifact has no binary_id, url, checksum or size_bytes "
            "(its content is the digest-pinned image reference)"
        )
    if artifact.HasField("config"):
        raise InvalidSpec(f"{field}.config is not for CONTAINER artifacts")
    container = artifact.container
    if not container.image:
        raise InvalidSpec(f"{field}.container.image is required for CONTAINER")
    try:
        reference = image_ref.parse(container.image)
    except image_ref.InvalidReference as exc:
        raise InvalidSpec(f"{field}.container.image: {exc}") from None
    digest = container.digest or reference.digest or None
    if container.digest:
        if not image_ref.DIGEST.match(container.digest):
            raise InvalidSpec(f"{field}.container.digest must be sha256:<64 lowercase hex>")
        if reference.digest and reference.digest != container.digest:
            raise InvalidSpec(f"{field}.container.digest differs from the image's @digest")
    spec.container.container_name = container.container_name or name
    if not CONTAINER_NAME.match(spec.container.container_name):
        raise InvalidSpec(
            f"{field}.container.container_name must be 1 to 128 of letters, digits, _ . -"
        )
    return FromImage(reference, digest)


def _absolute_path(field: str, path: str) -> None:
    if not path.startswith("/") or len(path) > MAX_PATH:
        raise InvalidSpec(f"{field} must be an absolute path of at most {MAX_PATH} characters")
    if "\x00" in path or not path.isprintable():
        raise InvalidSpec(f"{field} must not contain control characters")
    if ".." in path.split("/") or posixpath.normpath(path) != path or path == "/":
        raise InvalidSpec(
            f"{field} must be a normalised file path (no '..', '.', '//' or trailing '/')"
        )


def _exec(field: str, action: update_pb2.ExecAction) -> None:
    _absolute_path(f"{field}.path", action.path)
    if len(action.args) > MAX_ARGS:
        raise InvalidSpec(f"{field}.args: at most {MAX_ARGS} arguments")
    for i, arg in enumerate(action.args):
        if len(arg) > MAX_ARG or "\x00" in arg:
            raise InvalidSpec(f"{field}.args[{i}]: at most {MAX_ARG} characters, no NUL")


def _config(field: str, config: update_pb2.ConfigSpec) -> None:
    """Check ``config`` and apply its defaults in place."""
    if config.destination_path:
        _absolute_path(f"{field}.destination_path", config.destination_path)
    if config.file_mode > 0o7777:
        raise InvalidSpec(f"{field}.file_mode must be at most 0o7777 (4095)")
    config.file_mode = config.file_mode or DEFAULT_FILE_MODE
    action = config.reload_action
    if action == update_pb2.ConfigSpec.RELOAD_ACTION_UNSPECIFIED:
        action = config.reload_action = update_pb2.ConfigSpec.NONE
    if action == update_pb2.ConfigSpec.NONE:
        if config.systemd_unit or config.HasField("reload_command"):
            raise InvalidSpec(
                f"{field}: systemd_unit and reload_command need reload_action "
                "SYSTEMD_RESTART or COMMAND"
            )
    elif action == update_pb2.ConfigSpec.SYSTEMD_RESTART:
        if config.HasField("reload_command"):
            raise InvalidSpec(f"{field}.reload_command is for reload_action COMMAND")
        if len(config.systemd_unit) > 256 or not SYSTEMD_UNIT.match(config.systemd_unit):
            raise InvalidSpec(
                f"{field}.systemd_unit must be a systemd unit name such as detector.service"
            )
    elif action == update_pb2.ConfigSpec.COMMAND:
        if config.systemd_unit:
            raise InvalidSpec(f"{field}.systemd_unit is for reload_action SYSTEMD_RESTART")
        if not config.HasField("reload_command"):
            raise InvalidSpec(f"{field}.reload_command is required for reload_action COMMAND")
        _exec(f"{field}.reload_command", config.reload_command)
    else:
        raise InvalidSpec(f"{field}.reload_action {action} is not NONE, SYSTEMD_RESTART or COMMAND")


def _probe(field: str, probe: update_pb2.HealthProbe) -> None:
    """Check ``probe`` and apply its defaults in place."""
    which = probe.WhichOneof("probe")
    if which is None:
        raise InvalidSpec(f"{field} needs exactly one of exec, http or file")
    if which == "exec":
        _exec(f"{field}.exec", probe.exec)
    elif which == "http":
        _http_url(f"{field}.http.url", probe.http.url)
    else:
        _absolute_path(f"{field}.file.path", probe.file.path)
    if probe.HasField("timeout"):
        _duration(probe.timeout, f"{field}.timeout", TIMEOUT_RANGE)
    else:
        probe.timeout.FromTimedelta(DEFAULT_TIMEOUT)
    low, high = ATTEMPTS_RANGE
    if probe.attempts == 0:
        probe.attempts = DEFAULT_ATTEMPTS
    elif not low <= probe.attempts <= high:
        raise InvalidSpec(f"{field}.attempts must be between {low} and {high} (0 means 3)")
    if probe.HasField("initial_delay"):
        _duration(probe.initial_delay, f"{field}.initial_delay", INITIAL_DELAY_RANGE)
    else:
        probe.initial_delay.FromTimedelta(dt.timedelta(0))
    if probe.HasField("interval"):
        _duration(probe.interval, f"{field}.interval", INTERVAL_RANGE)
    else:
        probe.interval.FromTimedelta(DEFAULT_INTERVAL)
