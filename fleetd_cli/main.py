"""``fleetd``: one CLI for operators — init, serve, demo, token, metrics, health, export, agent.

Configuration comes from ``FLEETD_*`` environment variables (see the README); options
here only override the few things one changes per invocation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from fleetd_cli import analytics
from fleetd_cli.common import (
    DataDir,
    T,
    console,
    duration,
    load_settings,
    out,
    with_pool,
)
from fleetd_cli.logs import logs_app

if TYPE_CHECKING:
    from fleetd.services.tuf_repo.admin import Rotation
    from fleetd.storage.types import Pool
    from fleetd_cli.supervisor import Supervisor

# platformdirs (via pgserver) warns when XDG_RUNTIME_DIR is unset, as on servers and in CI.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

app = typer.Typer(
    help="fleetd: device-fleet gateway and control plane.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Enrolment tokens for new devices.", no_args_is_help=True)
app.add_typer(token_app, name="token")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
jwt_app = typer.Typer(help="JWT bearer tokens for people and automation.", no_args_is_help=True)
app.add_typer(jwt_app, name="jwt")
app.add_typer(logs_app, name="logs")
tuf_app = typer.Typer(help="The TUF repository: status, key rotation.", no_args_is_help=True)
app.add_typer(tuf_app, name="tuf")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pgserver narrates every start at INFO; its warnings and errors still show.
    logging.getLogger("pgserver").setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.command()
def init(
    data_dir: DataDir = "",
    tuf_root_keys: Annotated[
        int, typer.Option(min=1, max=16, help="TUF root keys to create (new repository only).")
    ] = 1,
    tuf_root_threshold: Annotated[
        int, typer.Option(min=1, max=16, help="TUF root signatures required (new repository).")
    ] = 1,
) -> None:
    """Create the fleet CA, server certificates, database schema, TUF repository and an
    admin API key."""
    from fleetd.storage.embedded import storage_urls
    from fleetd_cli.initialize import initialize

    if tuf_root_threshold > tuf_root_keys:
        raise typer.BadParameter("--tuf-root-threshold cannot exceed --tuf-root-keys")
    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    with storage_urls(settings, need_redis=False) as s:
        result = asyncio.run(
            initialize(s, tuf_root_keys=tuf_root_keys, tuf_root_threshold=tuf_root_threshold)
        )
    paths = settings.paths
    out.print(f"fleet        {settings.fleet}")
    out.print(f"CA           {paths.ca_cert}")
    out.print(f"server cert  {paths.server_cert}")
    out.print(f"TUF keys     {paths.root / 'tuf'} (move tuf/offline off this machine)")
    note = "created" if result.created_admin_key else "exists"
    out.print(f"admin key    {paths.admin_api_key} ({note})")


def _start(sup: Supervisor, workers: int, *, api: bool = True) -> None:
    """Start the servers, or say why they did not start and exit 1."""
    from fleetd_cli.supervisor import StartupFailed

    try:
        sup.start_servers(workers, api=api)
    except StartupFailed as exc:
        console.print(f"[red]cannot start:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def serve(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Gateway worker processes.")] = 1,
    data_dir: DataDir = "",
    verbose: bool = False,
) -> None:
    """Run the gateway and the control API (on the embedded storage unless URLs are set).

    A gateway worker or the control API that exits is restarted (after 0.1 s, doubling
    to 5 s while it keeps exiting); 5 exits of one within 60 s stop everything (status 1)."""
    from fleetd.storage.embedded import storage_urls
    from fleetd_cli.initialize import initialize
    from fleetd_cli.supervisor import Supervisor

    _logging(verbose)
    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    with storage_urls(settings) as s:
        asyncio.run(initialize(s))
        with Supervisor(s) as sup:
            _start(sup, workers)
            console.print(f"gateway      {s.gateway_endpoint} (mTLS, device API)")
            console.print(f"control API  {s.api_endpoint} (Connect, gRPC, gRPC-Web)")
            console.print("Ctrl-C stops.")
            status = sup.wait()
    raise typer.Exit(status)


@app.command()
def gateway(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Gateway worker processes.")] = 1,
    data_dir: DataDir = "",
    verbose: bool = False,
) -> None:
    """Run only the device gateway: N processes sharing the port (SO_REUSEPORT).

    For dedicated gateway nodes: point FLEETD_DATABASE_URL and FLEETD_REDIS_URL at the
    shared stores; gateways on any number of nodes need no other coordination. A worker
    that exits is restarted, as by ``fleetd serve``."""
    from fleetd.storage.embedded import storage_urls
    from fleetd_cli.initialize import initialize
    from fleetd_cli.supervisor import Supervisor

    _logging(verbose)
    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    with storage_urls(settings) as s:
        asyncio.run(initialize(s))
        with Supervisor(s) as sup:
            _start(sup, workers, api=False)
            console.print(
                f"gateway      {s.gateway_endpoint} (mTLS, device API), {workers} workers"
            )
            console.print("Ctrl-C or SIGTERM drains and stops.")
            status = sup.wait()
    raise typer.Exit(status)


@app.command()
def demo(
    devices: Annotated[int, typer.Option(min=1, max=500, help="Simulated devices.")] = 3,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Gateway workers.")] = 1,
    heartbeat_interval: Annotated[
        float, typer.Option(min=1.0, help="Heartbeat interval the server hands out (s).")
    ] = 5.0,
    data_dir: DataDir = "",
    verbose: bool = False,
) -> None:
    """Run everything on the embedded default with real agents over real mTLS."""
    from fleetd_cli.demo import run_demo
    from fleetd_cli.supervisor import StartupFailed

    _logging(verbose)
    settings = load_settings(
        FLEETD_DATA_DIR=data_dir, FLEETD_HEARTBEAT_INTERVAL=repr(heartbeat_interval)
    )
    try:
        status = run_demo(settings, devices=devices, workers=workers)
    except StartupFailed as exc:
        console.print(f"[red]cannot start:[/red] {exc}")
        raise typer.Exit(1) from None
    raise typer.Exit(status)


@token_app.command("create")
def token_create(
    uses: Annotated[int, typer.Option(min=1, help="How many devices may enrol with it.")] = 1,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 30m, 24h, 7d.")] = "24h",
    description: Annotated[str, typer.Option(help="What the token is for.")] = "",
    data_dir: DataDir = "",
) -> None:
    """Mint an enrolment token (printed once; only its hash is stored)."""
    from fleetd.storage.bearer_tokens import create_enrollment_token

    lifetime = duration(ttl)
    settings = load_settings(FLEETD_DATA_DIR=data_dir)

    async def mint(pool: Pool) -> tuple[str, dt.datetime]:
        secret, expires = await create_enrollment_token(
            pool,
            settings.fleet,
            ttl=lifetime,
            max_uses=uses,
            description=description,
            created_by="fleetd token create",
        )
        return secret.token, expires

    token, expires = with_pool(settings, mint)
    out.print(token)
    console.print(f"valid for {uses} enrolment(s) until {expires.isoformat()}")


@token_app.command("list")
def token_list(
    all_tokens: Annotated[
        bool, typer.Option("--all", help="Include expired, used-up and revoked tokens.")
    ] = False,
    data_dir: DataDir = "",
) -> None:
    """List enrolment tokens (never their secrets)."""
    from rich.table import Table

    from fleetd.storage.bearer_tokens import list_enrollment_tokens

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    tokens = with_pool(
        settings,
        lambda pool: list_enrollment_tokens(
            pool, settings.fleet, limit=1000, include_inactive=all_tokens
        ),
    )
    table = Table("id", "uses", "expires", "revoked", "description")
    for t in tokens:
        table.add_row(
            t.token_id,
            f"{t.uses}/{t.max_uses}",
            t.expires_at.isoformat(timespec="seconds"),
            t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "",
            t.description,
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str, data_dir: DataDir = "") -> None:
    """Revoke an enrolment token by id; it cannot enrol anything afterwards."""
    from fleetd.storage.bearer_tokens import revoke_enrollment_token

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    if with_pool(settings, lambda pool: revoke_enrollment_token(pool, token_id)):
        console.print(f"revoked {token_id}")
    else:
        console.print(f"[yellow]no active token {token_id}[/yellow]")
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = "") -> None:
    """Recompute the audit log's hash chain; exit 1 at the first entry that breaks it.

    Also lists calls that started but have no recorded outcome.
    """
    from fleetd.storage import audit

    async def check(pool: Pool) -> audit.Verdict:
        async with pool.acquire() as conn:
            return await audit.verify(conn)

    verdict = with_pool(load_settings(FLEETD_DATA_DIR=data_dir), check)
    if verdict.first_bad_seq is not None:
        console.print(
            f"[red]audit log broken at entry {verdict.first_bad_seq}:[/red] {verdict.problem}"
        )
        raise typer.Exit(1)
    console.print(f"audit log intact: {verdict.entries} entries")
    for record in verdict.unfinished:
        console.print(
            f"[yellow]no outcome recorded[/yellow] for {record.entry.method} by "
            f"{record.entry.actor} (request_id {record.entry.request_id}, entry {record.seq}, "
            f"started {record.at.isoformat(timespec='seconds')}): still running, or its "
            "outcome could not be appended (see the server log)"
        )


@audit_app.command("export")
def audit_export(
    after: Annotated[int, typer.Option(help="Only entries with a larger sequence number.")] = 0,
    data_dir: DataDir = "",
) -> None:
    """Write the audit log to stdout as JSON lines (one entry per line, in order)."""
    import orjson

    from fleetd.storage import audit

    async def export(pool: Pool) -> int:
        count = 0
        async with pool.acquire() as conn:
            async for record in audit.records(conn, after_seq=after):
                sys.stdout.buffer.write(orjson.dumps(record.to_json()) + b"\n")
                count += 1
        return count

    count = with_pool(load_settings(FLEETD_DATA_DIR=data_dir), export)
    sys.stdout.flush()
    console.print(f"{count} entries")


@jwt_app.command("issue")
def jwt_issue(
    subject: Annotated[str, typer.Option(help="Who the token is for, e.g. alice@example.com.")],
    role: Annotated[str, typer.Option(help="admin, operator, viewer or service.")] = "viewer",
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 15m, 8h, 30d (max 30d).")] = "8h",
    data_dir: DataDir = "",
) -> None:
    """Mint a bearer token signed with this node's newest JWT key."""
    from fleetd.services import jwt

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    try:
        key = jwt.load_signing_key(settings.paths.root)
        token = jwt.issue(
            key,
            fleet=settings.fleet,
            subject=subject,
            role=role,
            ttl_seconds=int(duration(ttl).total_seconds()),
        )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]cannot issue a token:[/red] {exc}")
        raise typer.Exit(2) from None
    out.print(token, soft_wrap=True)


