"""The transactional outbox of device and deployment events (docs/events.md, section 2).

A writer calls :func:`append` on the connection of the transaction that makes the change,
so the event commits (or rolls back) with it. :func:`relay_once` then moves committed
events, oldest first, to the fleet's Redis stream (``fleetd.storage.events.publish``) and
marks them relayed, in one PostgreSQL transaction that holds them: if Redis refuses, the
transaction rolls back and they wait for the next round; if the process dies after the
XADD but before the commit, they are relayed again, each carrying its ``event_id`` so
that readers can drop the repeat. One relayer acts at a time (a transaction-level advisory
lock), which keeps each fleet's stream in commit order.

Writers are moved onto it by issue 16; until then it is used only through this module.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Final

import orjson

from fleetd.storage import events
from fleetd.storage.types import Connection, Pool, Redis

RELAY_LOCK: Final = 0x666C65657464004F  # "fleetd" + "O": one relayer at a time
EVENT_ID_FIELD: Final = "event_id"
"""The stream entry field carrying the outbox id (readers deduplicate by it)."""


async def append(conn: Connection, fleet: str, batch: Sequence[events.Event]) -> list[str]:
    """Record ``batch`` in the outbox within the caller's transaction; return their ids.

    Raises ValueError for an event ``events.encode`` refuses (no type, no device id, a
    reserved field name) or one that already names an ``event_id`` field."""
    if not batch:
        return []
    ids: list[str] = []
    for event in batch:
        events.encode(event)  # the stream's own checks, before anything is written
        if EVENT_ID_FIELD in event.fields:
            raise ValueError(f"event field name {EVENT_ID_FIELD!r} is reserved")
        ids.append(str(uuid.uuid4()))
    await conn.execute(
        """INSERT INTO event_outbox (event_id, fleet, type, device_id, occurred_at, fields)
           SELECT i::uuid, $1, t, d, to_timestamp(a), f::jsonb
           FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::text[])
                AS e(i, t, d, a, f)""",
        fleet,
        ids,
        [e.type for e in batch],
        [e.device_id for e in batch],
        [float(e.at) for e in batch],
        [orjson.dumps(dict(e.fields)).decode() for e in batch],
    )
    return ids


async def relay_once(pool: Pool, redis: Redis, *, limit: int = 1000) -> int:
    """Relay up to ``limit`` committed events, oldest first; return how many.

    0 when another process is relaying. Raises Redis errors (the events stay pending)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
            return 0
        rows = await conn.fetch(
            """SELECT seq, event_id, fleet, type, device_id,
                      extract(epoch FROM occurred_at)::float8 AS at, fields::text AS fields
               FROM event_outbox WHERE relayed_at IS NULL ORDER BY seq LIMIT $1""",
            limit,
        )
        if not rows:
            return 0
        by_fleet: dict[str, list[events.Event]] = {}
        for row in rows:
            fields = {k: str(v) for k, v in orjson.loads(row["fields"]).items()}
            fields[EVENT_ID_FIELD] = str(row["event_id"])
            by_fleet.setdefault(row["fleet"], []).append(
                events.Event(row["type"], row["device_id"], row["at"], fields)
            )
        for fleet, batch in by_fleet.items():
            await events.publish(redis, fleet, batch)
        await conn.execute(
            "UPDATE event_outbox SET relayed_at = now() WHERE seq = ANY($1::bigint[])",
            [row["seq"] for row in rows],
        )
        return len(rows)


async def prune(pool: Pool, *, relayed_before: dt.datetime, limit: int = 10_000) -> int:
    """Delete up to ``limit`` events relayed before ``relayed_before``; return how many.
    Pending events are never deleted."""
    done: str = await pool.execute(
        """DELETE FROM event_outbox WHERE seq IN (
               SELECT seq FROM event_outbox
               WHERE relayed_at IS NOT NULL AND relayed_at < $1
               ORDER BY relayed_at LIMIT $2)""",
        relayed_before,
        limit,
    )
    return int(done.split()[-1])
