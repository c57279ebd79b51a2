"""The audit log: append-only (a trigger refuses UPDATE, DELETE, TRUNCATE) and hash-chained.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON
(sorted keys, no spaces, timestamp in ISO 8601 with microseconds), so altering, removing
or reordering any entry breaks every hash after it; :func:`verify` finds the first break.
Appends serialise on an advisory lock (mutating operator calls are rare enough).

A call is recorded twice (control_api.auth): before it does anything, an entry with
outcome :data:`STARTED` (if that append fails, the call is refused and changes nothing);
after it, the entry with its real outcome and targets. An outcome that cannot be appended
after retries therefore does not vanish: :func:`verify` lists the calls whose ``STARTED``
entry has no outcome after it (``Verdict.unfinished``).

An entry's text is stored as PostgreSQL can hold it (:func:`storable`): a NUL in a target
named by a request (the edges refuse those, but the log must not depend on it) would
otherwise make the append fail, every retry alike, and lose the call's outcome.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, fields, replace

import orjson

from fleetd.storage.types import Connection

_LOCK_KEY = 0x666C656574640002  # "fleetd" + 2
GENESIS = b"\0" * 32
STARTED = "STARTED"
"""The outcome of the entry written before a call does its work."""


@dataclass(frozen=True, slots=True)
class Entry:
    """What happened: who (actor, kind, role) did what (method, target), with what result."""

    actor: str
    actor_kind: str
    role: str
    method: str
    target: str
    request_id: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    at: dt.datetime
    entry: Entry
    prev_hash: bytes
    hash: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(timespec="microseconds"),
            **asdict(self.entry),
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
        }


def _text(value: str) -> str:
    """``value`` with NUL and lone surrogates spelled out (``\\x00``, ``\\ud800``)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode()
    return value


def storable(entry: Entry) -> Entry:
    """``entry`` with every text as PostgreSQL can store it (no NUL, valid UTF-8)."""
    changed = {f.name: _text(getattr(entry, f.name)) for f in fields(entry)}
    if all(changed[name] is getattr(entry, name) for name in changed):
        return entry
    return replace(entry, **changed)


def entry_hash(prev_hash: bytes, seq: int, at: dt.datetime, entry: Entry) -> bytes:
    canonical = orjson.dumps(
        {"seq": seq, "at": at.isoformat(timespec="microseconds"), **asdict(entry)},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(prev_hash + canonical).digest()


async def append(conn: Connection, entry: Entry) -> Record:
    entry = storable(entry)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        last = await conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        seq = 1 if last is None else last["seq"] + 1
        prev = GENESIS if last is None else bytes(last["hash"])
        at = dt.datetime.now(dt.UTC)
        digest = entry_hash(prev, seq, at, entry)
        await conn.execute(
            """INSERT INTO audit_log (seq, at, actor, actor_kind, role, method, target,
                                      request_id, outcome, prev_hash, hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            seq,
            at,
            entry.actor,
            entry.actor_kind,
            entry.role,
            entry.method,
            entry.target,
            entry.request_id,
            entry.outcome,
            prev,
            digest,
        )
    return Record(seq, at, entry, prev, digest)


async def records(conn: Connection, *, after_seq: int = 0) -> AsyncIterator[Record]:
    """Every record in order, streamed with a server-side cursor."""
    async with conn.transaction():
        async for row in conn.cursor(
            """SELECT seq, at, actor, actor_kind, role, method, target, request_id, outcome,
                      prev_hash, hash
               FROM audit_log WHERE seq > $1 ORDER BY seq""",
            after_seq,
        ):
            entry = Entry(
                row["actor"],
                row["actor_kind"],
                row["role"],
                row["method"],
                row["target"],
                row["request_id"],
                row["outcome"],
            )
            yield Record(row["seq"], row["at"], entry, bytes(row["prev_hash"]), bytes(row["hash"]))


@dataclass(frozen=True, slots=True)
class Verdict:
    entries: int
    first_bad_seq: int | None
    problem: str
    unfinished: tuple[Record, ...] = ()
    """``STARTED`` entries with no outcome after them: calls still running, or whose
    outcome could not be recorded (the server logged that loudly)."""


def _call_key(entry: Entry) -> tuple[str, str, str]:
    return (entry.request_id, entry.actor, entry.method)


async def verify(conn: Connection) -> Verdict:
    """Recompute the chain; report the first entry that does not match, and the calls
    whose outcome is missing.

    An outcome closes the oldest open ``STARTED`` entry with the same request id, actor and
    method; an entry with no open ``STARTED`` (a denial, recorded once) closes nothing.
    """
    prev, expected_seq, count = GENESIS, 1, 0
    open_calls: dict[tuple[str, str, str], list[Record]] = {}
    async for record in records(conn):
        count += 1
        key = _call_key(record.entry)
        if record.entry.outcome == STARTED:
            open_calls.setdefault(key, []).append(record)
        elif open_calls.get(key):
            open_calls[key].pop(0)
        if record.seq != expected_seq:
            return Verdict(count, record.seq, f"sequence gap: expected {expected_seq}")
        if record.prev_hash != prev:
            return Verdict(count, record.seq, "prev_hash does not match the previous entry")
        if entry_hash(prev, record.seq, record.at, record.entry) != record.hash:
            return Verdict(count, record.seq, "hash does not match the entry's content")
        prev, expected_seq = record.hash, expected_seq + 1
    unfinished = sorted((r for rs in open_calls.values() for r in rs), key=lambda r: r.seq)
    return Verdict(count, None, "", tuple(unfinished))
