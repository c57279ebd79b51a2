"""ExportData's rules: columns, request checks, metric tiers, URL signatures."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

import pytest

from fleetd.domain.analytics.exports import (
    COLUMNS,
    SEED_METRIC_COLUMNS,
    ExportSpec,
    InvalidExport,
    checked_request,
    export_url,
    metric_tiers,
    signature_holds,
    url_signature,
)
from fleetd.domain.analytics.metrics import CATALOGUE, Kind

UTC = dt.UTC
JAN1 = dt.datetime(2024, 1, 1, tzinfo=UTC)
JAN31 = dt.datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)
SEED_FIELDS = ["device_id", "timestamp", "cpu_usage", "memory_usage"]


def _request(**changes: object) -> ExportSpec:
    args: dict[str, object] = {
        "format": "CSV",
        "data_type": "DEVICE_METRICS",
        "fields": SEED_FIELDS,
        "start": JAN1,
        "end": JAN31,
    }
    args.update(changes)
    return checked_request(**args)  # type: ignore[arg-type]


def test_the_seed_request_is_accepted_with_its_fields_in_its_order() -> None:
    spec = _request()
    assert spec.fields == tuple(SEED_FIELDS)
    assert [c.name for c in spec.columns] == SEED_FIELDS


def test_device_metrics_has_the_seed_columns_first_then_every_per_device_metric() -> None:
    names = [c.name for c in COLUMNS["DEVICE_METRICS"]]
    assert names[:9] == ["device_id", "timestamp", *SEED_METRIC_COLUMNS]
    per_device = {m.name for m in CATALOGUE if m.kind is Kind.RESOURCE}
    assert set(names) == {"device_id", "timestamp", "resolution_seconds", *per_device}
    assert len(names) == len(set(names))


def test_no_fields_means_every_column_of_the_data_type() -> None:
    spec = _request(fields=[], data_type="AUDIT_LOG")
    assert spec.fields == tuple(c.name for c in COLUMNS["AUDIT_LOG"])


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"format": ""}, "format", "CSV, JSONL"),
        ({"format": "EXPORT_FORMAT_UNSPECIFIED"}, "format", "required"),
        ({"data_type": "DATA_TYPE_UNSPECIFIED"}, "data_type", "DEVICE_METRICS"),
        ({"fields": ["device_id", "cpu", "ram"]}, "fields", "'cpu', 'ram'"),
        ({"fields": ["cpu_usage", "cpu_usage"]}, "fields", "more than once: cpu_usage"),
        ({"start": None}, "start_time", "required for DEVICE_METRICS"),
        ({"end": None}, "end_time", "required"),
        ({"end": JAN1}, "end_time", "after start_time"),
        ({"start": JAN31, "end": JAN1}, "end_time", "after start_time"),
    ],
)
def test_bad_requests_name_the_field_and_what_to_send(
    changes: dict[str, object], field: str, says: str
) -> None:
    with pytest.raises(InvalidExport) as refused:
        _request(**changes)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert says in str(refused.value)


def test_inventory_needs_no_time_range_and_ignores_one() -> None:
    spec = _request(data_type="DEVICE_INVENTORY", fields=["device_id"], start=None, end=None)
    assert (spec.start, spec.end) == (None, None)
    spec = _request(data_type="DEVICE_INVENTORY", fields=["device_id"])
    assert (spec.start, spec.end) == (None, None)


def test_a_field_of_another_data_type_is_unknown() -> None:
    with pytest.raises(InvalidExport, match="unknown for AUDIT_LOG: 'cpu_usage'"):
        _request(data_type="AUDIT_LOG", fields=["cpu_usage"])


def test_spec_round_trips_through_its_stored_json() -> None:
    spec = _request(format="JSONL")
    assert ExportSpec.from_json(spec.to_json()) == spec


NOW = dt.datetime(2024, 1, 10, 12, 30, tzinfo=UTC)
DAY = 86400.0


def test_a_window_inside_raw_retention_reads_raw_samples_only() -> None:
    start = dt.datetime(2024, 1, 10, tzinfo=UTC)
    [tier] = metric_tiers(start, NOW, now=NOW, raw_retention=DAY)
    assert (tier.hourly, tier.start, tier.end) == (False, start, NOW)


def test_an_old_window_reads_hourly_rows_only() -> None:
    [tier] = metric_tiers(JAN1, JAN1 + dt.timedelta(days=2), now=NOW, raw_retention=DAY)
    assert tier.hourly


def test_a_window_across_the_cut_splits_on_the_hour_without_gap_or_overlap() -> None:
    parts = metric_tiers(JAN1, NOW, now=NOW, raw_retention=DAY)
    cut = dt.datetime(2024, 1, 9, 12, tzinfo=UTC)  # now - 24 h, down to the hour
    assert [(p.hourly, p.start, p.end) for p in parts] == [(True, JAN1, cut), (False, cut, NOW)]


def test_url_signature_is_base64url_hmac_sha256_of_id_dot_expires() -> None:
    key, export_id, expires = b"k" * 32, "7d9e0c3a-1111-4222-8333-444455556666", 1704067200
    mac = hmac.new(key, f"{export_id}.{expires}".encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert url_signature(key, export_id, expires) == expected
    assert signature_holds(key, export_id, expires, expected)
    url = export_url("https://api.example:8443", key, export_id, expires)
    assert url == f"https://api.example:8443/exports/{export_id}?expires={expires}&sig={expected}"


@pytest.mark.parametrize("tamper", ["id", "expires", "sig", "key", "non_ascii"])
def test_any_change_to_a_signed_url_breaks_its_signature(tamper: str) -> None:
    key, export_id, expires = b"k" * 32, "7d9e0c3a-1111-4222-8333-444455556666", 1704067200
    sig = url_signature(key, export_id, expires)
    checks = {
        "id": (key, export_id.replace("7", "8"), expires, sig),
        "expires": (key, export_id, expires + 1, sig),
        "sig": (key, export_id, expires, sig[:-1] + ("A" if sig[-1] != "A" else "B")),
        "key": (b"x" * 32, export_id, expires, sig),
        "non_ascii": (key, export_id, expires, "é" + sig[1:]),
    }
    assert not signature_holds(*checks[tamper])
