"""ListUpdates' filter subset and order_by (pure), run against PostgreSQL for meaning."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from fleetd.storage.ordering import InvalidOrderBy
from fleetd.storage.update_listing import InvalidFilter, compile_filter, parse_order

NOW = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)


def test_default_order_is_newest_first_with_the_id_as_tie_breaker() -> None:
    order = parse_order("")
    assert order.order_by_sql() == ("created_at DESC NULLS LAST, update_id ASC NULLS LAST")
    assert parse_order("name, version desc").canonical == "name asc,version desc,id asc"


@pytest.mark.parametrize("text", ["cpu_usage", "name sideways", "name, name", "id"])
def test_bad_orderings_are_refused(text: str) -> None:
    with pytest.raises(InvalidOrderBy):
        parse_order(text)


def test_values_are_bind_parameters() -> None:
    where = compile_filter('name:"x\' OR 1=1 --" AND metadata.k:v*', now=NOW, first=3)
    assert "OR 1=1" not in where.sql
    assert where.params == ["x' OR 1=1 --", "k", "v%"]
    assert "$3::text" in where.sql and "$5::text" in where.sql


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("status:online", "unknown field 'status'"),
        ("name:a OR name:b", "expected AND"),
        ("name:a name:b", "expected AND"),
        ("(name:a)", "expected field:value"),
        ("name:>a", "name takes no >"),
        ("created_at:yesterday", "is not a date"),
        ("created_at:1,2", "takes one value"),
        ("name:a AND " * 16 + "name:a", "at most 16 terms"),
        ("x" * 1100, "longer than 1024"),
    ],
)
def test_filters_outside_the_subset_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        compile_filter(text, now=NOW)


ROWS = [
    ("u1", "firmware", "1.0.0", {"channel": "stable"}, NOW - dt.timedelta(days=10)),
    ("u2", "firmware", "2.0.0", {"channel": "beta"}, NOW - dt.timedelta(hours=1)),
    ("u3", "Model X_1", "1.0.0", {}, NOW - dt.timedelta(days=2)),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["u1", "u2", "u3"]),
        ("name:firmware", ["u1", "u2"]),
        ("name:firm*", ["u1", "u2"]),
        ("name:*X_1", ["u3"]),
        ("name:*_*", ["u3"]),
        ('name:"Model X_1"', ["u3"]),
        ("version:2.0.0,1.0.0 AND NOT name:firmware", ["u3"]),
        ("metadata.channel:stable", ["u1"]),
        ("metadata.channel:*", ["u1", "u2"]),
        ("NOT metadata.channel:stable", ["u2", "u3"]),
        ("created_at:>-3d", ["u2", "u3"]),
        ("created_at:<=2025-05-31", ["u1", "u3"]),
        ("created_at:<=2025-05-30", ["u1"]),
        ("created_at:>=2025-06-01T10:30:00Z", ["u2"]),
    ],
)
async def test_filters_select_the_expected_updates(
    pool: asyncpg.Pool, text: str, expected: list[str]
) -> None:
    await pool.executemany(
        """INSERT INTO updates (update_id, name, version, strategy, metadata, created_at)
           VALUES ($1, $2, $3, '', $4, $5)""",
        ROWS,
    )
    where = compile_filter(text, now=NOW)
    found = await pool.fetch(
        f"SELECT update_id FROM updates WHERE {where.sql} ORDER BY update_id", *where.params
    )
    assert [r["update_id"] for r in found] == expected
