"""Pure-Python reference for the heartbeat coalescing buffer.

``core_ext._batcher`` (Cython) is the hot-path twin of this module and must behave
identically; this module defines what "identically" means. Invariants:

* At most one pending entry per device. ``len(batcher)`` is the number of distinct devices
  added since the last ``drain()`` and not forgotten since.
* A pending entry holds the values of the heartbeat with the greatest ``seen_at`` among
  those coalesced into it; on a tie the later ``add`` call wins. Its ``count`` is the number
  of heartbeats coalesced into it (always >= 1).
* ``drain()`` reports the pending devices in the order of their first arrival since the
  last drain (a device forgotten and re-added counts from its re-add), then empties the
  buffer.
* The batcher remembers, per device, the state it last drained for it, until ``forget``.
  Draining a device whose state differs from that memory yields a transition; a device
  with no memory yields one with previous state -1 (valid states are never negative).
* ``add`` validates everything before it changes anything: a refused heartbeat raises and
  leaves the batcher untouched (it is not counted in ``added``). Values are never clamped.
* ``add`` never blocks and never drops: it only signals (returns True) once ``max_pending``
  or more devices are pending; draining is the caller's job.
* Not thread-safe: share a batcher between threads only under a lock.

Argument conversion mirrors the C-typed arguments of the compiled twin: ``device_id`` must
be exactly ``str``; ``seen_at`` and the percentages accept any real number (``__float__`` or
``__index__``, never ``str``) and are stored as ``float``; ``state`` and ``uptime_seconds``
accept any integer (``__index__``, never ``float``) and are stored as ``int``.
"""

from __future__ import annotations

import math
import operator
import sys
from typing import Final, NoReturn, SupportsFloat, SupportsIndex, TypeAlias, final

HeartbeatRecord: TypeAlias = tuple[str, float, int, float, float, float, int, int]
"""``(device_id, seen_at, state, cpu_percent, memory_percent, disk_percent,
uptime_seconds, count)``"""

StateTransition: TypeAlias = tuple[str, int, int]
"""``(device_id, previous_state, new_state)``; ``previous_state`` is -1 for a first drain."""

NEVER_DRAINED: Final = -1
"""The ``previous_state`` reported for a device this batcher has no drained state for."""

MAX_STATE: Final = 2**31 - 1
"""States are int32-ranged, non-negative codes (``0 <= state <= MAX_STATE``)."""

MAX_UPTIME_SECONDS: Final = 2**63 - 1
"""``uptime_seconds`` is int64-ranged and non-negative."""


def _as_double(value: SupportsFloat | SupportsIndex) -> float:
    """Convert ``value`` as a C ``double`` argument does.

    ``math.isfinite`` converts exactly that way (``__float__``, then ``__index__``; ``str``,
    ``bytes`` and ``None`` raise TypeError), whereas ``float()`` alone would parse strings.
    """
    math.isfinite(value)
    return float(value)


def _require_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _integer(name: str, value: SupportsIndex, minimum: int, maximum: int) -> int:
    """Convert ``value`` as an integer (``__index__``; floats are refused) within bounds."""
    number = operator.index(value)
    if not minimum <= number <= maximum:
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {number!r}")
    return int(number)


@final
class _Pending:
    """The coalesced heartbeat of one pending device."""

    __slots__ = (
        "count",
        "cpu_percent",
        "disk_percent",
        "memory_percent",
        "seen_at",
        "state",
        "uptime_seconds",
    )

    def __init__(
        self,
        seen_at: float,
        state: int,
        cpu_percent: float,
        memory_percent: float,
        disk_percent: float,
        uptime_seconds: int,
    ) -> None:
        self.seen_at = seen_at
        self.state = state
        self.cpu_percent = cpu_percent
        self.memory_percent = memory_percent
        self.disk_percent = disk_percent
        self.uptime_seconds = uptime_seconds
        self.count = 1


