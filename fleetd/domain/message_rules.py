"""One rule for every request message at every edge, derived from the message's descriptor.

Both servers pass every request message through :func:`check` as they decode it, before an
interceptor, the audit log, a handler or any store sees it: the control API in the codecs
every service is built with (``control_api.request_codecs``: every method, every protocol,
streamed messages included), the device gateway in the request deserializer of every
method of ``AgentService`` (``gateway.aborts.guarded_service``), both decoding the binary
form with :func:`parse`. A refusal is a :class:`Violation` whose message names the field by
its path (``artifacts[0].config.reload_command.args[2]``, ``metadata['rack']``,
``metadata key 'a\\x00'``); both edges answer it INVALID_ARGUMENT. Handlers keep their
finer rules (an id's alphabet, a name that must not be empty): the rules here hold for
every field of every method, so that no malformed value reaches PostgreSQL, Redis or a
log line.

The rules:

- a string has no NUL character, is valid Unicode (no lone surrogate, so it encodes to
  UTF-8) and has at most :data:`DEFAULT_MAX_CHARS` characters, or its field's own limit
  (:data:`MAX_CHARS`, :data:`MESSAGE_MAX_CHARS`): free text, filters, CSRs and URLs may be
  longer, a device's self-description is shorter;
- a repeated field or a map has at most :data:`DEFAULT_MAX_ITEMS` entries, or its
  field's own limit (:data:`MAX_ITEMS`); a map's keys and values follow the string rule;
- a float or double is finite, and within its field's range (:data:`RANGES`) where one is
  meaningful: no negative size, count, load or duration of uptime, no percentage outside
  0..100, no 1e308-gigabyte disk; an integer with a range there is within it too;
- an enum is one of the values the server knows (an unknown number is refused rather
  than stored);
- a ``google.protobuf.Timestamp`` lies in 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z with
  nanos in 0..999,999,999; a ``Duration`` is within +-10,000 years with nanos of the
  seconds' sign (the ranges protobuf's JSON mapping defines);
- messages nest at most :data:`MAX_DEPTH` levels;
- ``bytes`` fields carry content (binary chunks, log bundles) and are exempt.

Each message type's check (which fields, how) is generated once from its descriptor and
cached; it reads only the fields it must check, so the agent's heartbeat (full stats,
three installed artifacts) costs about 4.6 us to check, against 0.5 us to decode and
~170 us of gateway CPU per streamed heartbeat in all (``make bench-message-rules``; the
gateway A/B in bench/RESULTS.md shows no measurable difference end to end).
"""

from __future__ import annotations

import keyword
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from fleetd.domain import device_fields
from fleetd.domain.catalog import spec
from fleetd.domain.rollout import assignment_rules

DEFAULT_MAX_CHARS: Final = 1024
"""Any string without a limit of its own: ids, names, versions, tokens, reasons, paths,
metadata values."""
DEFAULT_MAX_ITEMS: Final = 1000
"""Any repeated field or map without a limit of its own."""
MAX_DEPTH: Final = 32
"""Message nesting (the request protos nest at most six levels today)."""

MAX_FILTER_CHARS: Final = 4096
"""A filter expression (``core_ext.MAX_FILTER_LENGTH``; ListDeployments' and DeployUpdate's
own limit too)."""
MAX_CSR_CHARS: Final = 8192
"""A PEM certificate request (``fleetd.services.pki.MAX_CSR_BYTES``)."""
MAX_DEPLOY_DEVICE_IDS: Final = 10_000
"""DeployUpdate's explicit targets; more are chosen with a device_filter."""

_FILTERS = (
    "fleetd.v1.ListDevicesRequest.filter",
    "fleetd.v1.ListUpdatesRequest.filter",
    "fleetd.v1.ListDeploymentsRequest.filter",
    "fleetd.v1.DeployUpdateRequest.device_filter",
    "fleetd.v1.StreamEventsRequest.device_filter",
    "fleetd.v1.GetDeviceHealthRequest.device_filter",
)

