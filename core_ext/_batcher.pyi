"""Heartbeat batcher: the compiled twin of ``core_ext.reference.batcher``.

The reference module defines the semantics and states the invariants; this one behaves
identically and returns the same types (``core_ext.heartbeat_types``; its rollup
sketches are compiled ``fleetd_native.Sketch`` objects, the reference's are the reference
``Sketch``, with the same bytes). Argument conversion: ``device_id`` and the strings given
to the constructor and ``group_id`` must be exactly ``str``; ``seen_at``, the
percentages, gigabytes, load averages, ``temperature`` and ``sample_interval`` accept any
real number (``__float__`` or ``__index__``, never ``str``) and are stored as ``float``;
``group``, ``state``, ``uptime_seconds``, the megabytes and the network counters accept
any integer (``__index__``, never ``float``) and are stored as ``int``.
"""

from typing import Final, NoReturn, final

from core_ext.heartbeat_types import METRICS as METRICS
from core_ext.heartbeat_types import CopyRecord as CopyRecord
from core_ext.heartbeat_types import Flush as Flush
from core_ext.heartbeat_types import RedisCommand as RedisCommand
from core_ext.heartbeat_types import Rollup as Rollup
from core_ext.heartbeat_types import StateTransition as StateTransition

NEVER_DRAINED: Final = -1
"""The ``previous_state`` reported for a device this batcher has no drained state for."""

MAX_STATE: Final = 2147483647
"""States are int32-ranged, non-negative codes (``0 <= state <= MAX_STATE``)."""

MAX_UPTIME_SECONDS: Final = 9223372036854775807
"""``uptime_seconds`` is int64-ranged and non-negative."""

MAX_MEGABYTES: Final = 9223372036854775807
"""``memory_used_mb`` and ``memory_total_mb`` are int64-ranged and non-negative."""

MAX_COUNTER: Final = 18446744073709551615
"""``network_rx_bytes`` and ``network_tx_bytes`` are uint64 counters."""

MAX_SAMPLE_INTERVAL: Final = 1e9
"""The greatest ``sample_interval`` (seconds, ~31 years) accepted."""

MIN_SEEN_AT: Final = -62135596800.0
"""The least ``seen_at`` accepted: 0001-01-01T00:00:00Z, datetime's first second."""

MAX_SEEN_AT: Final = 253402300799.0
"""The greatest ``seen_at`` accepted: 9999-12-31T23:59:59Z, datetime's last whole second."""

MAX_GROUPS: Final = 65536
"""``group_id`` refuses to intern more device groups than this."""

MAX_STATS_TTL: Final = 2147483647
"""The greatest ``stats_ttl`` (seconds) accepted."""

