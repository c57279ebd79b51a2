"""Partitions for analytics tests that write rows at arbitrary times (the template database
has the partitions partition maintenance makes around "now" only)."""

from __future__ import annotations

import datetime as dt

import asyncpg

from fleetd.storage.types import Queryable


async def create_partition(
    db: Queryable, parent: str, start: dt.datetime, end: dt.datetime
) -> str | None:
    """Attach ``[start, end)`` under ``parent`` and return its name; None when the range
    overlaps a partition the template already has (rows in that range land there).
    Test-only: the product's partitions come from partition maintenance."""
    name = f"{parent}_t{start:%Y%m%d%H%M}_{end:%Y%m%d%H%M}"
    try:
        await db.execute(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{parent}" '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    except asyncpg.InvalidObjectDefinitionError as exc:
        if "would overlap" not in str(exc):
            raise
        return None
    return name
