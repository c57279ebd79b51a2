"""ExportData's rules, without IO: what each data type's file holds, which requests are
accepted, which tier answers each part of a metrics window, and the download URL's signature.

docs/analytics.md, section 5. One table of columns per data type (:data:`COLUMNS`): the
request's ``fields`` pick from it (empty: all of them, in this order; otherwise the
caller's order), storage maps each name to SQL (``fleetd.storage.analytics.exports``), and
the worker writes them (``fleetd.services.analytics.export_jobs``).

- **DEVICE_METRICS**: per-device samples: ``device_samples`` for the part of the window
  within raw retention, ``device_samples_1h`` (hourly averages, or the hour's last value
  for gauges like ``memory_total_mb``) before it (:func:`metric_tiers`); the seed's
  columns first, then every other per-device metric of the catalogue
  (``fleetd.domain.analytics.metrics``) and ``resolution_seconds``.
- **DEVICE_INVENTORY**: one row per device (offboarded ones too, with ``offboarded_at``);
  no time range.
- **DEVICE_EVENTS**: the fleet's event stream (``fleetd.storage.events``: status changes,
  registrations, updates, deletions, assignment state changes). The stream is capped
  (about a day of events), so older events are not there to export.
- **DEPLOYMENT_HISTORY**: every status report a device sent about an assignment
  (``artifact_status_reports`` with its assignment's deployment, name and version).
- **AUDIT_LOG**: the hash-chained audit log of mutating operator calls.

Windows are half-open, ``start_time <= t < end_time``.

**The signed URL.** ``sig`` is base64url (unpadded) HMAC-SHA256 over
``"<export_id>.<expires>"`` (``expires`` in Unix seconds) with a key every replica shares
(a ``server_secrets`` row). The URL is the capability: whoever holds it may download
until it expires, so the signature covers both the job and the deadline, and is compared
in constant time.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from fleetd.domain.analytics.metrics import CATALOGUE, Kind


class ColumnKind(Enum):
    """How a column's value is written: CSV writes every kind as text."""

    TEXT = "text"
    NUMBER = "number"
    TIMESTAMP = "timestamp"
    """RFC 3339 UTC text (``2024-01-01T00:00:00.000000Z``), rendered by the database."""
    JSON = "json"
    """JSON text: embedded as is in JSONL, written as text in CSV."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ColumnKind


FORMATS: Final = ("CSV", "JSONL")
FILE_SUFFIX: Final = {"CSV": "csv", "JSONL": "jsonl"}
CONTENT_TYPE: Final = {"CSV": "text/csv; charset=utf-8", "JSONL": "application/x-ndjson"}

T, N, TS, J = ColumnKind.TEXT, ColumnKind.NUMBER, ColumnKind.TIMESTAMP, ColumnKind.JSON

SEED_METRIC_COLUMNS: Final = (
    "cpu_usage",
    "memory_usage",
    "disk_usage",
    "temperature",
    "load_avg_1m",
    "network_rx_bytes",
    "network_tx_bytes",
)
"""The metric columns the seed's DataType comment names, in its order."""

PER_DEVICE_METRICS: Final = tuple(
    m for m in CATALOGUE if m.kind is Kind.RESOURCE and m.sample_column is not None
)
"""Every metric a device sample carries (each has a raw and an hourly column)."""

_METRIC_ORDER: Final = (
    *SEED_METRIC_COLUMNS,
    *(m.name for m in PER_DEVICE_METRICS if m.name not in SEED_METRIC_COLUMNS),
)

COLUMNS: Final[Mapping[str, tuple[Column, ...]]] = {
    "DEVICE_METRICS": (
        Column("device_id", T),
        Column("timestamp", TS),
        *(Column(name, N) for name in _METRIC_ORDER),
        Column("resolution_seconds", N),
    ),
    "DEVICE_INVENTORY": (
        Column("device_id", T),
        Column("name", T),
        Column("fleet", T),
        Column("device_type", T),
        Column("version", T),
        Column("agent_version", T),
        Column("status", T),
        Column("tags", J),
        Column("metadata", J),
        Column("system_info", J),
        Column("ip_address", T),
        Column("cpu_usage", N),
        Column("memory_usage", N),
        Column("disk_usage", N),
        Column("temperature", N),
        Column("uptime_seconds", N),
        Column("last_seen", TS),
        Column("registered_at", TS),
        Column("updated_at", TS),
        Column("offboarded_at", TS),
    ),
    "DEVICE_EVENTS": (
        Column("timestamp", TS),
        Column("device_id", T),
        Column("event_type", T),
        Column("previous_status", T),
        Column("deployment_id", T),
        Column("assignment_id", T),
        Column("state", T),
        Column("reason", T),
        Column("details", J),
    ),
    "DEPLOYMENT_HISTORY": (
        Column("timestamp", TS),
        Column("device_id", T),
        Column("deployment_id", T),
        Column("assignment_id", T),
        Column("artifact_name", T),
        Column("artifact_version", T),
        Column("state", T),
        Column("reason", T),
        Column("message", T),
        Column("installed_version", T),
        Column("sequence", N),
        Column("observed_at", TS),
    ),
    "AUDIT_LOG": (
        Column("seq", N),
        Column("timestamp", TS),
        Column("actor", T),
        Column("actor_kind", T),
        Column("role", T),
        Column("method", T),
        Column("target", T),
        Column("request_id", T),
        Column("outcome", T),
        Column("hash", T),
    ),
}
DATA_TYPES: Final = tuple(COLUMNS)
UNTIMED: Final = frozenset({"DEVICE_INVENTORY"})
"""Data types without a time range (the time fields are ignored)."""

