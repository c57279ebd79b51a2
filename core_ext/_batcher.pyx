# cython: language_level=3, autotestdict=False
"""Heartbeat coalescing buffer: the compiled twin of ``core_ext.reference.batcher``.

The reference module defines the semantics (see its docstring for the invariants); this
one must behave identically, only faster. Layout:

* ``_slots``: device_id -> ``_Slot``, one per device that is pending or whose last drained
  state is remembered. A slot is reused for every heartbeat and every drain of its device,
  so the steady state (known devices heartbeating) allocates nothing but the drained tuples.
* ``_order``: the slots that became pending since the last drain, in first-arrival order.
  ``forget`` on a pending device only unmarks its slot ("dead" entry, skipped by ``drain``);
  dead entries are compacted away once they outnumber the live ones.
"""

cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from libc.limits cimport INT_MAX, LLONG_MAX
from libc.math cimport isfinite

HeartbeatRecord = tuple[str, float, int, float, float, float, int, int]
StateTransition = tuple[str, int, int]

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef enum:
    _NEVER_DRAINED = -1
    _COMPACT_MIN_DEAD = 32  # dead _order entries tolerated before compaction is considered

NEVER_DRAINED = _NEVER_DRAINED
MAX_STATE = INT_MAX
MAX_UPTIME_SECONDS = LLONG_MAX


cdef inline long long _integer(
    object value, str name, long long minimum, long long maximum
) except -1:
    """``operator.index(value)`` as a C long long, ValueError outside [minimum, maximum]."""
    cdef int overflow = 0
    # Accepts int and __index__ (never float: TypeError); reports overflow without raising.
    cdef long long number = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0 or number < minimum or number > maximum:
        raise ValueError(f"{name} must be in [{minimum}, {maximum}], got {value!r}")
    return number


cdef inline int _require_finite(str name, double value) except -1:
    if not isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return 0


@cython.final
@cython.freelist(64)
@cython.auto_pickle(False)
@cython.no_gc  # holds only a str: it can never be part of a reference cycle
cdef class _Slot:
    """One device: its pending coalesced heartbeat and its last drained state."""

    cdef str device_id
    cdef double seen_at
    cdef int state
    cdef double cpu_percent
    cdef double memory_percent
    cdef double disk_percent
    cdef long long uptime_seconds
    cdef Py_ssize_t count
    cdef int last_state  # _NEVER_DRAINED until first drained
    cdef bint pending  # in _order and not forgotten


