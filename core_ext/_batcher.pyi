"""Heartbeat coalescing buffer: the compiled twin of ``core_ext.reference.batcher``.

The reference module defines the semantics and states the invariants; this one behaves
identically. Argument conversion: ``device_id`` must be exactly ``str``; ``seen_at`` and the
percentages accept any real number (``__float__`` or ``__index__``, never ``str``) and are
stored as ``float``; ``state`` and ``uptime_seconds`` accept any integer (``__index__``,
never ``float``) and are stored as ``int``.
"""

from typing import Final, NoReturn, TypeAlias, final

HeartbeatRecord: TypeAlias = tuple[str, float, int, float, float, float, int, int]
"""``(device_id, seen_at, state, cpu_percent, memory_percent, disk_percent,
uptime_seconds, count)``"""

StateTransition: TypeAlias = tuple[str, int, int]
"""``(device_id, previous_state, new_state)``; ``previous_state`` is -1 for a first drain."""

NEVER_DRAINED: Final = -1
"""The ``previous_state`` reported for a device this batcher has no drained state for."""

MAX_STATE: Final = 2147483647
"""States are int32-ranged, non-negative codes (``0 <= state <= MAX_STATE``)."""

MAX_UPTIME_SECONDS: Final = 9223372036854775807
"""``uptime_seconds`` is int64-ranged and non-negative."""

@final
class HeartbeatBatcher:
    """Coalesces heartbeats per device until drained, and detects state transitions.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie) and counts the heartbeats coalesced. ``drain`` returns one record per pending
    device in first-arrival order, plus a transition for every drained device whose state
    differs from the one last drained for it (previous state -1 if never drained).
    """

    def __init__(self, max_pending: int = 65536) -> None:
        """Create an empty batcher; ``add`` signals a flush at ``max_pending`` devices.

        Raises ValueError unless ``1 <= max_pending <= sys.maxsize`` (TypeError if it is
        not an integer).
        """

    def add(
        self,
        device_id: str,
        seen_at: float,
        state: int,
        cpu_percent: float,
        memory_percent: float,
        disk_percent: float,
        uptime_seconds: int,
    ) -> bool:
        """Coalesce one heartbeat; return True when the caller should drain now.

        The result is ``len(self) >= self.max_pending`` after the call. Nothing is ever
        dropped or blocked on. Raises TypeError if ``device_id`` is not a ``str``, a value
        field is not a real number or ``state``/``uptime_seconds`` is not an integer;
        ValueError if ``device_id`` is empty, ``seen_at`` or a percentage is NaN or
        infinite, ``state`` is outside ``[0, 2**31 - 1]`` or ``uptime_seconds`` is outside
        ``[0, 2**63 - 1]``. A refused heartbeat changes nothing.
        """

    def __len__(self) -> int:
        """The number of distinct devices pending since the last drain."""

    @property
    def added(self) -> int:
        """The number of heartbeats ``add`` accepted since construction."""

    @property
    def max_pending(self) -> int:
        """The pending-device count at which ``add`` starts returning True."""

    def drain(self) -> tuple[list[HeartbeatRecord], list[StateTransition]]:
        """Empty the buffer; return ``(records, transitions)`` in first-arrival order.

        ``records`` holds ``(device_id, seen_at, state, cpu_percent, memory_percent,
        disk_percent, uptime_seconds, count)`` per pending device. ``transitions`` holds
        ``(device_id, previous_state, new_state)`` for each drained device whose state
        differs from the state last drained for it (-1 if never drained); the drained state
        becomes the remembered one.
        """

    def __reduce__(self) -> NoReturn:
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""

    def forget(self, device_id: str) -> None:
        """Drop the remembered state of ``device_id`` and its pending entry, if any.

        Its next drain reports a transition from -1. Forgetting an unknown device is a
        no-op. Raises TypeError if ``device_id`` is not a ``str``.
        """
