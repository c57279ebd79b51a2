"""Fleets and filter expressions for the filter tests: fixed examples, hypothesis
strategies, and loading a fleet into the ``devices`` table.

Records use the shape ``Filter.matches`` takes; the same records become a snapshot
(``FleetSnapshot.from_records``) and ``devices`` rows, so every backend sees one fleet.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from fleetd.storage.types import Connection

Record = dict[str, Any]

UTC = dt.UTC
NOW = dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
"""The ``now`` every test compiles relative times against."""

STATUSES = ("unknown", "online", "offline", "maintenance", "updating", "error", "offboarded")
STRING_FIELDS = ("id", "name", "type", "version", "agent_version", "fleet")
NUMBER_FIELDS = ("cpu_usage", "memory_usage", "disk_usage", "uptime_seconds")
TIMESTAMP_FIELDS = ("last_seen", "registered_at", "updated_at")
COLUMNS = {"id": "device_id", "type": "device_type"}

# Small pools so random filters hit random fleets often; LIKE metacharacters and
# characters that need quoting included on purpose.
WORDS = ("", "a", "ab", "abc", "b", "a%b", "a_b", "x\\y", "rpi", "esp32", "é", "a b", 'q"t', "*")
TIMES = (
    dt.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2024, 1, 1, tzinfo=UTC),
    dt.datetime(2024, 5, 31, 12, 0, 0, 123456, tzinfo=UTC),
    dt.datetime(2024, 6, 1, 11, 50, 0, tzinfo=UTC),
    dt.datetime(2024, 6, 1, 11, 55, 0, tzinfo=UTC),
)
CPU = (0.0, 50.0, 80.0, 80.5, 90.0, 100.0)
UPTIME = (0, 59, 3600, 86_400 * 400)
META_KEYS = ("loc", "env", "a.b")


def device(index: int, **fields: Any) -> Record:
    """A complete record: the defaults of a freshly registered device, then ``fields``."""
    record: Record = {
        "id": f"d{index}",
        "name": "",
        "type": "",
        "version": "",
        "agent_version": "",
        "fleet": "default",
        "status": "unknown",
        "cpu_usage": None,
        "memory_usage": None,
        "disk_usage": None,
        "uptime_seconds": None,
        "last_seen": None,
        "registered_at": TIMES[0],
        "updated_at": TIMES[0],
        "metadata": {},
        "tags": [],
    }
    record.update(fields)
    return record


@st.composite
def fleets(draw: st.DrawFn, max_size: int = 8) -> list[Record]:
    n = draw(st.integers(0, max_size))
    words = st.sampled_from(WORDS)
    out = []
    for i in range(n):
        out.append(
            device(
                i,
                name=draw(words),
                type=draw(words),
                version=draw(words),
                agent_version=draw(words),
                fleet=draw(words),
                status=draw(st.sampled_from(STATUSES)),
                cpu_usage=draw(st.none() | st.sampled_from(CPU)),
                memory_usage=draw(st.none() | st.sampled_from(CPU)),
                disk_usage=draw(st.none() | st.sampled_from(CPU)),
                uptime_seconds=draw(st.none() | st.sampled_from(UPTIME)),
                last_seen=draw(st.none() | st.sampled_from(TIMES)),
                registered_at=draw(st.sampled_from(TIMES)),
                updated_at=draw(st.sampled_from(TIMES)),
                metadata=draw(st.dictionaries(st.sampled_from(META_KEYS), words, max_size=3)),
                tags=draw(st.lists(words, max_size=3)),
            )
        )
    return out


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*") + '"'


def is_bare(text: str) -> bool:
    return bool(text) and not any(c in ' \t\n\r\x0b\x0c(),"*' for c in text)


@st.composite
def string_values(draw: st.DrawFn) -> str:
    """One value of a string term: exact, prefix, suffix or contains, bare or quoted."""
    text = draw(st.sampled_from(WORDS))
    lead, trail = draw(st.booleans()), draw(st.booleans())
    if is_bare(text) and draw(st.booleans()):
        body = text
        return ("*" if lead else "") + body + ("*" if trail else "")
    inner = quote(text)[1:-1]
    return '"' + ("*" if lead else "") + inner + ("*" if trail else "") + '"'


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


@st.composite
def terms(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(("string", "status", "number", "timestamp", "metadata", "tags")))
    count = draw(st.integers(1, 3))
    if kind in ("string", "metadata", "tags"):
        if kind == "string":
            field = draw(st.sampled_from(STRING_FIELDS))
        elif kind == "metadata":
            field = "metadata." + draw(st.sampled_from(META_KEYS))
        else:
            field = "tags"
        values = [draw(string_values()) for _ in range(count)]
        if field == "id":
            values = [draw(st.sampled_from(("d0", "d1", "d1*", "*1", "*d*", "x")))]
        return f"{field}:{','.join(values)}"
    if kind == "status":
        names = [draw(st.sampled_from(STATUSES)) for _ in range(count)]
        return "status:" + ",".join(n.upper() if draw(st.booleans()) else n for n in names)
    op = draw(st.sampled_from(("", ">", "<", ">=", "<=")))
    if kind == "number":
        field = draw(st.sampled_from(NUMBER_FIELDS))
        pool = UPTIME if field == "uptime_seconds" else CPU
        values = [_number_text(float(draw(st.sampled_from(pool)))) for _ in range(count)]
        return f"{field}:{op}{','.join(values)}"
    field = draw(st.sampled_from(TIMESTAMP_FIELDS))
    texts = []
    for _ in range(count):
        form = draw(st.sampled_from(("date", "rfc", "offset", "relative")))
        when = draw(st.sampled_from(TIMES))
        if form == "date":
            texts.append(when.date().isoformat())
        elif form == "rfc":
            texts.append(when.isoformat().replace("+00:00", "Z"))
        elif form == "offset":
            texts.append(when.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat())
        else:
            texts.append(draw(st.sampled_from(("-5m", "-10m", "-300s", "-1h", "-1d", "-0s"))))
    return f"{field}:{op}{','.join(texts)}"


def expressions(max_leaves: int = 6) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, inner).map(lambda p: f"{p[0]} AND {p[1]}"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]} OR {p[1]}"),
            inner.map(lambda e: f"NOT {e}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"( {e} )"),
        )

    return st.recursive(terms(), extend, max_leaves=max_leaves)


async def load_fleet(conn: Connection, records: Sequence[Record]) -> None:
    """Replace the ``devices`` table's rows with ``records``."""
    await conn.execute("DELETE FROM devices")
    await conn.executemany(
        """INSERT INTO devices (device_id, name, device_type, version, agent_version, fleet,
                                status, cpu_usage, memory_usage, disk_usage, uptime_seconds,
                                last_seen, registered_at, updated_at, metadata, tags)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                   $15::text::jsonb, $16)""",
        [
            (
                r["id"],
                r["name"],
                r["type"],
                r["version"],
                r["agent_version"],
                r["fleet"],
                r["status"],
                r["cpu_usage"],
                r["memory_usage"],
                r["disk_usage"],
                r["uptime_seconds"],
                r["last_seen"],
                r["registered_at"],
                r["updated_at"],
                json.dumps(r["metadata"]),
                r["tags"],
            )
            for r in records
        ],
    )


async def sql_rows(
    conn: Connection, sql: str, params: Sequence[object], records: Sequence[Record]
) -> list[int]:
    """The indexes (in ``records``) of the devices the WHERE fragment selects."""
    found = await conn.fetch(f"SELECT device_id FROM devices WHERE {sql}", *params)
    index = {r["id"]: i for i, r in enumerate(records)}
    return sorted(index[row["device_id"]] for row in found)
