"""The live metrics stream behind ``/ws/metrics``: one capped Redis stream per fleet.

Every gateway worker appends one entry a second (``gateway.live_metrics``): count, sum,
min and max per metric over the heartbeats it drained in that second, per device group
(``type``, ``version``) and fleet-wide, without sketches (docs/analytics.md, 6: ingest
cost stays flat). Readers (``control_api.metrics_ws``) tail the stream and fold the
entries of their interval; entries merge exactly (counts and sums add, min of mins, max
of maxes), so any number of workers and nodes can write to one stream.

Key: :func:`stream_key` (``fleetd:{<fleet>}:live_metrics``, named like the keys of
``redis_keys``). An entry's fields are ``v`` (the format, ``1``), ``at`` (the writer's
Unix time) and two JSON documents: ``fleet`` ``{metric: [count, sum, min, max]}`` and
``groups`` ``[[type, version, metric, count, sum, min, max], ...]``. JSON because a
reader decodes it in C, whatever the number of groups.

The stream is capped by age, not length (``XADD MINID ~``, :data:`RETENTION_MS`): a
reader needs at most its interval (60 s) of entries whatever the number of writers, and a
length cap would have to be sized for the largest deployment. The key also expires
:data:`KEY_TTL_SECONDS` after its last entry, so a fleet whose gateways stopped leaves
nothing behind.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fleetd.storage import redis_keys
from fleetd.storage.errors import REDIS_ERRORS, StoreUnavailable
from fleetd.storage.types import Redis

log = logging.getLogger(__name__)

FORMAT: Final = "1"
RETENTION_MS: Final = 120_000
"""Entries older than this (by the writer's clock) are trimmed as new ones arrive: twice
the longest subscriber interval, which also absorbs clock skew between writers."""
KEY_TTL_SECONDS: Final = 300
_MAX_SEQUENCE: Final = 2**64 - 1
READ_COUNT: Final = 1_000
"""Entries per XRANGE: one second of 1,000 writers."""


@dataclass(frozen=True, slots=True)
class Aggregate:
    """count, sum, min and max of one metric over some heartbeats (``count`` > 0)."""

    count: int
    total: float
    minimum: float
    maximum: float

    def merge(self, other: Aggregate) -> Aggregate:
        """Both together: exact, in any order."""
        return Aggregate(
            self.count + other.count,
            self.total + other.total,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
        )

    @property
    def mean(self) -> float:
        return self.total / self.count


GroupMetric = tuple[str, str, str]
"""``(device_type, version, metric)``."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One entry of the stream: what one writer folded in one publishing period."""

    at: float
    fleet: Mapping[str, Aggregate]
    """Per metric, over every group."""
    groups: Mapping[GroupMetric, Aggregate]


def stream_key(fleet: str) -> str:
    """STREAM: the fleet's live metrics, one entry per gateway worker per second."""
    return f"{redis_keys.PREFIX}:{{{fleet}}}:live_metrics"


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the live metrics stream is unavailable ({exc})")


def fleet_wide(groups: Mapping[GroupMetric, Aggregate]) -> dict[str, Aggregate]:
    """Per metric, the merge of every group's aggregate."""
    merged: dict[str, Aggregate] = {}
    for (_, _, metric), aggregate in groups.items():
        kept = merged.get(metric)
        merged[metric] = aggregate if kept is None else kept.merge(aggregate)
    return merged


def encode(snapshot: Snapshot) -> dict[str, str]:
    """The stream entry's fields for ``snapshot``."""
    return {
        "v": FORMAT,
        "at": repr(snapshot.at),
        "fleet": json.dumps(
            {m: _numbers(a) for m, a in snapshot.fleet.items()},
            separators=(",", ":"),
            allow_nan=False,
        ),
        "groups": json.dumps(
            [[t, v, m, *_numbers(a)] for (t, v, m), a in snapshot.groups.items()],
            separators=(",", ":"),
            allow_nan=False,
        ),
    }


def _numbers(aggregate: Aggregate) -> list[float]:
    return [aggregate.count, aggregate.total, aggregate.minimum, aggregate.maximum]


def _aggregate(numbers: Any) -> Aggregate:
    count, total, minimum, maximum = numbers
    if not isinstance(count, int) or count <= 0:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    return Aggregate(count, float(total), float(minimum), float(maximum))


def decode(fields: Mapping[bytes | str, bytes | str] | None) -> Snapshot:
    """The snapshot of a stream entry; ValueError when it is not one (of this format)."""
    text = {_text(k): _text(v) for k, v in (fields or {}).items()}
    if text.get("v") != FORMAT:
        raise ValueError(f"unknown live metrics format {text.get('v')!r}")
    at = float(text["at"])
    fleet = {str(m): _aggregate(n) for m, n in json.loads(text["fleet"]).items()}
    groups = {
        (str(t), str(v), str(m)): _aggregate(rest) for t, v, m, *rest in json.loads(text["groups"])
    }
    return Snapshot(at, fleet, groups)


async def append(redis: Redis, fleet: str, snapshot: Snapshot) -> str:
    """Add ``snapshot`` to the fleet's stream, trimming entries older than
    :data:`RETENTION_MS`; its entry id. Raises ``StoreUnavailable`` if Redis fails."""
    key = stream_key(fleet)
    oldest_ms = int(time.time() * 1000) - RETENTION_MS
    try:
        async with redis.pipeline(transaction=False) as pipe:
            # redis-py types ``fields`` as an invariant Dict of its own unions.
            fields: dict[Any, Any] = encode(snapshot)
            pipe.xadd(key, fields, minid=oldest_ms, approximate=True)
            pipe.expire(key, KEY_TTL_SECONDS)
            entry_id, _ = await pipe.execute()
    except REDIS_ERRORS as exc:
        raise _unavailable(exc) from exc
    return _text(entry_id)


async def start_id(redis: Redis, back_ms: int) -> str:
    """The id after which (:func:`read_after`) come the entries of the last ``back_ms``
    milliseconds, by Redis's clock (which assigns the ids)."""
    try:
        seconds, micros = await redis.time()
    except REDIS_ERRORS as exc:
        raise _unavailable(exc) from exc
    since_ms = int(seconds) * 1000 + int(micros) // 1000 - back_ms
    # The last possible id of the millisecond before: entries of ``since_ms`` itself follow.
    return f"{since_ms - 1}-{_MAX_SEQUENCE}" if since_ms > 0 else "0-0"


async def read_after(redis: Redis, fleet: str, after: str) -> tuple[str, list[Snapshot]]:
    """Every entry after id ``after``, in order, and the id to read after next time
    (``after`` when there were none). Malformed entries are skipped (logged)."""
    key = stream_key(fleet)
    snapshots: list[Snapshot] = []
    while True:
        try:
            reply = await redis.xrange(key, min=f"({after}", max="+", count=READ_COUNT) or []
        except REDIS_ERRORS as exc:
            raise _unavailable(exc) from exc
        for raw_id, fields in reply:
            after = _text(raw_id)
            try:
                snapshots.append(decode(fields))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("skipping malformed live metrics entry %s: %s", after, exc)
        if len(reply) < READ_COUNT:
            return after, snapshots


async def online_count(redis: Redis, fleet: str, since: float) -> int:
    """Devices in the fleet's last-seen ZSET heard from after ``since`` (Unix seconds):
    those liveness counts online (a device silent for ``offline_after`` is offline even
    before the sweeper removes it)."""
    try:
        count = await redis.zcount(redis_keys.last_seen(fleet), f"({since!r}", "+inf")
    except REDIS_ERRORS as exc:
        raise _unavailable(exc) from exc
    return int(count)


def finite(aggregate: Aggregate) -> bool:
    """Whether every number of ``aggregate`` can be stored (JSON has no inf or NaN)."""
    return aggregate.count > 0 and all(
        math.isfinite(x) for x in (aggregate.total, aggregate.minimum, aggregate.maximum)
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