MAX_CHARS: Final[Mapping[str, int]] = {
    **dict.fromkeys(_FILTERS, MAX_FILTER_CHARS),
    "fleetd.v1.CreateUpdateRequest.description": spec.MAX_DESCRIPTION,
    "fleetd.v1.BinaryMetadata.description": spec.MAX_DESCRIPTION,
    "fleetd.v1.Artifact.url": spec.MAX_URL,
    "fleetd.v1.HealthProbe.Http.url": spec.MAX_URL,
    "fleetd.v1.RegisterDeviceRequest.csr": MAX_CSR_CHARS,
    "fleetd.device.v1.RenewCertificateRequest.csr": MAX_CSR_CHARS,
    "fleetd.device.v1.ReportArtifactStatusRequest.message": assignment_rules.MAX_MESSAGE_BYTES,
}
"""Strings whose limit is not the default, by field (``package.Message.field``)."""

MESSAGE_MAX_CHARS: Final[Mapping[str, int]] = {
    # What a device says about itself is stored and listed with every device.
    "fleetd.v1.SystemInfo": device_fields.MAX_TEXT,
    "fleetd.device.v1.HardwareProfile": device_fields.MAX_TEXT,
}
"""Every string field of these messages (unless MAX_CHARS names the field)."""

MAX_ITEMS: Final[Mapping[str, int]] = {
    "fleetd.v1.DeployUpdateRequest.device_ids": MAX_DEPLOY_DEVICE_IDS,
}
"""Repeated fields and maps whose limit is not the default, by field."""

_PERCENT = (0, 100)
_MEMORY_MB = (0, device_fields.MAX_MEMORY_MB)
_DISK_GB = (0, device_fields.MAX_DISK_GB)
_LOAD = (0, device_fields.MAX_LOAD_AVERAGE)
_TEMPERATURE = (device_fields.MIN_TEMPERATURE, device_fields.MAX_TEMPERATURE)
_UPTIME = (0, device_fields.MAX_UPTIME_SECONDS)
_INT32 = 2**31 - 1


def _profile(message: str) -> dict[str, tuple[float, float]]:
    return {
        f"{message}.cpu_cores": (0, device_fields.MAX_CPU_CORES),
        f"{message}.memory_mb": _MEMORY_MB,
        f"{message}.disk_gb": _DISK_GB,
    }


def _stats(message: str) -> dict[str, tuple[float, float]]:
    return {
        f"{message}.cpu_percent": _PERCENT,
        f"{message}.memory_percent": _PERCENT,
        f"{message}.disk_percent": _PERCENT,
        f"{message}.memory_used_mb": _MEMORY_MB,
        f"{message}.memory_total_mb": _MEMORY_MB,
        f"{message}.disk_used_gb": _DISK_GB,
        f"{message}.disk_total_gb": _DISK_GB,
        f"{message}.load_avg_1m": _LOAD,
        f"{message}.load_avg_5m": _LOAD,
        f"{message}.load_avg_15m": _LOAD,
        f"{message}.temperature_celsius": _TEMPERATURE,
    }


RANGES: Final[Mapping[str, tuple[float, float]]] = {
    **_profile("fleetd.v1.SystemInfo"),
    **_profile("fleetd.device.v1.HardwareProfile"),
    **_stats("fleetd.v1.SystemStats"),
    **_stats("fleetd.device.v1.DeviceStats"),
    "fleetd.v1.SystemStats.process_count": (0, _INT32),
    "fleetd.device.v1.DeviceStats.uptime_seconds": _UPTIME,
    "fleetd.v1.DeviceStatus.uptime_seconds": _UPTIME,
    "fleetd.v1.ProcessInfo.pid": (0, _INT32),
    "fleetd.v1.ProcessInfo.cpu_percent": (0, 100 * device_fields.MAX_CPU_CORES),
    "fleetd.v1.ProcessInfo.memory_mb": _MEMORY_MB,
    "fleetd.v1.UpdateStrategy.max_failure_percentage": _PERCENT,
    "fleetd.v1.UpdateStrategy.canary_percentage": _PERCENT,
    "fleetd.v1.DeploymentConfig.max_failure_percentage": _PERCENT,
    "fleetd.v1.DeploymentConfig.canary_percentage": _PERCENT,
    "fleetd.v1.Wave.cumulative_percentage": _PERCENT,
}
"""Numbers with a meaningful range (inclusive), by field. Every other float or double
need only be finite."""

