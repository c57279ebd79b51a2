"""Group rollup partials: each gateway worker's per-minute sketches, appended for the
rollup compactor (docs/analytics.md 2.4).

A worker folds its batcher's rollup rows across drains (``combine``: one ``Sketch`` per
(minute, device type, version, metric), merged) and appends them to
``metric_rollup_partials`` every ``FLEETD_ROLLUP_FLUSH_INTERVAL`` (``write_partials``). Rows
are never updated in place, so workers and nodes never contend; the compactor merges the
partials of closed minutes into ``metric_rollups_1m`` and deletes them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TypeAlias

from core_ext import Rollup
from core_ext.heartbeat_types import RollupSketch
from fleetd.domain.analytics.metrics import BY_NAME
from fleetd.storage.types import Connection

RollupKey: TypeAlias = tuple[object, str, str, str]
"""``(bucket_start, device_type, version, metric name)``"""

Partials: TypeAlias = dict[RollupKey, RollupSketch]
"""One sketch per rollup key: count, sum, min and max are the sketch's."""

_STARTED = time.time()


@cache
def writer_id() -> str:
    """This process's name on its partials: host, pid and start time (a pid reused after a
    restart is a different writer)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_STARTED:.6f}"


def combine(into: Partials, rows: Iterable[Rollup]) -> None:
    """Fold batcher rollup rows into ``into``, merging sketches of equal keys.

    The first row of a key gives its sketch to ``into`` (the batcher hands each over), so
    a steady state of one row per key per drain costs a dict probe and a ``merge``.
    """
    for bucket, device_type, version, metric, _count, _sum, _min, _max, sketch in rows:
        key = (bucket, device_type, version, metric)
        kept = into.get(key)
        if kept is None:
            into[key] = sketch
        else:
            kept.merge(sketch)


def combine_partials(into: Partials, more: Mapping[RollupKey, RollupSketch]) -> None:
    """Merge ``more`` into ``into`` (a failed write's partials back into the newer ones)."""
    for key, sketch in more.items():
        kept = into.get(key)
        if kept is None:
            into[key] = sketch
        else:
            kept.merge(sketch)


async def write_partials(conn: Connection, writer: str, fleet: str, partials: Partials) -> int:
    """Append ``partials`` to ``metric_rollup_partials`` in one statement; return the rows.

    ``metric`` is the catalogue's id of the metric name (``fleetd.domain.analytics.metrics``);
    a name the catalogue does not roll up is a programming error (KeyError).
    """
    if not partials:
        return 0
    keys = list(partials)
    sketches = [partials[key] for key in keys]
    metric_ids: list[int] = []
    for key in keys:
        metric_id = BY_NAME[key[3]].metric_id
        if metric_id is None:
            raise KeyError(f"{key[3]} is not a rolled-up metric")
        metric_ids.append(metric_id)
    await conn.execute(
        """INSERT INTO metric_rollup_partials
               (writer, bucket_start, fleet, device_type, version, metric,
                count, sum, min, max, sketch)
           SELECT $1, b, $2, t, v, m, c, s, lo, hi, sk
           FROM unnest($3::timestamptz[], $4::text[], $5::text[], $6::int2[],
                       $7::int8[], $8::float8[], $9::float8[], $10::float8[], $11::bytea[])
                AS p(b, t, v, m, c, s, lo, hi, sk)""",
        writer,
        fleet,
        [key[0] for key in keys],
        [key[1] for key in keys],
        [key[2] for key in keys],
        metric_ids,
        [sketch.count for sketch in sketches],
        [sketch.sum for sketch in sketches],
        [sketch.min for sketch in sketches],
        [sketch.max for sketch in sketches],
        [sketch.to_bytes() for sketch in sketches],
    )
    return len(keys)
