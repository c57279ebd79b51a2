"""``fleetd metrics``, ``fleetd health``, ``fleetd export``: AnalyticsService from a shell.

Unlike the admin verbs (``fleetd token``, ``fleetd audit``), these go through the operator
API like any client, with the caller's own credentials: ``FLEETD_ENDPOINT``,
``FLEETD_API_KEY`` and ``FLEETD_CA_CERT`` (what ``source .fleetd/demo.env`` sets), or the
options. Results go to stdout as a table or as JSON (``--output json``, the API's JSON
form); errors to stderr with exit status 1 (the server's code and message).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from fleetd_cli.common import console, duration, out, parse_time

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from fleetd.client import Client
    from fleetd.v1 import analytics_pb2

R = TypeVar("R")


class Output(StrEnum):
    table = "table"
    json = "json"


Endpoint = Annotated[
    str, typer.Option("--endpoint", envvar="FLEETD_ENDPOINT", help="Control API URL.")
]
ApiKey = Annotated[
    str, typer.Option("--api-key", envvar="FLEETD_API_KEY", help="API key (fk_...).")
]
CaCert = Annotated[
    str,
    typer.Option("--ca-cert", envvar="FLEETD_CA_CERT", help="CA certificate (PEM) to trust."),
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]


@contextmanager
def _client(endpoint: str, api_key: str, ca_cert: str) -> Iterator[Client]:
    from fleetd.client import Client

    if not endpoint:
        console.print("[red]no endpoint:[/red] set FLEETD_ENDPOINT or pass --endpoint")
        raise typer.Exit(2)
    with Client(endpoint, api_key or None, ca_cert=ca_cert or None) as client:
        yield client


def _call(work: Callable[[], R]) -> R:
    """Run one API call; a refusal prints the server's code and message and exits 1."""
    from connectrpc.errors import ConnectError

    try:
        return work()
    except ConnectError as exc:
        console.print(f"[red]{exc.code.name.lower()}:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


def _json(message: Message) -> None:
    from google.protobuf import json_format

    out.print_json(json_format.MessageToJson(message))


def _window(since: str, start: str, end: str) -> tuple[dt.datetime, dt.datetime]:
    """``--start``/``--end`` (ISO 8601 or a duration ago), else ``--since`` before the end."""
    now = dt.datetime.now(dt.UTC)
    stop = parse_time(end, now) if end else now
    begin = parse_time(start, now) if start else stop - duration(since)
    return begin, stop


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--label {pair!r}: use KEY=VALUE, e.g. type=raspberry-pi")
        labels[key] = value
    return labels


def metrics(
    names: Annotated[list[str], typer.Argument(help="Metric names, e.g. cpu_usage.")],
    since: Annotated[str, typer.Option(help="Window ending now (30m, 24h, 7d).")] = "24h",
    start: Annotated[str, typer.Option(help="Window start (ISO 8601); overrides --since.")] = "",
    end: Annotated[str, typer.Option(help="Window end (ISO 8601, default now).")] = "",
    interval: Annotated[str, typer.Option(help="Bucket width (1m, 1h...); default auto.")] = "",
    aggregation: Annotated[
        str, typer.Option(help="AVG, MIN, MAX, SUM, COUNT, P50, P95 or P99.")
    ] = "AVG",
    label: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE; VALUE * groups (repeatable).")
    ] = None,
    output: OutputOption = Output.table,
    endpoint: Endpoint = "",
    api_key: ApiKey = "",
    ca_cert: CaCert = "",
) -> None:
    """Fleet metrics over a window (GetMetrics): one series per metric and label value."""
    begin, stop = _window(since, start, end)
    fields: dict[str, object] = {
        "start_time": begin,
        "end_time": stop,
        "metric_names": names,
        "aggregation": aggregation.upper(),
        "labels": _labels(label or []),
    }
    if interval:
        fields["interval"] = duration(interval)
    with _client(endpoint, api_key, ca_cert) as client:
        answer = _call(lambda: client.analytics.get_metrics(**fields))
    if output is Output.json:
        _json(answer)
        return
    _metrics_table(answer)


def _metrics_table(answer: analytics_pb2.GetMetricsResponse) -> None:
    from rich.table import Table

    for series in answer.series:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(series.labels.items()))
        table = Table("time", f"{series.name} ({series.unit})", "samples", title=labels or None)
        for point in series.points:
            table.add_row(
                point.timestamp.ToDatetime(dt.UTC).isoformat(timespec="minutes"),
                f"{point.value:.6g}",
                str(point.sample_count),
            )
        out.print(table)
    summary = answer.summary
    table = Table("metric", "min", "avg", "max", "p50", "p95", "p99", "samples", title="summary")
    for name, stats in sorted(summary.metrics.items()):
        values = (stats.min, stats.avg, stats.max, stats.p50, stats.p95, stats.p99)
        table.add_row(name, *(f"{v:.4g}" for v in values), str(stats.sample_count))
    out.print(table)
    out.print(f"devices {summary.device_count}, online {summary.online_count}")