MIN_TIMESTAMP_SECONDS: Final = -62_135_596_800
"""0001-01-01T00:00:00Z."""
MAX_TIMESTAMP_SECONDS: Final = 253_402_300_799
"""9999-12-31T23:59:59Z."""
MAX_DURATION_SECONDS: Final = 315_576_000_000
"""10,000 years."""
MAX_NANOS: Final = 999_999_999


class Violation(ValueError):
    """A request breaks one of these rules; ``str()`` names the field's path and what
    is wrong with it, e.g. ``device_id must not contain NUL characters``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}" if path else problem)
        self.path = path
        self.problem = problem

    def under(self, parent: str) -> Violation:
        """The same violation, its path inside ``parent`` (a field, ``items[3]``...)."""
        if not self.path:
            path = parent
        elif self.path.startswith(("[", " ")):
            path = parent + self.path
        else:
            path = f"{parent}.{self.path}"
        return Violation(path, self.problem)


# How a check runs: for each message type, one function generated from its descriptor the
# first time the type is seen (as dataclasses generate __init__), reading each field it
# must check as a plain attribute and comparing inline: a generic walk over ListFields()
# costs several times more, and the gateway checks every heartbeat. The generated code
# holds no value from a request: field names come from the descriptor (identifiers, by
# protobuf's grammar) and limits from the tables above; a refusal is diagnosed and worded
# by the helpers below, outside the generated code.

Checker = Callable[[Any, int], None]
_checkers: dict[str, Checker] = {}
_SPECIAL_TYPES = ("google.protobuf.Timestamp", "google.protobuf.Duration")
_INT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
_FINITE = (-sys.float_info.max, sys.float_info.max)


M = TypeVar("M", bound=Message)


def parse(message_class: type[M], data: bytes) -> M:
    """``data`` (protobuf's binary form) as a ``message_class`` message that follows every
    rule; else :class:`Violation` saying what is wrong, in words fit for the sender (never
    the parser's exception)."""
    try:
        message = message_class.FromString(data)
    except DecodeError as exc:
        name = message_class.DESCRIPTOR.full_name
        if "UTF-8" in str(exc):
            problem = f"the request is not a valid {name}: a string in it is not valid UTF-8"
        else:
            problem = f"the request is not a valid {name}: its protobuf wire format is corrupt"
        raise Violation("", problem) from None
    check(message)
    return message


def check(message: Message) -> None:
    """Raise :class:`Violation` if ``message`` (any request message) breaks a rule."""
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]  # upb's type
    checker = _checkers.get(descriptor.full_name) or _checker(descriptor)
    checker(message, 1)


def prepare(message_class: type[Message]) -> None:
    """Build the checks of ``message_class`` and of every message type it holds now rather
    than at the first request (a server calls it for its request types at start-up)."""
    descriptor: Descriptor = message_class.DESCRIPTOR  # type: ignore[assignment]  # upb's type
    _checker(descriptor)


def _checker(descriptor: Descriptor) -> Checker:
    """The check of ``descriptor``'s messages, built (with those of the message types it
    holds) if it does not exist yet."""
    name = descriptor.full_name
    found = _checkers.get(name)
    if found is not None:
        return found
    if name == "google.protobuf.Timestamp":
        checker: Checker = _timestamp
    elif name == "google.protobuf.Duration":
        checker = _duration
    else:
        # A stand-in while the types it holds are built (a type may hold itself); the
        # real check replaces it before any message is checked.
        _checkers[name] = _unbuilt
        for field in descriptor.fields:
            if field.message_type is not None:
                _checker(field.message_type)
        checker = _generate(descriptor)
    _checkers[name] = checker
    return checker


def _unbuilt(message: Any, depth: int) -> None:
    raise AssertionError("a message check ran before it was built")


class _Source:
    """The generated check of one message type: its lines and the values it refers to."""

    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.lines = [
            "def check(m, depth):",
            f"    if depth > {MAX_DEPTH}:",
            "        too_deep()",
        ]
        self.constants: dict[str, object] = {
            "Violation": Violation,
            "C": _checkers,
            "too_deep": _too_deep,
            "bad_string": _bad_string,
            "bad_number": _bad_number,
            "bad_enum": _bad_enum,
            "too_many": _too_many,
        }

    def constant(self, value: object) -> str:
        """A name for ``value`` in the generated code."""
        name = f"k{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def build(self) -> Checker:
        namespace = dict(self.constants)
        # The source is built from descriptor names and this module's limits only.
        exec("\n".join(self.lines), namespace)  # noqa: S102
        checker: Checker = namespace["check"]  # type: ignore[assignment]  # def check above
        return checker


def _generate(descriptor: Descriptor) -> Checker:
    source = _Source(descriptor)
    for field in descriptor.fields:
        _field(source, field)
    return source.build()


def _attribute(name: str) -> str:
    return f"getattr(m, {name!r})" if keyword.iskeyword(name) else f"m.{name}"


def _field(source: _Source, field: FieldDescriptor) -> None:
    name, owner = field.name, source.descriptor.full_name
    entry = field.message_type
    is_map = entry is not None and entry.GetOptions().map_entry
    kind = field.type
    if not field.is_repeated:
        if kind == FieldDescriptor.TYPE_MESSAGE:
            source.emit(1, f"if m.HasField({name!r}):")
            source.emit(2, "try:")
            source.emit(3, f"C[{entry.full_name!r}]({_attribute(name)}, depth + 1)")  # type: ignore[union-attr]
            source.emit(2, "except Violation as e:")
            source.emit(3, f"raise e.under({name!r}) from None")
            return
        test = _scalar_test(source, field, owner, "x")
        if test is not None:
            source.emit(1, f"x = {_attribute(name)}")
            source.emit(1, f"if {test[0]}:")
            source.emit(2, test[1].format(path=repr(name)))
        return
    limit = MAX_ITEMS.get(field.full_name, DEFAULT_MAX_ITEMS)
    source.emit(1, f"v = {_attribute(name)}")
    source.emit(1, "if v:")
    source.emit(2, f"if len(v) > {limit}:")
    source.emit(3, f"too_many({name!r}, {limit})")
    if is_map:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]  # type: ignore[union-attr]
        key_test = _scalar_test(source, key, entry.full_name, "k")  # type: ignore[union-attr]
        source.emit(2, "for k, x in v.items():")
        source.emit(3, "pass  # in case neither keys nor values need a check")
        if key_test is not None:
            source.emit(3, f"if {key_test[0]}:")
            source.emit(4, key_test[1].format(path=f"{name!r} + ' key ' + shown(k)"))
        if value.message_type is not None:
            source.emit(3, "try:")
            source.emit(4, f"C[{value.message_type.full_name!r}](x, depth + 1)")
            source.emit(3, "except Violation as e:")
            source.emit(4, f"raise e.under({name!r} + '[' + shown(k) + ']') from None")
        else:
            value_test = _scalar_test(source, value, entry.full_name, "x")  # type: ignore[union-attr]
            if value_test is not None:
                source.emit(3, f"if {value_test[0]}:")
                source.emit(4, value_test[1].format(path=f"{name!r} + '[' + shown(k) + ']'"))
        source.constants["shown"] = _shown
        return
    if kind == FieldDescriptor.TYPE_MESSAGE:
        source.emit(2, "for i, x in enumerate(v):")
        source.emit(3, "try:")
        source.emit(4, f"C[{entry.full_name!r}](x, depth + 1)")  # type: ignore[union-attr]
        source.emit(3, "except Violation as e:")
        source.emit(4, f"raise e.under({name!r} + '[' + str(i) + ']') from None")
        return
    test = _scalar_test(source, field, owner, "x")
    if test is not None:
        source.emit(2, "for i, x in enumerate(v):")
        source.emit(3, f"if {test[0]}:")
        source.emit(4, test[1].format(path=f"{name!r} + '[' + str(i) + ']'"))


