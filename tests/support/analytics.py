"""Partitions for analytics tests that write rows at arbitrary times (the template database
has the partitions partition maintenance makes around "now" only)."""

from __future__ import annotations

import datetime as dt

from fleetd.storage.types import Queryable


async def create_partition(db: Queryable, parent: str, start: dt.datetime, end: dt.datetime) -> str:
    """Attach ``[start, end)`` under ``parent`` unless a partition already covers it;
    return its name. Test-only: the product's partitions come from partition maintenance."""
    name = f"{parent}_t{start:%Y%m%d%H%M}_{end:%Y%m%d%H%M}"
    await db.execute(
        f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{parent}" '
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )
    return name
