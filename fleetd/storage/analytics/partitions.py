"""Partition DDL of the analytics tables: list, create (then attach), detach and drop.

Which partitions to make or drop is decided by ``fleetd.domain.analytics.partitions``;
this module only runs the statements, the way docs/analytics.md 2.7 checked they block
neither readers nor the heartbeat flush:

* **Create** builds a plain table ``LIKE`` the parent (defaults, constraints, column
  storage and indexes, so the attach adopts the indexes instead of building them), with
  the tier's storage parameters (which a partitioned parent cannot carry) and a ``CHECK``
  equal to its bounds, then ``ATTACH PARTITION``: that takes only SHARE UPDATE EXCLUSIVE
  on the parent, and the CHECK spares it the validating scan. Both in one transaction, so
  a crash leaves either nothing or an attached partition.
* **Drop** is ``DETACH PARTITION … CONCURRENTLY`` (no ACCESS EXCLUSIVE on the parent;
  it refuses to run inside a transaction block) and then ``DROP TABLE``. A detach
  interrupted half-way leaves the partition "detach pending": :func:`existing` reports it
  and :func:`drop` finishes it with ``FINALIZE``.

Table names come from the planner, which admits only ``[a-z_][a-z0-9_]*``; they are quoted
all the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from fleetd.domain.analytics.partitions import Partition
from fleetd.domain.analytics.tiers import Tier
from fleetd.storage.types import Connection, Queryable


@dataclass(frozen=True, slots=True)
class AttachedTable:
    """A table under a partitioned parent, as ``pg_inherits`` lists it."""

    name: str
    detach_pending: bool
    """An interrupted ``DETACH … CONCURRENTLY``: still listed, to be finalized."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("partition bounds must be timezone-aware")
    return "'" + moment.isoformat() + "'::timestamptz"


async def existing(db: Queryable, parent: str) -> list[AttachedTable]:
    """The tables attached under ``parent`` (in the current schema), by name."""
    rows = await db.fetch(
        """SELECT c.relname AS name, i.inhdetachpending AS pending
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = $1 AND p.relnamespace = current_schema()::regnamespace
            ORDER BY c.relname""",
        parent,
    )
    return [AttachedTable(r["name"], r["pending"]) for r in rows]


async def create(conn: Connection, tier: Tier, partition: Partition) -> bool:
    """Create ``partition`` of ``tier`` and attach it; False when another table under the
    parent already covers part of its range (a hand-made partition: left alone, and the
    rows it covers still land somewhere).

    The caller holds the partition lock (``locks.PARTITIONS``) and has checked that the
    partition does not exist yet.
    """
    table = _quote(partition.name)
    parent = _quote(tier.parent)
    column = _quote(tier.time_column)
    start, end = _literal(partition.start), _literal(partition.end)
    storage = ", ".join(f"{key} = {value}" for key, value in tier.storage)
    with_clause = f" WITH ({storage})" if storage else ""
    check = _quote(f"{partition.name}_bounds")
    try:
        async with conn.transaction():
            await conn.execute(
                f"CREATE TABLE {table} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                f"INCLUDING STORAGE INCLUDING INDEXES){with_clause}"
            )
            await conn.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {check} "
                f"CHECK ({column} >= {start} AND {column} < {end})"
            )
            await conn.execute(
                f"ALTER TABLE {parent} ATTACH PARTITION {table} "
                f"FOR VALUES FROM ({start}) TO ({end})"
            )
    except asyncpg.InvalidObjectDefinitionError as exc:
        if "would overlap" not in str(exc):
            raise
        return False
    return True


async def drop(conn: Connection, parent: str, table: AttachedTable) -> None:
    """Detach ``table`` from ``parent`` without blocking writers, then drop it.

    ``conn`` must not be inside a transaction (``DETACH … CONCURRENTLY`` refuses to run in
    one); the caller holds the partition lock.
    """
    mode = "FINALIZE" if table.detach_pending else "CONCURRENTLY"
    await conn.execute(f"ALTER TABLE {_quote(parent)} DETACH PARTITION {_quote(table.name)} {mode}")
    await conn.execute(f"DROP TABLE IF EXISTS {_quote(table.name)}")