@jwt_app.command("rotate")
def jwt_rotate(data_dir: DataDir = "") -> None:
    """Create and publish a new signing key; tokens signed by older keys stay valid
    until those keys are retired."""
    from fleetd.services import jwt

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    key = jwt.new_signing_key()
    with_pool(settings, lambda pool: jwt.publish_key(pool, key))
    jwt.save_signing_key(settings.paths.root, key)
    console.print(f"new signing key {key.kid}")


@jwt_app.command("retire")
def jwt_retire(kid: str, data_dir: DataDir = "") -> None:
    """Retire a signing key: tokens it signed stop being accepted within 30 s."""
    from fleetd.services import jwt

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    if not with_pool(settings, lambda pool: jwt.retire_key(pool, kid)):
        console.print(f"[yellow]no active key {kid}[/yellow]")
        raise typer.Exit(1)
    console.print(f"retired {kid}")


KeysDir = Annotated[
    str,
    typer.Option("--keys-dir", help="Where the offline TUF keys are (default <data>/tuf/offline)."),
]


def _tuf_run(data_dir: str, keys_dir: str, work: Callable[..., Awaitable[T]]) -> T:
    """Run ``work(pool, key_dirs)``; refusals (missing keys, no repository, a threshold
    that cannot be met) become one line on stderr and exit status 1."""
    from pathlib import Path

    from fleetd.services.tuf_repo import KeyDirs, MissingKeys

    settings = load_settings(FLEETD_DATA_DIR=data_dir)
    dirs = KeyDirs.under(settings.paths.root, Path(keys_dir) if keys_dir else None)
    try:
        return with_pool(settings, lambda pool: work(pool, dirs))
    except (MissingKeys, ValueError, RuntimeError) as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from None


