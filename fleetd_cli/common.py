"""What every ``fleetd`` command shares: its consoles, settings, option types and the way
it reaches the deployment's storage.

Commands (fleetd_cli/main.py and the sub-apps beside it, such as fleetd_cli/logs.py)
import from here and never from each other, so the command modules form no cycle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from fleetd.settings import ConfigError, Settings
from fleetd.storage import redis_client
from fleetd.storage.embedded import storage_urls
from fleetd.storage.postgres import connect
from fleetd.storage.types import Pool, Redis

T = TypeVar("T")

console = Console(stderr=True)
"""Messages for the operator (stderr)."""
out = Console()
"""A command's result (stdout), what a script would capture."""

DataDir = Annotated[
    str, typer.Option("--data-dir", help="Data directory (FLEETD_DATA_DIR, default ./.fleetd).")
]

_DURATION = re.compile(r"^(\d+)([smhd])$")


def load_settings(**overrides: str) -> Settings:
    """The deployment's settings: ``FLEETD_*`` from the environment, with the non-empty
    ``overrides`` (command-line options) on top; a configuration error exits with 2."""
    env = dict(os.environ)
    env.update({k: v for k, v in overrides.items() if v})
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def duration(text: str) -> dt.timedelta:
    """``30s``, ``15m``, ``24h``, ``7d``: a number and one unit; else BadParameter."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r}: use a number and s, m, h or d, e.g. 24h")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return dt.timedelta(**{unit: int(match[1])})


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """An ISO 8601 time (UTC when it has no offset) or a duration ago (``90m``, ``2h``)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - duration(text)
        except typer.BadParameter:
            raise typer.BadParameter(
                f"{text!r}: use an ISO 8601 time (2025-01-31T08:00:00Z) or a duration ago "
                "(30m, 2h, 1d)"
            ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def with_pool(settings: Settings, work: Callable[[Pool], Awaitable[T]]) -> T:
    """Run ``work`` against the deployment's database (embedded one started if needed)."""

    async def run(database_url: str) -> T:
        pool = await connect(database_url, max_size=1)
        try:
            return await work(pool)
        finally:
            await pool.close()

    with storage_urls(settings, need_redis=False) as s:
        return asyncio.run(run(s.database_url or ""))


def with_storage(settings: Settings, work: Callable[[Pool, Redis], Awaitable[T]]) -> T:
    """Run ``work`` against the deployment's PostgreSQL and Redis (embedded ones started
    if needed)."""

    async def run(database_url: str, redis_url: str) -> T:
        pool = await connect(database_url, max_size=1)
        redis = redis_client.connect(redis_url)
        try:
            return await work(pool, redis)
        finally:
            await redis_client.close(redis)
            await pool.close()

    with storage_urls(settings) as s:
        return asyncio.run(run(s.database_url or "", s.redis_url or ""))
