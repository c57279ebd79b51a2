from __future__ import annotations

import itertools

import asyncpg
import pytest

from fleetd.storage import audit


def _entry(n: int) -> audit.Entry:
    return audit.Entry(
        f"key-{n}",
        "api_key",
        "operator",
        "fleetd.v1.DeviceService/UpdateDevice",
        f"dev-{n}",
        f"req-{n}",
        "OK",
    )


async def test_chain_of_appended_entries_verifies(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        records = [await audit.append(conn, _entry(i)) for i in range(5)]
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert records[0].prev_hash == audit.GENESIS
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
        verdict = await audit.verify(conn)
    assert (verdict.entries, verdict.first_bad_seq) == (5, None)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
async def test_log_is_append_only(pool: asyncpg.Pool, statement: str) -> None:
    async with pool.acquire() as conn:
        await audit.append(conn, _entry(1))
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(statement)


async def test_tampering_is_found_at_the_altered_entry(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for i in range(4):
            await audit.append(conn, _entry(i))
        # Someone with superuser rights goes around the trigger.
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute("UPDATE audit_log SET outcome = 'PERMISSION_DENIED' WHERE seq = 3")
        verdict = await audit.verify(conn)
    assert verdict.first_bad_seq == 3
    assert "hash" in verdict.problem


async def test_removed_entry_is_found(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for i in range(4):
            await audit.append(conn, _entry(i))
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute("DELETE FROM audit_log WHERE seq = 2")
        verdict = await audit.verify(conn)
    assert verdict.first_bad_seq == 3


def _call(request_id: str, outcome: str, method: str = "UpdateDevice") -> audit.Entry:
    return audit.Entry("key-1", "api_key", "operator", method, "", request_id, outcome)


async def test_verify_lists_started_calls_without_an_outcome(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for entry in (
            _call("req-1", audit.STARTED),
            _call("req-2", audit.STARTED),
            _call("req-1", "OK"),
            _call("req-3", "PERMISSION_DENIED", "DeleteDevice"),  # a denial: no STARTED
            _call("req-2", "PERMISSION_DENIED", "DeleteDevice"),  # another call's denial
            _call("req-4", audit.STARTED),
        ):
            await audit.append(conn, entry)
        verdict = await audit.verify(conn)
    assert verdict.first_bad_seq is None
    assert [(r.seq, r.entry.request_id) for r in verdict.unfinished] == [(2, "req-2"), (6, "req-4")]


async def test_an_entry_naming_a_nul_is_stored_spelled_out_and_verifies(
    pool: asyncpg.Pool,
) -> None:
    # The edges refuse NUL, but the log must not lose a call's outcome if one slips by.
    started = audit.Entry("k", "api_key", "admin", "m", "", "req-nul", audit.STARTED)
    outcome = audit.Entry("k", "api_key", "admin", "m", "dev-\x00", "req-nul", "OK")
    async with pool.acquire() as conn:
        await audit.append(conn, started)
        record = await audit.append(conn, outcome)
        verdict = await audit.verify(conn)
    assert record.entry.target == "dev-\\x00"
    assert await pool.fetchval("SELECT target FROM audit_log WHERE seq = 2") == "dev-\\x00"
    assert (verdict.first_bad_seq, verdict.unfinished) == (None, ())
