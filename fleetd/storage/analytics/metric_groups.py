"""``metric_groups``: the interned labels of rollup and census rows.

A group is ``(fleet, device_type, version)``, ``None`` meaning "all" (a grouping-set row,
``fleetd.domain.analytics.groups``). Rows are only ever added; the table stays small (the
full groups and their grouping sets, a few hundred rows), so a lookup by value is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetd.domain.analytics.groups import Group
from fleetd.storage.types import Connection

_LOOKUP = """
SELECT g.group_id, g.fleet, g.device_type, g.version
  FROM metric_groups g
  JOIN unnest($1::text[], $2::text[], $3::text[]) AS w(fleet, device_type, version)
    ON g.fleet IS NOT DISTINCT FROM w.fleet
   AND g.device_type IS NOT DISTINCT FROM w.device_type
   AND g.version IS NOT DISTINCT FROM w.version
"""


def _columns(groups: list[Group]) -> tuple[list[str | None], list[str | None], list[str | None]]:
    return [g[0] for g in groups], [g[1] for g in groups], [g[2] for g in groups]


async def _lookup(conn: Connection, groups: list[Group]) -> dict[Group, int]:
    rows = await conn.fetch(_LOOKUP, *_columns(groups))
    return {(r["fleet"], r["device_type"], r["version"]): r["group_id"] for r in rows}


async def intern(conn: Connection, groups: Iterable[Group]) -> dict[Group, int]:
    """The ``group_id`` of each group, adding the groups not seen before.

    Looks up first and inserts only what is missing, so a steady state writes nothing (and
    burns no identity values); ``ON CONFLICT DO NOTHING`` settles a race with another
    writer (the census and the compactor intern concurrently).
    """
    wanted = list(dict.fromkeys(groups))
    if not wanted:
        return {}
    ids = await _lookup(conn, wanted)
    missing = [g for g in wanted if g not in ids]
    if missing:
        await conn.execute(
            """INSERT INTO metric_groups (fleet, device_type, version)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
               ON CONFLICT DO NOTHING""",
            *_columns(missing),
        )
        ids.update(await _lookup(conn, missing))
    return ids
