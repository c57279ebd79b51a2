"""``analytics_watermarks``: how far each analytics role got (its ``upto``)."""

from __future__ import annotations

import datetime as dt

from fleetd.storage.types import Queryable


async def get(db: Queryable, role: str) -> dt.datetime | None:
    """The role's watermark, or None before its first round."""
    value: dt.datetime | None = await db.fetchval(
        "SELECT upto FROM analytics_watermarks WHERE role = $1", role
    )
    return value


async def advance(db: Queryable, role: str, upto: dt.datetime) -> None:
    """Move the role's watermark to ``upto`` (never backwards)."""
    await db.execute(
        """INSERT INTO analytics_watermarks (role, upto) VALUES ($1, $2)
           ON CONFLICT (role) DO UPDATE
              SET upto = greatest(analytics_watermarks.upto, EXCLUDED.upto)""",
        role,
        upto,
    )