def _scalar_test(
    source: _Source, field: FieldDescriptor, owner: str, var: str
) -> tuple[str, str] | None:
    """(condition, refusal) for one scalar value held in ``var``: the refusal runs when
    the condition holds and raises if the value is really wrong ({path} is left to
    fill in); None when values of this field need no check."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        limit = MAX_CHARS.get(field.full_name) or MESSAGE_MAX_CHARS.get(owner, DEFAULT_MAX_CHARS)
        condition = f"{var} and (len({var}) > {limit} or '\\x00' in {var} or not {var}.isascii())"
        return condition, f"bad_string({{path}}, {var}, {limit})"
    if kind in _FLOAT_TYPES:
        low, high = RANGES.get(field.full_name, _FINITE)
        lo, hi = repr(float(low)), repr(float(high))  # literals: exact, and read fastest
        return f"not {lo} <= {var} <= {hi}", f"bad_number({{path}}, {var}, {lo}, {hi})"
    if kind in _INT_TYPES and field.full_name in RANGES:
        low, high = RANGES[field.full_name]
        lo, hi = repr(int(low)), repr(int(high))
        return f"not {lo} <= {var} <= {hi}", f"bad_number({{path}}, {var}, {lo}, {hi})"
    enum = field.enum_type
    if kind == FieldDescriptor.TYPE_ENUM and enum is not None:
        known = source.constant(frozenset(enum.values_by_number))
        return f"{var} not in {known}", f"bad_enum({{path}}, {var}, {enum.name!r})"
    return None  # bools, integers without a range, bytes


def _too_deep() -> None:
    raise Violation("", f"is nested more than {MAX_DEPTH} levels deep")


def _too_many(path: str, limit: int) -> None:
    raise Violation(path, f"has more than {limit} entries")


def _bad_string(path: str, value: str, limit: int) -> None:
    """Raise for ``value`` if it breaks the string rule (it may be valid non-ASCII)."""
    if len(value) > limit:
        raise Violation(path, f"is longer than {limit} characters")
    if "\x00" in value:
        raise Violation(path, "must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise Violation(path, "must be valid UTF-8 text (it holds a lone surrogate)") from None


def _bad_number(path: str, value: float, low: float, high: float) -> None:
    if value - value != 0:  # NaN or +-infinity
        raise Violation(path, "must be a finite number")
    raise Violation(path, f"must be between {_number(low)} and {_number(high)}")


def _bad_enum(path: str, value: int, enum: str) -> None:
    raise Violation(path, f"holds {value}, which is not a known {enum} value")


def _timestamp(message: Any, depth: int) -> None:
    seconds, nanos = message.seconds, message.nanos
    if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
        raise Violation("", "is not a timestamp between 0001-01-01 and 9999-12-31")
    if not 0 <= nanos <= MAX_NANOS:
        raise Violation("", "is not a valid timestamp (nanos must be 0 to 999999999)")


def _duration(message: Any, depth: int) -> None:
    seconds, nanos = message.seconds, message.nanos
    if not -MAX_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS:
        raise Violation("", "is not a duration within 10000 years")
    if not -MAX_NANOS <= nanos <= MAX_NANOS or seconds * nanos < 0:
        raise Violation("", "is not a valid duration (nanos out of range or of the wrong sign)")


def _shown(key: object) -> str:
    """A map key as a path shows it: quoted, escaped, cut after 32 characters."""
    if isinstance(key, str) and len(key) > 32:
        return repr(key[:32]) + "..."
    return repr(key)


def _number(value: float) -> str:
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e16):
        return str(int(value))
    return f"{value:g}"
