"""``fleetd logs``: ask a device for a log bundle, see what came back, fetch it.

The operator API (``fleetd.v1``) has no log methods yet, so these commands work on the
deployment's storage directly, like ``fleetd token``: PostgreSQL for the requests and
bundles, Redis to tell the gateways that the device's desired state changed, and the
blob directory (``<data>/blobs``) for the bytes, so ``logs get`` runs on a node that
holds that directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import hashlib
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from fleetd.storage import log_requests
from fleetd_cli.common import (
    DataDir,
    console,
    duration,
    load_settings,
    out,
    parse_time,
    with_pool,
    with_storage,
)

if TYPE_CHECKING:
    from fleetd.storage.types import Pool, Redis

logs_app = typer.Typer(help="Log bundles from devices: request, list, get.", no_args_is_help=True)

_SIZE = re.compile(r"^(\d+)\s*(|b|k|kb|kib|m|mb|mib)$", re.IGNORECASE)
_UNITS = {
    **dict.fromkeys(("", "b"), 1),
    **dict.fromkeys(("k", "kb", "kib"), 1 << 10),
    **dict.fromkeys(("m", "mb", "mib"), 1 << 20),
}


def parse_size(text: str) -> int:
    """``"4MiB"`` -> 4194304; K/KiB/KB and M/MiB/MB all mean powers of 1024."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r}: use a byte count such as 1048576, 512KiB or 4MiB")
    return int(match[1]) * _UNITS[match[2].lower()]


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name (some containers)
        return "cli"


@logs_app.command("request")
def logs_request(
    device: Annotated[str, typer.Argument(help="The device id.")],
    source: Annotated[
        str, typer.Option(help="agent_journal (systemd journal) or agent_log_file.")
    ] = "agent_journal",
    since: Annotated[
        str, typer.Option(help="Oldest entries: ISO 8601 time or a duration ago (2h).")
    ] = "",
    until: Annotated[
        str, typer.Option(help="Newest entries: ISO 8601 time or a duration ago.")
    ] = "",
    max_bytes: Annotated[
        str, typer.Option("--max-bytes", help="Largest compressed bundle (max 16MiB).")
    ] = "4MiB",
    ttl: Annotated[str, typer.Option(help="How long the device may answer (max 30d).")] = "24h",
    data_dir: DataDir = "",
) -> None:
    """Ask a device for a log bundle (sent on its next heartbeat); prints the request id."""
    from fleetd.storage.desired import mark_changed

    now = dt.datetime.now(dt.UTC)
    size = parse_size(max_bytes)
    lifetime = duration(ttl)
    since_at = parse_time(since, now) if since else None
    until_at = parse_time(until, now) if until else None
    settings = load_settings(FLEETD_DATA_DIR=data_dir)

    async def issue(pool: Pool, redis: Redis) -> tuple[log_requests.LogRequestRecord, bool]:
        async with pool.acquire() as conn:
            issued = await log_requests.issue_log_request(
                conn,
                device,
                source=source,
                since=since_at,
                until=until_at,
                max_bytes=size,
                ttl=lifetime,
                requested_by=_operator(),
            )
        return issued.request, await mark_changed(redis, issued.revisions)

    try:
        record, told = with_storage(settings, issue)
    except log_requests.DeviceNotFound:
        console.print(f"[red]no active device {device!r}[/red]")
        raise typer.Exit(1) from None
    except (log_requests.TooManyPending, ValueError) as exc:
        console.print(f"[red]cannot request logs:[/red] {exc}")
        raise typer.Exit(2) from None
    out.print(record.log_request_id)
    console.print(
        f"{device} will be asked on its next heartbeat for up to {record.max_bytes} bytes "
        f"of {record.source}; the request expires {record.expires_at.isoformat(timespec='seconds')}"
    )
    if not told:
        console.print(
            "[yellow]Redis could not be told; the device learns of the request within "
            "10 minutes[/yellow]"
        )


@logs_app.command("list")
def logs_list(
    device: Annotated[str, typer.Argument(help="The device id.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest requests shown.")] = 50,
    data_dir: DataDir = "",
) -> None:
    """A device's log requests, newest first, with the bundles that answered them."""
    from rich.table import Table

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    records = with_pool(
        settings, lambda pool: log_requests.list_log_requests(pool, device, limit=limit)
    )
    now = dt.datetime.now(dt.UTC)
    table = Table("request", "source", "max bytes", "requested", "status", "bundle", "size")
    for r in records:
        table.add_row(
            r.log_request_id,
            r.source,
            str(r.max_bytes),
            r.created_at.isoformat(timespec="seconds"),
            r.status(now),
            r.bundle_id or "",
            "" if r.bundle_size is None else str(r.bundle_size),
        )
    out.print(table)


@logs_app.command("get")
def logs_get(
    bundle_id: Annotated[str, typer.Argument(help="The bundle id (from `fleetd logs list`).")],
    output: Annotated[
        str, typer.Option("-o", "--output", help="File to write (gzip), or - for stdout.")
    ],
    data_dir: DataDir = "",
) -> None:
    """Write a stored log bundle (gzip, as the device sent it), checking its SHA-256."""
    from fleetd.storage.blobs import BlobNotFound, FilesystemBlobStore

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    bundle = with_pool(settings, lambda pool: log_requests.get_bundle(pool, bundle_id))
    if bundle is None:
        console.print(f"[red]no log bundle {bundle_id!r}[/red]")
        raise typer.Exit(1)
    store = FilesystemBlobStore(settings.paths.blobs)
    target = None if output == "-" else Path(output)
    partial = None if target is None else target.with_name(f".{target.name}.partial")

    async def copy(sink: BinaryIO) -> str:
        digest = hashlib.sha256()
        async for chunk in store.read(bundle.sha256):
            digest.update(chunk)
            sink.write(chunk)
        return digest.hexdigest()

    try:
        if partial is None:
            actual = asyncio.run(copy(sys.stdout.buffer))
            sys.stdout.flush()
        else:
            try:
                with partial.open("wb") as sink:
                    actual = asyncio.run(copy(sink))
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
    except BlobNotFound:
        console.print(
            f"[red]the bytes of {bundle_id} are not in {settings.paths.blobs}[/red]: run this "
            "on the node whose data directory holds them"
        )
        raise typer.Exit(1) from None
    except OSError as exc:
        console.print(f"[red]cannot write {output}:[/red] {exc}")
        raise typer.Exit(1) from None
    if actual != bundle.sha256:
        if partial is not None:
            partial.unlink(missing_ok=True)
        console.print(f"[red]{bundle_id} is corrupt on disk[/red] (SHA-256 {actual})")
        raise typer.Exit(1)
    if partial is not None and target is not None:
        partial.replace(target)
    console.print(
        f"{bundle_id}: {bundle.size_bytes} bytes gzip ({bundle.uncompressed_size} uncompressed, "
        f"as the device reported) from {bundle.device_id}, stored "
        f"{bundle.stored_at.isoformat(timespec='seconds')}"
    )