@final
class HeartbeatBatcher:
    """Coalesces heartbeats per device and turns them into ready-to-send flushes.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie), counts the heartbeats coalesced, computes its network rates and sampling
    decision, and folds each into its group's rollup sketches. ``drain`` returns a
    ``Flush``: the Redis commands for the pending devices in first-arrival order, the
    state transitions and the rollups; the drained records move on to the COPY window,
    which ``drain_copy_records`` empties into rows for PostgreSQL.
    """

    def __init__(
        self,
        max_pending: int = 65536,
        *,
        last_seen_key: str = "last_seen",
        stats_key_prefix: str = "stats:",
        stats_key_suffix: str = "",
        stats_ttl: int = 86400,
        rollup_interval: int = 60,
        sample_interval: float = 0.0,
    ) -> None:
        """Create an empty batcher; ``add`` signals a flush at ``max_pending`` devices.

        ``last_seen_key`` names the ZSET the ZADD writes; a device's stats hash is
        ``stats_key_prefix + device_id + stats_key_suffix``, expiring ``stats_ttl`` seconds
        after its last flush. Rollup buckets are ``rollup_interval`` seconds long. A device
        gets a sample about every ``sample_interval`` seconds (0: every heartbeat).

        Raises TypeError if a key part is not a ``str``, a number is not an integer or
        ``sample_interval`` not a real number; ValueError unless ``1 <= max_pending <=
        sys.maxsize``, ``1 <= stats_ttl <= MAX_STATS_TTL``, ``rollup_interval`` is a
        positive divisor of 86400 and ``0 <= sample_interval <= MAX_SAMPLE_INTERVAL``.
        """

    def group_id(self, device_type: str, version: str) -> int:
        """The id of the device group ``(device_type, version)``, interned on first use.

        Ids are 0, 1, 2... in first-call order and stay valid for the batcher's life. Raises
        TypeError if either is not a ``str``; ValueError when the group is new and
        ``MAX_GROUPS`` groups exist already.
        """

    def add(
        self,
        device_id: str,
        group: int,
        seen_at: float,
        state: int,
        cpu_percent: float,
        memory_percent: float,
        disk_percent: float,
        uptime_seconds: int,
        memory_used_mb: int,
        memory_total_mb: int,
        disk_used_gb: float,
        disk_total_gb: float,
        load_avg_1m: float,
        load_avg_5m: float,
        load_avg_15m: float,
        temperature: float,
        network_rx_bytes: int,
        network_tx_bytes: int,
    ) -> bool:
        """Coalesce one heartbeat; return True when the caller should drain now.

        ``group`` is the device's ``group_id``; ``temperature`` is NaN when the device has
        no sensor; the network counters are bytes since boot. The result is ``len(self) >=
        self.max_pending`` after the call. Nothing is ever dropped or blocked on. Raises
        TypeError if ``device_id`` is not a ``str``, a real field is not a real number or an
        integer field (``group``, ``state``, ``uptime_seconds``, the megabytes, the
        counters) is not an integer; ValueError if ``device_id`` is empty, ``group`` is not
        an id ``group_id`` returned, ``seen_at`` is not a finite Unix time in
        ``[MIN_SEEN_AT, MAX_SEEN_AT]``, a real field is NaN or infinite (``temperature``:
        infinite), ``state`` is outside ``[0, 2**31 - 1]``, ``uptime_seconds`` or a
        megabyte count outside ``[0, 2**63 - 1]`` or a counter outside ``[0, 2**64 - 1]``.
        A refused heartbeat changes nothing.
        """

    def __len__(self) -> int:
        """The number of distinct devices pending in the flush window."""

    @property
    def added(self) -> int:
        """The number of heartbeats ``add`` accepted since construction."""

    @property
    def max_pending(self) -> int:
        """The pending-device count at which ``add`` starts returning True."""

    @property
    def rollup_interval(self) -> int:
        """The length of a rollup bucket, in seconds."""

    @property
    def sample_interval(self) -> float:
        """The GCRA period of per-device samples, in seconds (0: every heartbeat)."""

    def oldest_pending_age(self, now: float) -> float:
        """``now`` minus the least ``seen_at`` accepted since the last drain; 0.0 if none."""

    def drain(self) -> Flush:
        """Empty the flush window into a ``Flush``; the records move to the COPY window.

        ``redis_commands``: one ZADD, then an HSET and an EXPIRE per drained device, in
        first-arrival order. ``transitions``: ``(device_id, previous_state, new_state)`` for
        each drained device whose state differs from the one last drained for it (-1 if
        never drained); the drained state becomes the remembered one. ``rollups``: per
        (bucket, group) seen since the last drain, one ``(bucket_start, device_type,
        version, metric, count, sum, min, max, sketch)`` row per metric with readings.
        """

    def drain_copy_records(self) -> list[CopyRecord]:
        """Empty the COPY window: one record per device drained since the last call.

        A ``CopyRecord`` per device (``seen_at`` a UTC datetime, ``temperature`` None for
        no sensor), from the device's last drained record with the OR of the ``sample``
        flags of the records drained since, in order of first arrival since the last call.
        """

    def __reduce__(self) -> NoReturn:
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""

    def forget(self, device_id: str) -> None:
        """Drop what the batcher remembers of ``device_id`` and its entries in both windows.

        Its next drain reports a transition from -1, its next heartbeat has unknown rates
        and is a sample. Rollups keep its heartbeats. Forgetting an unknown device is a
        no-op. Raises TypeError if ``device_id`` is not a ``str``.
        """
