"""The Redis key layout, in one place. docs/redis-keys.md explains each key.

Per-device keys carry the device id in a hash tag (``{...}``) so that, on Redis Cluster,
all of one device's keys live on one shard. Everything here is rebuildable from
PostgreSQL: losing Redis loses no acknowledged data.
"""

from __future__ import annotations

PREFIX = "fleetd"


def last_seen(fleet: str) -> str:
    """ZSET: member device_id, score last heartbeat (Unix seconds). Drives offline detection."""
    return f"{PREFIX}:{{{fleet}}}:last_seen"


DEVICE_STATS_PREFIX = f"{PREFIX}:dev:{{"
DEVICE_STATS_SUFFIX = "}:stats"
"""``device_stats(d) == DEVICE_STATS_PREFIX + d + DEVICE_STATS_SUFFIX``: the heartbeat
batcher builds these keys itself (in C) from the two parts."""


STATS_TTL_SECONDS = 24 * 3600
"""How long a device's latest stats (``device_stats``) outlive its last heartbeat: every
writer (the gateway's flush, the control API's Heartbeat) sets this TTL."""


def device_stats(device_id: str) -> str:
    """HASH: the latest heartbeat's stats (seen_at, state, cpu, mem, disk, uptime, count)."""
    return f"{DEVICE_STATS_PREFIX}{device_id}{DEVICE_STATS_SUFFIX}"


def rate_limit(subject: str) -> str:
    """STRING: a GCRA bucket's theoretical arrival time (µs); expires when the bucket is full."""
    return f"{PREFIX}:rl:{{{subject}}}"


def events(fleet: str) -> str:
    """STREAM: fleet events (``device.online``, ``device.offline``, ...), fields ``type``,
    ``device_id``, ``at`` (Unix seconds) and event-specific ones; capped (MAXLEN ~)."""
    return f"{PREFIX}:{{{fleet}}}:events"


def sweeper_lease(fleet: str) -> str:
    """STRING: the holder of the fleet's offline-sweeper lease (SET NX PX, renewed)."""
    return f"{PREFIX}:{{{fleet}}}:sweeper"


def desired_state(device_id: str) -> str:
    """HASH: the device's desired state as the gateway serves it: ``rev`` (the revision)
    and ``body`` (a serialized ``HeartbeatResponse`` with ``desired_state`` and
    ``log_requests``); filled from PostgreSQL on a miss,
    replaced by whoever bumps the revision, never overwritten by an older revision."""
    return f"{PREFIX}:dev:{{{device_id}}}:desired"


def event_streams(subject: str) -> str:
    """ZSET: one caller's open event streams (member a stream id, score its lease's expiry,
    ms); bounds concurrent StreamEvents calls per caller across API processes."""
    return f"{PREFIX}:streams:{{{subject}}}"


DESIRED_CHANGED_CHANNEL = f"{PREFIX}:desired-changed"
"""PUB/SUB channel: space-separated ids of devices whose desired state just changed;
gateways push the new state down the devices' open heartbeat streams."""


CERTIFICATES_REVOKED_CHANNEL = f"{PREFIX}:certificates-revoked"
"""PUB/SUB channel: space-separated ids of devices whose certificates were just revoked
(offboarding); gateways drop their cached certificate standing at once."""