@cython.final
@cython.auto_pickle(False)
cdef class HeartbeatBatcher:
    """Coalesces heartbeats per device until drained, and detects state transitions.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie) and counts the heartbeats coalesced. ``drain`` returns one record per pending
    device in first-arrival order, plus a transition for every drained device whose state
    differs from the one last drained for it (previous state -1 if never drained).
    """

    cdef dict _slots
    cdef list _order
    cdef Py_ssize_t _pending
    cdef Py_ssize_t _dead
    cdef Py_ssize_t _max_pending
    cdef long long _added

    def __cinit__(self, *args, **kwargs):
        self._slots = {}
        self._order = []
        self._pending = 0
        self._dead = 0
        self._max_pending = 1
        self._added = 0

    def __init__(self, max_pending=65536):
        """Create an empty batcher; ``add`` signals a flush at ``max_pending`` devices.

        Raises ValueError unless ``1 <= max_pending <= sys.maxsize`` (TypeError if it is
        not an integer).
        """
        self._max_pending = <Py_ssize_t>_integer(max_pending, "max_pending", 1, PY_SSIZE_T_MAX)

    def add(
        self,
        str device_id not None,
        double seen_at,
        object state,
        double cpu_percent,
        double memory_percent,
        double disk_percent,
        object uptime_seconds,
    ):
        """Coalesce one heartbeat; return True when the caller should drain now.

        The result is ``len(self) >= self.max_pending`` after the call. Nothing is ever
        dropped or blocked on. Raises TypeError if ``device_id`` is not a ``str``, a value
        field is not a real number or ``state``/``uptime_seconds`` is not an integer;
        ValueError if ``device_id`` is empty, ``seen_at`` or a percentage is NaN or
        infinite, ``state`` is outside ``[0, 2**31 - 1]`` or ``uptime_seconds`` is outside
        ``[0, 2**63 - 1]``. A refused heartbeat changes nothing.
        """
        # Value checks in argument order (the C-typed signature already converted types),
        # all before any mutation.
        if not device_id:
            raise ValueError("device_id must not be empty")
        _require_finite("seen_at", seen_at)
        cdef int c_state = <int>_integer(state, "state", 0, INT_MAX)
        _require_finite("cpu_percent", cpu_percent)
        _require_finite("memory_percent", memory_percent)
        _require_finite("disk_percent", disk_percent)
        cdef long long c_uptime = _integer(
            uptime_seconds, "uptime_seconds", 0, LLONG_MAX
        )

        cdef _Slot slot
        # Borrowed reference, no exception possible: the key is an exact str.
        cdef PyObject* found = PyDict_GetItem(self._slots, device_id)
        self._added += 1
        if found is not NULL:
            slot = <_Slot>found
            if slot.pending:
                slot.count += 1
                if seen_at >= slot.seen_at:
                    slot.seen_at = seen_at
                    slot.state = c_state
                    slot.cpu_percent = cpu_percent
                    slot.memory_percent = memory_percent
                    slot.disk_percent = disk_percent
                    slot.uptime_seconds = c_uptime
                return self._pending >= self._max_pending
        else:
            slot = _Slot.__new__(_Slot)
            slot.device_id = device_id
            slot.last_state = _NEVER_DRAINED
            self._slots[device_id] = slot
        slot.pending = True
        slot.count = 1
        slot.seen_at = seen_at
        slot.state = c_state
        slot.cpu_percent = cpu_percent
        slot.memory_percent = memory_percent
        slot.disk_percent = disk_percent
        slot.uptime_seconds = c_uptime
        self._order.append(slot)
        self._pending += 1
        return self._pending >= self._max_pending

    def __len__(self):
        """The number of distinct devices pending since the last drain."""
        return self._pending

    @property
    def added(self):
        """The number of heartbeats ``add`` accepted since construction."""
        return self._added

    @property
    def max_pending(self):
        """The pending-device count at which ``add`` starts returning True."""
        return self._max_pending

    def drain(self):
        """Empty the buffer; return ``(records, transitions)`` in first-arrival order.

        ``records`` holds ``(device_id, seen_at, state, cpu_percent, memory_percent,
        disk_percent, uptime_seconds, count)`` per pending device. ``transitions`` holds
        ``(device_id, previous_state, new_state)`` for each drained device whose state
        differs from the state last drained for it (-1 if never drained); the drained state
        becomes the remembered one.
        """
        cdef list order = self._order
        cdef list records = []
        cdef list transitions = []
        cdef _Slot slot
        self._order = []
        self._pending = 0
        self._dead = 0
        for slot in order:
            if not slot.pending:  # forgotten while pending
                continue
            slot.pending = False
            records.append(
                (
                    slot.device_id,
                    slot.seen_at,
                    slot.state,
                    slot.cpu_percent,
                    slot.memory_percent,
                    slot.disk_percent,
                    slot.uptime_seconds,
                    slot.count,
                )
            )
            if slot.state != slot.last_state:
                transitions.append((slot.device_id, slot.last_state, slot.state))
                slot.last_state = slot.state
        return records, transitions

    def __reduce__(self):
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")

    def forget(self, str device_id not None):
        """Drop the remembered state of ``device_id`` and its pending entry, if any.

        Its next drain reports a transition from -1. Forgetting an unknown device is a
        no-op. Raises TypeError if ``device_id`` is not a ``str``.
        """
        cdef _Slot slot
        cdef object popped = self._slots.pop(device_id, None)
        if popped is None:
            return
        slot = <_Slot>popped
        if not slot.pending:
            return
        slot.pending = False
        self._pending -= 1
        self._dead += 1
        if self._dead >= _COMPACT_MIN_DEAD and self._dead > self._pending:
            self._order = [s for s in self._order if (<_Slot>s).pending]
            self._dead = 0