@tuf_app.command("status")
def tuf_status(data_dir: DataDir = "", keys_dir: KeysDir = "") -> None:
    """Each role's version, expiry, threshold and how many of its keys this node holds."""
    from rich.table import Table

    from fleetd.services.tuf_repo import admin

    rows = _tuf_run(data_dir, keys_dir, admin.status)
    table = Table("role", "version", "expires", "threshold", "keys here", "note")
    for r in rows:
        table.add_row(
            r.role,
            str(r.version),
            r.expires.isoformat(timespec="seconds"),
            f"{r.threshold} of {len(r.keyids)}",
            str(r.keys_here),
            r.warning,
        )
    out.print(table)


def _print_rotation(rotation: Rotation) -> None:
    for role, version in rotation.published:
        console.print(f"published {version}.{role}.json")
    for role, keyid in rotation.retired:
        console.print(f"retired {role} key {keyid[:16]}… (in tuf/offline/retired: destroy it)")


@tuf_app.command("rotate-root")
def tuf_rotate_root(
    keys: Annotated[
        int | None, typer.Option(min=1, max=16, help="New root keys (default: as many as now).")
    ] = None,
    threshold: Annotated[
        int | None, typer.Option(min=1, max=16, help="New root threshold.")
    ] = None,
    keep_keys: Annotated[
        bool, typer.Option(help="Re-sign with the same keys (renew the expiry).")
    ] = False,
    online: Annotated[
        bool, typer.Option(help="Also replace the snapshot and timestamp keys.")
    ] = False,
    data_dir: DataDir = "",
    keys_dir: KeysDir = "",
) -> None:
    """Publish the next root, signed by the current root keys and the new ones."""
    from fleetd.services.tuf_repo import admin

    rotation = _tuf_run(
        data_dir,
        keys_dir,
        lambda pool, dirs: admin.rotate_root(
            pool, dirs, keys=keys, threshold=threshold, keep_keys=keep_keys, online=online
        ),
    )
    _print_rotation(rotation)


@tuf_app.command("rotate-targets")
def tuf_rotate_targets(
    keep_keys: Annotated[
        bool, typer.Option(help="Re-sign with the same key (renew the expiry; no new root).")
    ] = False,
    artifacts: Annotated[bool, typer.Option(help="Also replace the online artifacts key.")] = False,
    data_dir: DataDir = "",
    keys_dir: KeysDir = "",
) -> None:
    """Publish the next top-level targets (a new key means a new root, too)."""
    from fleetd.services.tuf_repo import admin

    rotation = _tuf_run(
        data_dir,
        keys_dir,
        lambda pool, dirs: admin.rotate_targets(
            pool, dirs, keep_keys=keep_keys, artifacts=artifacts
        ),
    )
    _print_rotation(rotation)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def agent(ctx: typer.Context) -> None:
    """Run the device agent (same as ``fleetd-agent``; ``fleetd agent --help`` for options)."""
    from agent.main import main as agent_main

    raise typer.Exit(agent_main(list(ctx.args)))


# The operator's API verbs (through the control API, with the caller's credentials).
app.command()(analytics.metrics)
app.command()(analytics.health)
app.command()(analytics.export)


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()
