"""The figures a wave's promotion gates are judged on (``fleetd.domain.rollout.gates``):
its updated devices' heartbeats and aggregates of their latest stats.

Both read the wave's HEALTHY targets joined to their devices; nothing is written.
"""

from __future__ import annotations

import datetime as dt

from fleetd.domain.rollout.gates import WaveHeartbeats
from fleetd.storage.types import Queryable

_AGGREGATE = {
    "AVG": "avg({c})",
    "MIN": "min({c})",
    "MAX": "max({c})",
    "P50": "percentile_cont(0.5) WITHIN GROUP (ORDER BY {c})",
    "P90": "percentile_cont(0.9) WITHIN GROUP (ORDER BY {c})",
    "P95": "percentile_cont(0.95) WITHIN GROUP (ORDER BY {c})",
    "P99": "percentile_cont(0.99) WITHIN GROUP (ORDER BY {c})",
}
"""HealthGate aggregations (``fleetd.domain.rollout.policy.GATE_AGGREGATIONS``) in SQL."""
_STAT_COLUMNS = {
    "cpu_usage": "d.cpu_usage",
    "memory_usage": "d.memory_usage",
    "disk_usage": "d.disk_usage",
}
"""Device metrics (``fleetd.domain.rollout.gates.DEVICE_METRICS``): the latest stats' columns."""


async def wave_heartbeats(
    conn: Queryable, deployment_id: str, wave: int, since: dt.datetime
) -> WaveHeartbeats:
    """The wave's HEALTHY devices, and those not heard from since ``since`` (or offline)."""
    row = await conn.fetchrow(
        """SELECT count(*) AS n,
                  count(*) FILTER (WHERE d.last_seen IS NULL OR d.last_seen < $3
                                      OR d.status = 'offline') AS silent
           FROM deployment_targets t JOIN devices d USING (device_id)
           WHERE t.deployment_id = $1 AND t.wave = $2 AND t.state = 'healthy'""",
        deployment_id,
        wave,
        since,
    )
    assert row is not None  # an aggregate always returns a row
    return WaveHeartbeats(row["n"], row["silent"])


async def wave_stat(
    conn: Queryable, deployment_id: str, wave: int, metric: str, aggregation: str
) -> float | None:
    """``aggregation`` of the device metric ``metric`` over the wave's HEALTHY devices;
    None when none of them has a value. Both names come from a validated HealthGate."""
    expression = _AGGREGATE[aggregation].format(c=_STAT_COLUMNS[metric])
    # Only whitelisted fragments are formatted in; the values are bind parameters.
    value: float | None = await conn.fetchval(
        f"""SELECT {expression}::float8
            FROM deployment_targets t JOIN devices d USING (device_id)
            WHERE t.deployment_id = $1 AND t.wave = $2 AND t.state = 'healthy'""",  # noqa: S608
        deployment_id,
        wave,
    )
    return value