@final
class HeartbeatBatcher:
    """Coalesces heartbeats per device until drained, and detects state transitions.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie) and counts the heartbeats coalesced. ``drain`` returns one record per pending
    device in first-arrival order, plus a transition for every drained device whose state
    differs from the one last drained for it (previous state -1 if never drained).
    """

    __slots__ = ("_added", "_last_state", "_max_pending", "_pending")

    def __init__(self, max_pending: int = 65536) -> None:
        """Create an empty batcher; ``add`` signals a flush at ``max_pending`` devices.

        Raises ValueError unless ``1 <= max_pending <= sys.maxsize`` (TypeError if it is
        not an integer).
        """
        self._max_pending = _integer("max_pending", max_pending, 1, sys.maxsize)
        # device_id -> its coalesced heartbeat; insertion order is first-arrival order.
        self._pending: dict[str, _Pending] = {}
        # device_id -> the state last drained for it.
        self._last_state: dict[str, int] = {}
        self._added = 0

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
        # Conversions first, in argument order: the compiled twin's C-typed signature
        # converts its arguments before its body validates any value.
        if type(device_id) is not str:
            raise TypeError(f"device_id must be str, not {type(device_id).__name__}")
        seen = _as_double(seen_at)
        cpu = _as_double(cpu_percent)
        memory = _as_double(memory_percent)
        disk = _as_double(disk_percent)
        # Then value checks, in argument order.
        if not device_id:
            raise ValueError("device_id must not be empty")
        _require_finite("seen_at", seen)
        state_code = _integer("state", state, 0, MAX_STATE)
        _require_finite("cpu_percent", cpu)
        _require_finite("memory_percent", memory)
        _require_finite("disk_percent", disk)
        uptime = _integer("uptime_seconds", uptime_seconds, 0, MAX_UPTIME_SECONDS)

        self._added += 1
        entry = self._pending.get(device_id)
        if entry is None:
            self._pending[device_id] = _Pending(seen, state_code, cpu, memory, disk, uptime)
        else:
            entry.count += 1
            if seen >= entry.seen_at:
                entry.seen_at = seen
                entry.state = state_code
                entry.cpu_percent = cpu
                entry.memory_percent = memory
                entry.disk_percent = disk
                entry.uptime_seconds = uptime
        return len(self._pending) >= self._max_pending

    def __len__(self) -> int:
        """The number of distinct devices pending since the last drain."""
        return len(self._pending)

    @property
    def added(self) -> int:
        """The number of heartbeats ``add`` accepted since construction."""
        return self._added

    @property
    def max_pending(self) -> int:
        """The pending-device count at which ``add`` starts returning True."""
        return self._max_pending

    def drain(self) -> tuple[list[HeartbeatRecord], list[StateTransition]]:
        """Empty the buffer; return ``(records, transitions)`` in first-arrival order.

        ``records`` holds ``(device_id, seen_at, state, cpu_percent, memory_percent,
        disk_percent, uptime_seconds, count)`` per pending device. ``transitions`` holds
        ``(device_id, previous_state, new_state)`` for each drained device whose state
        differs from the state last drained for it (-1 if never drained); the drained state
        becomes the remembered one.
        """
        pending, self._pending = self._pending, {}
        records: list[HeartbeatRecord] = []
        transitions: list[StateTransition] = []
        for device_id, entry in pending.items():
            records.append(
                (
                    device_id,
                    entry.seen_at,
                    entry.state,
                    entry.cpu_percent,
                    entry.memory_percent,
                    entry.disk_percent,
                    entry.uptime_seconds,
                    entry.count,
                )
            )
            previous = self._last_state.get(device_id, NEVER_DRAINED)
            if entry.state != previous:
                transitions.append((device_id, previous, entry.state))
                self._last_state[device_id] = entry.state
        return records, transitions

    def __reduce__(self) -> NoReturn:
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")

    def forget(self, device_id: str) -> None:
        """Drop the remembered state of ``device_id`` and its pending entry, if any.

        Its next drain reports a transition from -1. Forgetting an unknown device is a
        no-op. Raises TypeError if ``device_id`` is not a ``str``.
        """
        if type(device_id) is not str:
            raise TypeError(f"device_id must be str, not {type(device_id).__name__}")
        self._pending.pop(device_id, None)
        self._last_state.pop(device_id, None)