def health(
    device_filter: Annotated[
        str, typer.Option("--filter", help="Filter expression, e.g. type:raspberry-pi.")
    ] = "",
    device: Annotated[list[str] | None, typer.Option(help="A device id (repeatable).")] = None,
    check_type: Annotated[
        str, typer.Option(help="BASIC, RESOURCES or COMPREHENSIVE.")
    ] = "COMPREHENSIVE",
    limit: Annotated[int, typer.Option(min=0, help="Devices to list, worst first.")] = 20,
    output: OutputOption = Output.table,
    endpoint: Endpoint = "",
    api_key: ApiKey = "",
    ca_cert: CaCert = "",
) -> None:
    """Device health (GetDeviceHealth): the summary over every match, worst devices first."""
    from rich.table import Table

    from fleetd.v1 import device_pb2

    with _client(endpoint, api_key, ca_cert) as client:
        answer = _call(
            lambda: client.analytics.get_device_health(
                device_filter=device_filter,
                device_ids=device or [],
                check_type=check_type.upper(),
            )
        )
    if output is Output.json:
        _json(answer)
        return
    s = answer.summary
    out.print(
        f"{s.total_devices} devices: {s.healthy_count} healthy, {s.degraded_count} degraded, "
        f"{s.unhealthy_count} unhealthy, {s.unreachable_count} unreachable"
    )
    if s.failing_checks:
        failing = ", ".join(f"{k} {v}" for k, v in sorted(s.failing_checks.items()))
        out.print(f"failing checks: {failing}")
    rank = {device_pb2.UNREACHABLE: 0, device_pb2.UNHEALTHY: 1, device_pb2.DEGRADED: 2}
    worst = sorted(answer.device_health.items(), key=lambda kv: (rank.get(kv[1].status, 3), kv[0]))
    table = Table("device", "status", "failing checks")
    for device_id, report in worst[:limit]:
        failing_checks = [f"{c.name}: {c.message}" for c in report.checks if c.status in rank]
        table.add_row(
            device_id, device_pb2.HealthStatus.Name(report.status), "; ".join(failing_checks)
        )
    if worst[:limit]:
        out.print(table)


def export(
    data_type: Annotated[
        str,
        typer.Option(
            help="DEVICE_METRICS, DEVICE_INVENTORY, DEVICE_EVENTS, DEPLOYMENT_HISTORY, AUDIT_LOG."
        ),
    ],
    output_file: Annotated[Path, typer.Option("--output-file", "-f", help="Where to save it.")],
    export_format: Annotated[str, typer.Option("--format", help="CSV or JSONL.")] = "CSV",
    since: Annotated[str, typer.Option(help="Window ending now (30m, 24h, 7d).")] = "24h",
    start: Annotated[str, typer.Option(help="Window start (ISO 8601); overrides --since.")] = "",
    end: Annotated[str, typer.Option(help="Window end (ISO 8601, default now).")] = "",
    field: Annotated[list[str] | None, typer.Option(help="A column to keep (repeatable).")] = None,
    endpoint: Endpoint = "",
    api_key: ApiKey = "",
    ca_cert: CaCert = "",
) -> None:
    """Export data (ExportData): start the export, show its progress, download the file."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from fleetd.export_download import ExportDownloadError

    begin, stop = _window(since, start, end)
    with _client(endpoint, api_key, ca_cert) as client:
        answer = _call(
            lambda: client.analytics.export_data(
                format=export_format.upper(),
                data_type=data_type.upper(),
                start_time=begin,
                end_time=stop,
                fields=field or [],
            )
        )
        console.print(f"export started, URL valid until {answer.expires_at.ToJsonString()}")
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console
        ) as bar:
            task = bar.add_task("queued", total=None)

            def progress(state: str, done: int, total: int | None) -> None:
                bar.update(task, description=state, completed=done, total=total or None)

            try:
                path = client.analytics.download_export(
                    answer.export_url, output_file, progress=progress
                )
            except ExportDownloadError as exc:
                console.print(f"[red]export failed:[/red] {exc}", highlight=False)
                raise typer.Exit(1) from None
    out.print(str(path))
    if os.environ.get("FLEETD_PRINT_EXPORT_URL"):
        out.print(answer.export_url)
