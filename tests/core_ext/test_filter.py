"""Filter expressions: the compiled and the reference implementation, the same cases.

Every test taking ``core`` runs twice (see conftest.py). Expected rows are written out by
hand for the example fleet; the differential tests at the end check random expressions
over random fleets against each other and against PostgreSQL running the generated SQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import threading
from array import array
from collections.abc import Coroutine, Iterator, Sequence
from types import ModuleType
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core_ext
import core_ext.compiled
import core_ext.reference
from tests.support.filters import (
    NOW,
    Record,
    device,
    expressions,
    fleets,
    load_fleet,
    sql_rows,
)

T = TypeVar("T")
IMPLEMENTATIONS = (core_ext.reference, core_ext.compiled)
NOW_S = NOW.timestamp()

# Hypothesis with the function-scoped `core` fixture: the fixture is a stateless module.
fuzz_settings = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FLEET: list[Record] = [
    device(
        0,
        name="kitchen pi",
        type="raspberry-pi",
        status="online",
        cpu_usage=95.0,
        memory_usage=95.5,
        disk_usage=10.0,
        uptime_seconds=3600,
        last_seen=dt.datetime(2024, 6, 1, 11, 55, tzinfo=dt.UTC),
        metadata={"location": "kitchen", "floor": "1"},
        tags=["prod", "eu-west"],
    ),
    device(
        1,
        name="garage",
        type="esp32",
        status="offline",
        cpu_usage=20.0,
        memory_usage=30.0,
        uptime_seconds=59,
        last_seen=dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.UTC),
        metadata={"location": "garage"},
        tags=["dev"],
    ),
    device(
        2,
        name="50%_off\\sale",
        type="raspberry-pi",
        status="maintenance",
        cpu_usage=85.0,
        memory_usage=91.0,
        last_seen=dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        tags=["prod"],
    ),
    # Never heartbeated: no stats, never seen.
    device(3, name="new", type="arduino", status="unknown"),
]


def rows(core: ModuleType, expression: str, fleet: Sequence[Record] = FLEET) -> list[int]:
    """The matching rows by evaluate(); asserts matches() agrees record by record."""
    f = core.compile_filter(expression, now=NOW_S)
    got = list(f.evaluate(core.FleetSnapshot.from_records(fleet)))
    assert got == [i for i, r in enumerate(fleet) if f.matches(r)], expression
    return got


def error(core: ModuleType, expression: str) -> tuple[str, int]:
    with pytest.raises(core.FilterError) as info:
        core.compile_filter(expression, now=NOW_S)
    position: int = info.value.position
    assert isinstance(info.value, ValueError)
    return str(info.value), position


# ----------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("status:online", [0]),
        ("type:raspberry-pi,esp32", [0, 1, 2]),
        ("last_seen:>2024-01-01", [0, 2]),
        ("cpu_usage:>80 AND memory_usage:>90", [0, 2]),
        ("NOT status:offline", [0, 2, 3]),
        ("type:raspberry-pi AND status:online", [0]),
    ],
)
def test_seed_examples_select_the_documented_devices(
    core: ModuleType, expression: str, expected: list[int]
) -> None:
    assert rows(core, expression) == expected


@pytest.mark.parametrize("expression", ["", "   ", "\t\n"])
def test_empty_expression_matches_every_device_and_gives_true(
    core: ModuleType, expression: str
) -> None:
    assert rows(core, expression) == [0, 1, 2, 3]
    assert core.compile_filter(expression).to_sql() == ("TRUE", [])


def test_not_binds_tighter_than_and_which_binds_tighter_than_or(core: ModuleType) -> None:
    # NOT a AND b OR c  ==  ((NOT a) AND b) OR c
    expression = "NOT type:esp32 AND status:online OR type:arduino"
    assert rows(core, expression) == [0, 3]
    assert rows(core, "NOT (type:esp32 AND status:online OR type:arduino)") == [0, 1, 2]
    assert rows(core, "NOT type:esp32 AND (status:online OR type:arduino)") == [0, 3]


def test_parentheses_nest_and_keywords_need_no_spaces_around_them(core: ModuleType) -> None:
    assert rows(core, "((type:esp32)OR(NOT(status:online)AND tags:prod))") == [1, 2]


def test_juxtaposed_terms_are_an_error_not_an_implicit_and(core: ModuleType) -> None:
    assert error(core, "status:online type:esp32") == (
        "expected AND, OR or end of expression",
        14,
    )


def test_lower_case_keywords_are_not_keywords(core: ModuleType) -> None:
    assert error(core, "status:online and type:esp32") == (
        "expected AND, OR or end of expression",
        14,
    )


def test_value_lists_match_any_value(core: ModuleType) -> None:
    assert rows(core, "status:online,maintenance") == [0, 2]
    assert rows(core, "cpu_usage:20,85") == [1, 2]
    assert rows(core, "tags:dev,eu-west") == [0, 1]


def test_status_is_case_insensitive_and_strings_are_case_sensitive(core: ModuleType) -> None:
    assert rows(core, "status:ONLINE") == rows(core, "status:Online") == [0]
    assert rows(core, "type:ESP32") == []
    assert rows(core, "name:Garage") == []


def test_ordering_operators_on_numbers(core: ModuleType) -> None:
    assert rows(core, "cpu_usage:>85") == [0]
    assert rows(core, "cpu_usage:>=85") == [0, 2]
    assert rows(core, "cpu_usage:<85") == [1]
    assert rows(core, "cpu_usage:<=85") == [1, 2]
    assert rows(core, "cpu_usage:85") == [2]
    assert rows(core, "uptime_seconds:>=60") == [0]
    assert rows(core, "cpu_usage:>8.5e1") == [0]
    assert rows(core, "memory_usage:>-1.5") == [0, 1, 2]


def test_timestamps_accept_dates_rfc3339_and_offsets(core: ModuleType) -> None:
    assert rows(core, "last_seen:<2024-01-01") == [1]
    assert rows(core, "last_seen:>=2024-03-01T00:00:00Z") == [0, 2]
    assert rows(core, "last_seen:2024-03-01T00:00:00Z") == [2]
    assert rows(core, "last_seen:2024-03-01T01:00:00+01:00") == [2]
    assert rows(core, "last_seen:2024-03-01t00:00:00.000000z") == [2]
    assert rows(core, 'last_seen:"2024-03-01 00:00:00Z"') == [2]
    assert rows(core, "last_seen:>2024-02-29T23:59:59.9999999-00:00") == [0, 2]


def test_relative_times_count_back_from_now(core: ModuleType) -> None:
    # Device 0 was seen at 11:55, NOW is 12:00.
    assert rows(core, "last_seen:>-10m") == [0]
    assert rows(core, "last_seen:>-300s") == []
    assert rows(core, "last_seen:>=-300s") == [0]
    assert rows(core, "last_seen:<-1h") == [1, 2]
    assert rows(core, "last_seen:>-7d") == [0]
    assert rows(core, "last_seen:>-2h") == [0]
    _, params = core.compile_filter("last_seen:<-10m", now=NOW_S).to_sql()
    assert params == [NOW - dt.timedelta(minutes=10)]


def test_relative_times_default_to_the_current_time(core: ModuleType) -> None:
    _, (bound,) = core.compile_filter("last_seen:>-1m").to_sql()
    assert isinstance(bound, dt.datetime)
    assert abs(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1) - bound) < dt.timedelta(seconds=30)


def test_quoted_values_hold_spaces_commas_colons_parentheses_and_escapes(
    core: ModuleType,
) -> None:
    assert rows(core, 'name:"kitchen pi"') == [0]
    fleet = [device(0, name='a, b: (c) "d" \\e')]
    assert rows(core, 'name:"a, b: (c) \\"d\\" \\\\e"', fleet) == [0]
    assert rows(core, 'name:"a, b: (c) \\"d\\" \\\\e",x', fleet) == [0]


def test_wildcards_match_prefix_suffix_and_contains(core: ModuleType) -> None:
    assert rows(core, "name:kit*") == [0]
    assert rows(core, "name:*age") == [1]
    assert rows(core, "name:*ch*") == [0]
    assert rows(core, 'name:"kitchen *"') == [0]
    assert rows(core, "type:rasp*,*32") == [0, 1, 2]
    assert rows(core, "name:*") == [0, 1, 2, 3]
    assert rows(core, "tags:eu*") == [0]
    assert rows(core, "metadata.location:*age") == [1]


def test_wildcard_values_with_like_metacharacters_match_literally(core: ModuleType) -> None:
    assert rows(core, "name:50%*") == [2]
    assert rows(core, "name:*%_off*") == [2]
    assert rows(core, "name:*_*") == [2]
    assert rows(core, "name:%*") == []
    assert rows(core, "name:*\\sale") == [2]
    fleet = [device(0, name="a*b"), device(1, name="ab")]
    assert rows(core, 'name:"a\\*b"', fleet) == [0]
    assert rows(core, 'name:"a\\**"', fleet) == [0]


def test_star_inside_a_value_is_an_error(core: ModuleType) -> None:
    message, position = error(core, "name:a*b")
    assert message.startswith("'*' is only allowed at the start or end of a value")
    assert position == 6


def test_metadata_keys_and_missing_keys(core: ModuleType) -> None:
    assert rows(core, "metadata.location:kitchen") == [0]
    assert rows(core, "metadata.floor:1") == [0]
    assert rows(core, "NOT metadata.floor:1") == [1, 2, 3]
    assert rows(core, "metadata.nothing:*") == []
    assert rows(core, "NOT metadata.nothing:*") == [0, 1, 2, 3]
    assert rows(core, "metadata.floor:*") == [0]


def test_tags_match_when_any_tag_matches(core: ModuleType) -> None:
    assert rows(core, "tags:prod") == [0, 2]
    assert rows(core, "NOT tags:prod") == [1, 3]
    assert rows(core, "tags:*") == [0, 1, 2]


# ----------------------------------------------------------------------------- NULLs


def test_comparisons_with_null_are_false_and_not_includes_devices_without_stats(
    core: ModuleType,
) -> None:
    assert rows(core, "cpu_usage:>80") == [0, 2]
    assert rows(core, "NOT cpu_usage:>80") == [1, 3]
    assert rows(core, "cpu_usage:<=80") == [1]
    assert rows(core, "NOT last_seen:>2000-01-01") == [3]
    assert rows(core, "NOT (cpu_usage:>80 OR cpu_usage:<=80)") == [3]


def test_nan_and_none_in_records_are_null(core: ModuleType) -> None:
    f = core.compile_filter("NOT cpu_usage:<1000")
    assert f.matches({"cpu_usage": math.nan})
    assert f.matches({"cpu_usage": None})
    assert f.matches({})
    assert not f.matches({"cpu_usage": 5})


def test_missing_snapshot_columns_are_null(core: ModuleType) -> None:
    snapshot = core.FleetSnapshot(3)
    assert len(snapshot) == 3
    assert list(core.compile_filter("name:*").evaluate(snapshot)) == []
    assert list(core.compile_filter("NOT cpu_usage:>1").evaluate(snapshot)) == [0, 1, 2]
    assert list(core.compile_filter("tags:*").evaluate(snapshot)) == []
    assert list(core.compile_filter("").evaluate(snapshot)) == [0, 1, 2]


def test_null_codes_in_string_columns_never_match(core: ModuleType) -> None:
    null = core.FleetSnapshot.NULL_CODE
    snapshot = core.FleetSnapshot(3, strings={"name": (["a", "b"], array("I", [0, null, 1]))})
    assert list(core.compile_filter("name:a,b").evaluate(snapshot)) == [0, 2]
    assert list(core.compile_filter("NOT name:*").evaluate(snapshot)) == [1]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("status:", "expected a value", 7),
        ("status: online", "expected a value", 7),
        ("foo:bar", "unknown field 'foo'", 0),
        ("type:a AND bogus:1", "unknown field 'bogus'", 11),
        ("metadata:x", "unknown field 'metadata'", 0),
        ("metadata.:x", "metadata key must be 1 to 64 characters", 9),
        ("metadata." + "k" * 65 + ":x", "metadata key must be 1 to 64 characters", 9),
        ("status:bogus", "unknown status; expected one of unknown, online", 7),
        ("status:online,", "expected a value", 14),
        ("cpu_usage:>abc", "invalid number for field 'cpu_usage'", 11),
        ("cpu_usage:80%", "invalid number for field 'cpu_usage'", 10),
        ("cpu_usage:inf", "invalid number for field 'cpu_usage'", 10),
        ("cpu_usage:1e999", "number out of range for field 'cpu_usage'", 10),
        ("cpu_usage:8*", "wildcards are not supported for field 'cpu_usage'", 10),
        ("last_seen:>yesterday", "invalid timestamp for field 'last_seen'", 11),
        ("last_seen:2024-02-30", "invalid timestamp for field 'last_seen'", 10),
        ("last_seen:2024-01-01T25:00:00Z", "invalid timestamp for field 'last_seen'", 10),
        ("last_seen:2024-01-01T10:00:00", "invalid timestamp for field 'last_seen'", 10),
        ("last_seen:-10y", "invalid timestamp for field 'last_seen'", 10),
        ("last_seen:<-9999999d", "timestamp out of range for field 'last_seen'", 11),
        ("name:>a", "operator '>' is not supported for field 'name'", 5),
        ("status:<=online", "operator '<=' is not supported for field 'status'", 7),
        ("tags:>=x", "operator '>=' is not supported for field 'tags'", 5),
        ("status", "expected ':' after field name 'status'", 6),
        ("cpu_usage>80", "expected ':' after field name 'cpu_usage'", 9),
        ("AND status:online", "expected a field name, '(' or NOT", 0),
        ("status:online AND", "expected a field name, '(' or NOT", 17),
        ("status:online OR OR type:a", "expected a field name, '(' or NOT", 17),
        ("()", "expected a field name, '(' or NOT", 1),
        ("(status:online", "expected AND, OR or ')'", 14),
        ("(status:online type:a)", "expected AND, OR or ')'", 15),
        ("status:online)", "expected AND, OR or end of expression", 13),
        ('name:"abc', "unterminated quoted value", 5),
        ('name:"abc\\', "unterminated quoted value", 5),
        ('name:"a\\nb"', "invalid escape in quoted value", 7),
        ('name:"a"b', "expected ',', ')', whitespace or end of expression after a value", 8),
        ('name:a"b"', "expected ',', ')', whitespace or end of expression after a value", 6),
        ("name:a(b)", "expected ',', ')', whitespace or end of expression after a value", 6),
        ("é:x", "expected a field name, '(' or NOT", 0),
    ],
)
def test_errors_name_what_was_expected_and_where(
    core: ModuleType, expression: str, message: str, position: int
) -> None:
    got_message, got_position = error(core, expression)
    assert got_message.startswith(message)
    assert got_position == position


def test_error_positions_count_characters_not_bytes(core: ModuleType) -> None:
    assert error(core, 'name:"ééé" foo')[1] == 11


@pytest.mark.parametrize(("text", "position"), [("name:a\0", 6), ("\0", 0), ("name:\ud800", 5)])
def test_nul_and_unpaired_surrogates_are_refused(
    core: ModuleType, text: str, position: int
) -> None:
    message, got = error(core, text)
    assert message.startswith("invalid character")
    assert got == position


@pytest.mark.parametrize("now", [math.nan, math.inf, -1e20, 1e13])
def test_now_must_be_a_finite_time_in_years_1_to_9999(core: ModuleType, now: float) -> None:
    with pytest.raises(ValueError, match="now must be"):
        core.compile_filter("status:online", now=now)


def test_non_str_expressions_and_non_numeric_now_are_type_errors(core: ModuleType) -> None:
    with pytest.raises(TypeError):
        core.compile_filter(b"status:online")
    with pytest.raises(TypeError):
        core.compile_filter("status:online", now="0")


# ----------------------------------------------------------------------------- limits


def test_expression_length_limit(core: ModuleType) -> None:
    assert core.MAX_FILTER_LENGTH == 4096
    padded = "name:" + "a" * (4096 - 5)
    assert core.compile_filter(padded).expression == padded
    assert error(core, padded + "a") == ("expression too long: at most 4096 characters", 4096)


def test_nesting_depth_limit_counts_parentheses_and_not(core: ModuleType) -> None:
    assert core.MAX_FILTER_DEPTH == 32
    core.compile_filter("(" * 16 + "NOT " * 16 + "status:online" + ")" * 16)
    message, position = error(core, "(" * 16 + "NOT " * 17 + "status:online" + ")" * 16)
    assert message.startswith("nesting too deep")
    assert position == 16 + 4 * 16
    assert error(core, "(" * 40 + "x:y")[1] == 32


def test_term_count_limit(core: ModuleType) -> None:
    assert core.MAX_FILTER_TERMS == 64
    terms = ["status:online"] * 64
    core.compile_filter(" OR ".join(terms))
    expression = " OR ".join([*terms, "type:a"])
    assert error(core, expression) == ("too many terms: at most 64", expression.index("type:a"))


def test_values_per_term_limit(core: ModuleType) -> None:
    assert core.MAX_FILTER_VALUES == 100
    core.compile_filter("type:" + ",".join(["a"] * 100))
    expression = "type:" + ",".join(["a"] * 100) + ",b"
    assert error(core, expression) == (
        "too many values in one term: at most 100",
        len(expression) - 1,
    )


# ----------------------------------------------------------------------------- SQL


def test_sql_numbers_placeholders_from_first_param(core: ModuleType) -> None:
    f = core.compile_filter("type:raspberry-pi AND status:online AND cpu_usage:>80")
    assert f.to_sql(3) == (
        "(device_type = $3::text AND status = $4::text "
        "AND (cpu_usage IS NOT NULL AND cpu_usage > $5::float8))",
        ["raspberry-pi", "online", 80.0],
    )
    for bad in (0, -1, 65536, 2**80):
        with pytest.raises(ValueError, match="first_param must be from 1 to 65535"):
            f.to_sql(bad)
    with pytest.raises(TypeError):
        f.to_sql(2.0)


def test_sql_bind_values_have_the_types_asyncpg_expects(core: ModuleType) -> None:
    f = core.compile_filter(
        "type:a,b AND last_seen:>2024-01-01 AND uptime_seconds:>5 AND name:x*", now=NOW_S
    )
    sql, params = f.to_sql()
    assert params == [
        ["a", "b"],
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        5.0,
        "x%",
    ]
    assert params[1].tzinfo is not None and params[1].utcoffset() == dt.timedelta(0)
    assert "uptime_seconds::float8 > $3::float8" in sql


NASTY = [
    "'; DROP TABLE devices; --",
    "' OR '1'='1",
    "$1",
    "a\\' OR 1=1 --",
    "x) OR (1=1",
    "\u02bc OR 1=1 \u2013\u2013",  # modifier apostrophe, en dashes
    "%",
    "_",
    "\\",
    "; SELECT pg_sleep(10)",
    "é\u202e\ufeff",
]
_PLACEHOLDER = re.compile(r"\$\d+")


@pytest.mark.parametrize("value", NASTY)
def test_injection_attempts_never_change_the_sql_shape(core: ModuleType, value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*")
    for template in ('name:"{}"', 'name:"{}*"', 'metadata.loc:"*{}*"', 'tags:"{}",x'):
        benign = core.compile_filter(template.format("benign")).to_sql()
        hostile = core.compile_filter(template.format(escaped)).to_sql()
        assert hostile[0] == benign[0]
        assert value not in hostile[0] or value in benign[0]
        assert len(hostile[1]) == len(benign[1])


def test_sql_text_holds_only_whitelisted_identifiers(core: ModuleType) -> None:
    sql, _ = core.compile_filter(
        'id:x OR name:"a b" OR type:y* OR version:1 OR agent_version:2 OR fleet:f OR '
        "status:error OR cpu_usage:1 OR memory_usage:2 OR disk_usage:3 OR uptime_seconds:4 "
        "OR last_seen:2024-01-01 OR registered_at:<-1d OR updated_at:>=2024-01-01 OR "
        "metadata.some_key:v OR tags:t,u*"
    ).to_sql()
    words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", _PLACEHOLDER.sub("", sql)))
    assert words <= {
        "device_id",
        "name",
        "device_type",
        "version",
        "agent_version",
        "fleet",
        "status",
        "cpu_usage",
        "memory_usage",
        "disk_usage",
        "uptime_seconds",
        "last_seen",
        "registered_at",
        "updated_at",
        "metadata",
        "tags",
        "text",
        "float8",
        "timestamptz",
        "ANY",
        "LIKE",
        "AND",
        "OR",
        "NOT",
        "IS",
        "NULL",
        "COALESCE",
        "false",
        "EXISTS",
        "SELECT",
        "FROM",
        "unnest",
        "AS",
        "_tag",
        "value",
        "WHERE",
    }
    assert "some_key" not in sql


async def test_injection_attempts_run_as_plain_values_in_postgresql(
    pool: asyncpg.Pool,
) -> None:
    fleet = [device(i, name=value, tags=[value]) for i, value in enumerate(NASTY)]
    async with pool.acquire() as conn:
        await load_fleet(conn, fleet)
        for implementation in IMPLEMENTATIONS:
            for i, value in enumerate(NASTY):
                escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*")
                for expression in (f'name:"{escaped}"', f'tags:"*{escaped}*"'):
                    f = implementation.compile_filter(expression)
                    sql, params = f.to_sql()
                    expected = [j for j, r in enumerate(fleet) if f.matches(r)]
                    assert i in expected
                    assert await sql_rows(conn, sql, params, fleet) == expected
        assert await conn.fetchval("SELECT count(*) FROM devices") == len(NASTY)


async def test_example_fleet_rows_agree_with_postgresql(pool: asyncpg.Pool) -> None:
    expressions_ = [
        "status:online",
        "type:raspberry-pi,esp32",
        "last_seen:>2024-01-01",
        "cpu_usage:>80 AND memory_usage:>90",
        "NOT status:offline",
        "type:raspberry-pi AND status:online",
        "NOT cpu_usage:>80",
        "name:*%_off*",
        "name:*\\sale",
        "NOT metadata.floor:*",
        "tags:eu*,dev",
        "last_seen:>-10m",
        "uptime_seconds:>=60",
        "",
    ]
    async with pool.acquire() as conn:
        await load_fleet(conn, FLEET)
        for implementation in IMPLEMENTATIONS:
            for expression in expressions_:
                f = implementation.compile_filter(expression, now=NOW_S)
                sql, params = f.to_sql(1)
                assert await sql_rows(conn, sql, params, FLEET) == rows(
                    implementation, expression
                ), expression


# ----------------------------------------------------------------------------- snapshot


def test_snapshot_from_arrays_answers_like_from_records(core: ModuleType) -> None:
    null = core.FleetSnapshot.NULL_CODE
    nan = math.nan
    snapshot = core.FleetSnapshot(
        4,
        strings={
            "type": (["raspberry-pi", "esp32", "arduino", "esp32"], array("I", [0, 3, 0, 2])),
            "status": (["online", "offline", "maintenance", "unknown"], array("I", [0, 1, 2, 3])),
            "name": (["kitchen pi", "garage", "50%_off\\sale", "new"], array("I", [0, 1, 2, 3])),
        },
        numbers={
            "cpu_usage": array("d", [95.0, 20.0, 85.0, nan]),
            "last_seen": array("d", [r["last_seen"].timestamp() for r in FLEET[:3]] + [nan]),
        },
        metadata={"location": (["kitchen", "garage"], array("I", [0, 1, null, null]))},
        tags=(["prod", "eu-west", "dev"], array("I", [0, 2, 3, 4, 4]), array("I", [0, 1, 2, 0])),
    )
    for expression in (
        "type:esp32",
        "type:esp*",
        "status:online,maintenance AND cpu_usage:>80",
        "NOT cpu_usage:>80",
        "name:*a*",
        "metadata.location:*e*",
        "tags:prod",
        "NOT tags:eu*",
        "last_seen:>2024-06-01",
    ):
        f = core.compile_filter(expression)
        assert list(f.evaluate(snapshot)) == [i for i, r in enumerate(FLEET) if f.matches(r)], (
            expression
        )


def test_evaluate_returns_ascending_uint32_rows(core: ModuleType) -> None:
    fleet = [device(i, cpu_usage=float(i % 7)) for i in range(300)]
    got = core.compile_filter("cpu_usage:>3").evaluate(core.FleetSnapshot.from_records(fleet))
    assert isinstance(got, array) and got.typecode == "I"
    assert list(got) == [i for i in range(300) if i % 7 > 3]


@pytest.mark.parametrize(
    ("kwargs", "exception", "message"),
    [
        ({"strings": {"nope": ([], array("I", [0, 0]))}}, ValueError, "unknown string column"),
        ({"strings": {"name": (["a"], array("i", [0, 0]))}}, TypeError, "array('I')"),
        ({"strings": {"name": (["a"], array("I", [0]))}}, ValueError, "has 1 rows, expected 2"),
        ({"strings": {"name": (["a"], array("I", [0, 1]))}}, ValueError, "out of range at row 1"),
        ({"strings": {"name": ("ab", array("I", [0, 0]))}}, TypeError, "list of str"),
        ({"strings": {"name": [["a"], array("I", [0, 0])]}}, TypeError, "(dictionary, codes)"),
        ({"numbers": {"cpu_usage": array("f", [0, 0])}}, TypeError, "array('d')"),
        ({"numbers": {"name": array("d", [0, 0])}}, ValueError, "unknown number column"),
        ({"numbers": {"cpu_usage": array("d", [0])}}, ValueError, "has 1 rows, expected 2"),
        ({"metadata": {"k": (["a"], array("I", [0, 2]))}}, ValueError, "out of range at row 1"),
        ({"tags": ([], array("I", [0, 0]), array("I"))}, ValueError, "expected 3"),
        ({"tags": ([], array("I", [1, 1, 1]), array("I"))}, ValueError, "from 0 to len(codes)"),
        ({"tags": (["a"], array("I", [0, 1, 0]), array("I"))}, ValueError, "decrease at row 1"),
        ({"tags": (["a"], array("I", [0, 2, 1]), array("I", [0]))}, ValueError, "at row 1"),
        ({"tags": (["a"], array("I", [0, 1, 1]), array("I", [1]))}, ValueError, "out of range"),
        ({"tags": (["a"], array("I", [0, 1]))}, TypeError, "(dictionary, offsets, codes)"),
    ],
)
def test_snapshot_refuses_inconsistent_columns(
    core: ModuleType, kwargs: dict[str, Any], exception: type[Exception], message: str
) -> None:
    with pytest.raises(exception, match=re.escape(message)):
        core.FleetSnapshot(2, **kwargs)


def test_snapshot_refuses_decreasing_tag_offsets(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="decrease at row 1"):
        core.FleetSnapshot(3, tags=(["a"], array("I", [0, 2, 1, 3]), array("I", [0, 0, 0])))


@pytest.mark.parametrize("size", [-1, 2**32, 1.5])
def test_snapshot_size_must_be_a_uint32(core: ModuleType, size: object) -> None:
    with pytest.raises(ValueError, match="size must be"):
        core.FleetSnapshot(size)


@pytest.mark.parametrize(
    ("expression", "record", "message"),
    [
        ("name:x", {"name": 5}, "record field 'name' must be str or None, not int"),
        ("cpu_usage:>1", {"cpu_usage": "90"}, "must be float, int or None, not str"),
        ("last_seen:>-1d", {"last_seen": "2024"}, "must be datetime, float, int or None"),
        ("metadata.k:x", {"metadata": ["k"]}, "a mapping of str to str, or None, not list"),
        ("metadata.k:x", {"metadata": {"k": 1}}, "'metadata.k' must be str or None, not int"),
        ("tags:x", {"tags": "x"}, "a list or tuple of str, or None, not str"),
        ("tags:x", {"tags": ["x", 1]}, "a list or tuple of str, or None, not int"),
    ],
)
def test_records_with_wrong_value_types_are_type_errors(
    core: ModuleType, expression: str, record: Record, message: str
) -> None:
    f = core.compile_filter(expression)
    with pytest.raises(TypeError, match=re.escape(message)):
        f.matches(record)
    with pytest.raises(TypeError, match=re.escape(message)):
        core.FleetSnapshot.from_records([device(0, **record)])


def test_records_accept_datetimes_naive_as_utc_and_unix_seconds(core: ModuleType) -> None:
    f = core.compile_filter("last_seen:2024-01-01T00:00:00.5Z")
    moment = dt.datetime(2024, 1, 1, 0, 0, 0, 500000)
    assert f.matches({"last_seen": moment})
    assert f.matches({"last_seen": moment.replace(tzinfo=dt.UTC)})
    assert f.matches({"last_seen": moment.replace(tzinfo=dt.UTC).astimezone()})
    assert f.matches({"last_seen": 1704067200.5})
    assert not f.matches({"last_seen": 1704067200})
    assert f.matches({"last_seen": moment.replace(tzinfo=dt.UTC).timestamp(), "tags": ()})


def test_matches_reads_only_the_fields_the_filter_names(core: ModuleType) -> None:
    f = core.compile_filter("status:online")
    assert f.matches({"status": "online", "cpu_usage": "not checked"})


def test_the_seam_exports_the_filter_api() -> None:
    implementation = core_ext.compiled if core_ext.IMPLEMENTATION == "compiled" else None
    f = core_ext.compile_filter("status:online")
    assert f.matches({"status": "online"})
    assert issubclass(core_ext.FilterError, ValueError)
    if implementation is not None:
        assert core_ext.Filter is implementation.Filter


# ----------------------------------------------------------------------------- differential


def test_random_text_gives_the_same_error_or_the_same_sql_from_both() -> None:
    @fuzz_settings
    @given(
        st.lists(
            st.sampled_from(
                [
                    "status",
                    "type",
                    "name",
                    "cpu_usage",
                    "last_seen",
                    "metadata.k",
                    "tags",
                    "metadata.",
                    ":",
                    ">",
                    "<",
                    ">=",
                    "<=",
                    "=",
                    ",",
                    "(",
                    ")",
                    '"',
                    "\\",
                    "*",
                    " ",
                    "AND",
                    "OR",
                    "NOT",
                    "online",
                    "esp32",
                    "80",
                    "-1.5e3",
                    "2024-01-01",
                    "T10:00:00Z",
                    "-10m",
                    "é",
                    "\0",
                    "x",
                    "1",
                ]
            ),
            max_size=16,
        ).map("".join)
        | st.text(max_size=40)
    )
    def check(text: str) -> None:
        outcomes = []
        for implementation in IMPLEMENTATIONS:
            try:
                outcomes.append(implementation.compile_filter(text, now=NOW_S).to_sql(2))
            except implementation.FilterError as e:
                outcomes.append((str(e), e.position))
        assert outcomes[0] == outcomes[1], text

    check()


class _Postgres:
    """One asyncpg connection on a private event loop thread, usable from sync code
    (hypothesis runs synchronously and shrinks across examples)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.conn: asyncpg.Connection = self.run(asyncpg.connect(url))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.run(self.conn.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def postgres(database_url: str) -> Iterator[_Postgres]:
    pg = _Postgres(database_url)
    yield pg
    pg.close()


def test_random_filters_over_random_fleets_agree_everywhere(postgres: _Postgres) -> None:
    """reference.evaluate == compiled.evaluate == matches() per record (both) == the SQL
    run by PostgreSQL over the same fleet; SQL text and bind values are identical."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(fleets(), st.lists(expressions(), min_size=1, max_size=4))
    def check(fleet: list[Record], texts: list[str]) -> None:
        postgres.run(load_fleet(postgres.conn, fleet))
        snapshots = [impl.FleetSnapshot.from_records(fleet) for impl in IMPLEMENTATIONS]
        for text in texts:
            filters = [impl.compile_filter(text, now=NOW_S) for impl in IMPLEMENTATIONS]
            sqls = [f.to_sql() for f in filters]
            assert sqls[0] == sqls[1], text
            expected = list(filters[0].evaluate(snapshots[0]))
            for f, snapshot in zip(filters, snapshots, strict=True):
                assert [i for i, r in enumerate(fleet) if f.matches(r)] == expected, text
                assert list(f.evaluate(snapshot)) == expected, text
            sql, params = sqls[0]
            assert postgres.run(sql_rows(postgres.conn, sql, params, fleet)) == expected, (
                text,
                sql,
                params,
            )

    check()


def test_random_filters_over_larger_fleets_agree_on_word_boundaries() -> None:
    """Fleets past 64 and 128 rows exercise the compiled evaluator's bitmap tails."""

    @fuzz_settings
    @given(st.integers(60, 200), st.lists(expressions(max_leaves=4), min_size=1, max_size=3))
    def check(size: int, texts: list[str]) -> None:
        fleet = [
            device(
                i,
                name=("a", "ab", "b")[i % 3],
                status=("online", "offline")[i % 2],
                cpu_usage=None if i % 5 == 0 else float(i % 101),
                tags=[("prod", "a b")[i % 2]] * (i % 3),
            )
            for i in range(size)
        ]
        snapshots = [impl.FleetSnapshot.from_records(fleet) for impl in IMPLEMENTATIONS]
        for text in texts:
            f = core_ext.reference.compile_filter(text, now=NOW_S)
            expected = [i for i, r in enumerate(fleet) if f.matches(r)]
            for impl, snapshot in zip(IMPLEMENTATIONS, snapshots, strict=True):
                got = impl.compile_filter(text, now=NOW_S).evaluate(snapshot)
                assert list(got) == expected, text

    check()
