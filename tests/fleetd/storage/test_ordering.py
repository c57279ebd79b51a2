"""Keyset pagination over every ordering gives each device exactly once, in order,
against real PostgreSQL with NULLs and ties."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import pytest

from fleetd.storage.devices import DEVICE_COLUMNS
from fleetd.storage.ordering import InvalidOrderBy, Ordering, parse


def test_default_ordering_is_by_id() -> None:
    assert parse("").canonical == "id asc"


def test_seed_examples_parse() -> None:
    assert parse("last_seen DESC").canonical == "last_seen desc,id asc"
    assert parse("name ASC").canonical == "name asc,id asc"
    assert parse("cpu_usage DESC, memory_usage DESC").canonical == (
        "cpu_usage desc,memory_usage desc,id asc"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("password DESC", "unknown field"),
        ("name; DROP TABLE devices", "cannot parse"),
        ("name DESC DESC", "cannot parse"),
        ("name, name", "twice"),
        ("name, type, version, status, cpu_usage", "at most"),
    ],
)
def test_bad_order_by_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(InvalidOrderBy, match=fragment):
        parse(text)


async def _fill(pool: asyncpg.Pool, n: int, seed: int) -> None:
    rng = random.Random(seed)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        seen = None if rng.random() < 0.2 else base + dt.timedelta(seconds=rng.randint(0, 5))
        cpu = None if seen is None else float(rng.choice([10, 50, 50, 90]))
        rows.append(
            (
                f"d{i:03d}",
                "default",
                rng.choice(["a", "b", "b"]),
                rng.choice(["rpi", "esp32"]),
                seen,
                cpu,
                cpu,
            )
        )
    await pool.executemany(
        """INSERT INTO devices (device_id, fleet, name, device_type, last_seen, cpu_usage,
                                memory_usage) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        rows,
    )


async def _pages(pool: asyncpg.Pool, ordering: Ordering, size: int) -> list[str]:
    seen: list[str] = []
    position: list[object] | None = None
    while True:
        where, params = ("TRUE", []) if position is None else ordering.after_sql(position, 2)
        rows = await pool.fetch(
            f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {where} "
            f"ORDER BY {ordering.order_by_sql()} LIMIT $1",
            size,
            *params,
        )
        if not rows:
            return seen
        seen.extend(r["device_id"] for r in rows)
        position = ordering.position(rows[-1])


@pytest.mark.parametrize(
    "order_by",
    [
        "",
        "last_seen DESC",
        "last_seen ASC",
        "name ASC",
        "cpu_usage DESC, memory_usage DESC",
        "type DESC, last_seen ASC, name DESC",
        "id DESC",
    ],
)
async def test_pages_cover_every_device_once_in_order(pool: asyncpg.Pool, order_by: str) -> None:
    await _fill(pool, 57, seed=len(order_by))
    ordering = parse(order_by)
    everything = [
        r["device_id"]
        for r in await pool.fetch(
            f"SELECT device_id FROM devices ORDER BY {ordering.order_by_sql()}"
        )
    ]
    for size in (1, 4, 10, 100):
        assert await _pages(pool, ordering, size) == everything