MAX_ATTEMPTS: Final = 3
MAX_RUNNING_PER_CALLER: Final = 2
MAX_QUEUED_PER_CALLER: Final = 10
LEASE_SECONDS: Final = 60.0
RENEW_EVERY_SECONDS: Final = 20.0
BATCH_ROWS: Final = 5_000


class InvalidExport(ValueError):
    """A request refused before any work: ``field`` is the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """An accepted request: what the worker produces. Stored as the job's ``request``."""

    format: str
    data_type: str
    fields: tuple[str, ...]
    """The columns, in the file's order (never empty)."""
    start: dt.datetime | None
    end: dt.datetime | None

    @property
    def columns(self) -> tuple[Column, ...]:
        by_name = {c.name: c for c in COLUMNS[self.data_type]}
        return tuple(by_name[f] for f in self.fields)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "data_type": self.data_type,
            "fields": list(self.fields),
            "start_time": None if self.start is None else self.start.isoformat(),
            "end_time": None if self.end is None else self.end.isoformat(),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ExportSpec:
        """The spec stored by :meth:`to_json`, checked again (a job row is input too)."""
        return checked_request(
            format=value["format"],
            data_type=value["data_type"],
            fields=value["fields"],
            start=_instant(value.get("start_time")),
            end=_instant(value.get("end_time")),
        )


def _instant(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def checked_request(
    *,
    format: str,
    data_type: str,
    fields: Sequence[str],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> ExportSpec:
    """The request as an :class:`ExportSpec`, or :class:`InvalidExport` naming the field.

    ``format`` and ``data_type`` are the enum value names ("" or ``*_UNSPECIFIED`` when
    unset); ``start`` / ``end`` are aware datetimes, None when unset.
    """
    if format not in FORMATS:
        raise InvalidExport("format", f"required; one of {', '.join(FORMATS)}")
    if data_type not in COLUMNS:
        raise InvalidExport("data_type", f"required; one of {', '.join(DATA_TYPES)}")
    known = [c.name for c in COLUMNS[data_type]]
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise InvalidExport(
            "fields",
            f"unknown for {data_type}: {', '.join(repr(f) for f in unknown)}; "
            f"known: {', '.join(known)} (or none for all)",
        )
    repeated = sorted({f for f in fields if list(fields).count(f) > 1})
    if repeated:
        raise InvalidExport("fields", f"listed more than once: {', '.join(repeated)}")
    if data_type in UNTIMED:
        start = end = None
    else:
        if start is None:
            raise InvalidExport("start_time", f"required for {data_type}")
        if end is None:
            raise InvalidExport("end_time", f"required for {data_type}")
        if not start < end:
            raise InvalidExport("end_time", "must be after start_time")
    return ExportSpec(format, data_type, tuple(fields) or tuple(known), start, end)


@dataclass(frozen=True, slots=True)
class TierRange:
    """A part of a DEVICE_METRICS window and the table that answers it."""

    hourly: bool
    """True: ``device_samples_1h`` rows whose hour starts in the range; else raw samples."""
    start: dt.datetime
    end: dt.datetime


def metric_tiers(
    start: dt.datetime, end: dt.datetime, *, now: dt.datetime, raw_retention: float
) -> list[TierRange]:
    """Which tier answers which part of ``[start, end)``: raw samples from the whole hour
    at or before ``now - raw_retention`` on, hourly rows before it. The cut is on an hour
    boundary so an hour is answered by exactly one tier (no row twice, none missing)."""
    oldest_raw = now - dt.timedelta(seconds=raw_retention)
    cut = oldest_raw.replace(minute=0, second=0, microsecond=0)
    parts: list[TierRange] = []
    if start < cut:
        parts.append(TierRange(True, start, min(end, cut)))
    if end > cut:
        parts.append(TierRange(False, max(start, cut), end))
    return parts


def url_signature(key: bytes, export_id: str, expires: int) -> str:
    """base64url (unpadded) HMAC-SHA256 over ``"<export_id>.<expires>"``."""
    mac = hmac.new(key, f"{export_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signature_holds(key: bytes, export_id: str, expires: int, signature: str) -> bool:
    """Whether ``signature`` is the URL's signature (constant-time comparison)."""
    expected = url_signature(key, export_id, expires)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def export_url(endpoint: str, key: bytes, export_id: str, expires: int) -> str:
    """The download URL under the API's public ``endpoint`` (``https://host:port``)."""
    signature = url_signature(key, export_id, expires)
    return f"{endpoint.rstrip('/')}/exports/{export_id}?expires={expires}&sig={signature}"
