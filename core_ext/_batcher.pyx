# cython: language_level=3, autotestdict=False
"""Heartbeat batcher: the compiled twin of ``core_ext.reference.batcher``.

The reference module defines the semantics (see its docstring for the invariants); this
one must behave identically, only faster. Layout (the reference's, with C-level objects):

* ``_window``: device_id -> ``_Pending``, a fresh dict per flush window. ``add`` touches
  only it, the new or coalesced ``_Pending`` and the group's current rollup accumulator:
  memory that is hot, whatever the fleet size. The ``_Pending`` objects come from
  ``_pool``, handed out in arrival order and reused by every window (so they are written
  sequentially and stay warm); one ``PyDict_SetDefault`` both finds and inserts.
* ``_last_state`` (device_id -> state) and ``_copy`` (device_id -> ``_Copy``, the COPY
  window) are persistent and touched only by ``drain``, once per drained device.
* Dict insertion order is first-arrival order; ``forget`` is a ``pop`` on the three dicts.
* Rollups: one ``_Accumulator`` per (bucket, group) seen since the last drain, in
  ``_accumulators`` (creation order, the reference's dict order). ``_current[group]`` is
  the accumulator that group used last, so ``add`` finds it with one list index and one
  comparison; only a heartbeat in another bucket than its group's previous one (a minute
  boundary) goes through the ``_by_bucket`` dict.
* COPY records' datetimes are built from calendar fields computed here in C and
  ``datetime_new``, rounding as ``datetime.fromtimestamp`` does (half-even to the
  microsecond): cheaper than calling ``datetime.fromtimestamp`` per record
  (``bench/core_batcher.py`` measures both).

Why this layout: at fleet scale ``add`` is memory-bound. With 1k devices its own work is a
few tens of ns beyond the call; with 100k devices (device ids cold, 50k-heartbeat windows)
the cache misses dominate. Per ``add`` in one interleaved run on the development VM: the
first version, one persistent object per device reused on every heartbeat (no allocation,
but a cold object per ``add``), ~620 ns; a fresh dict of newly allocated objects per
window ~370 ns; this layout (pooled objects, one probe, plain C methods) ~340 ns; the
reference ~1900 ns; the same loop calling a no-op method ~180 ns. An open-addressing table
with inline hash tags over a dense arrival-ordered array measured within noise of the
dict, so not worth its manual memory management. What remains is mostly waiting for the
cold device-id string's hash, which any lookup keyed by it pays.
"""

cimport cython
from cpython.datetime cimport datetime_new, get_utc, import_datetime
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from libc.limits cimport INT_MAX, LLONG_MAX
from libc.math cimport INFINITY, fabs, floor, isfinite, modf, round

from core_ext.heartbeat_types import (
    METRICS,
    CopyRecord,
    Flush,
    RedisCommand,
    Rollup,
    StateTransition,
)

import_datetime()

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    Py_ssize_t PyDict_GET_SIZE(object)
    PyObject* PyDict_SetDefault(object, object, object) except NULL

cdef enum:
    _NEVER_DRAINED = -1
    _MAX_GROUPS = 65536
    _MAX_STATS_TTL = INT_MAX
    _DAY = 86400

NEVER_DRAINED = _NEVER_DRAINED
MAX_STATE = INT_MAX
MAX_UPTIME_SECONDS = LLONG_MAX
MAX_GROUPS = _MAX_GROUPS
MAX_STATS_TTL = _MAX_STATS_TTL

cdef double _MIN_SEEN_AT = -62135596800.0  # 0001-01-01T00:00:00Z
cdef double _MAX_SEEN_AT = 253402300799.0  # 9999-12-31T23:59:59Z
MIN_SEEN_AT = _MIN_SEEN_AT
MAX_SEEN_AT = _MAX_SEEN_AT

cdef object _UTC = get_utc()
cdef str _ZADD = "ZADD"
cdef str _HSET = "HSET"
cdef str _EXPIRE = "EXPIRE"
cdef str _F_SEEN_AT = "seen_at"
cdef str _F_STATE = "state"
cdef str _F_CPU = "cpu"
cdef str _F_MEM = "mem"
cdef str _F_DISK = "disk"
cdef str _F_UPTIME = "uptime"
cdef str _F_COUNT = "count"
cdef str _M_CPU = METRICS[0]
cdef str _M_MEM = METRICS[1]
cdef str _M_DISK = METRICS[2]


cdef inline long long _integer(
    object value, str name, long long minimum, long long maximum
) except -1:
    """``operator.index(value)`` as a C long long, ValueError outside [minimum, maximum].

    ``minimum`` must be >= 0: -1 signals the exception.
    """
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


cdef object _utc_datetime(double timestamp):
    """``datetime.fromtimestamp(timestamp, timezone.utc)`` for MIN_SEEN_AT..MAX_SEEN_AT.

    The microsecond rounding is CPython's (``_PyTime_DoubleToDenominator``, half-even); the
    calendar is the proleptic Gregorian one of ``gmtime`` (H. Hinnant's days_from_civil
    inverse). The differential tests compare it with ``datetime.fromtimestamp``.
    """
    cdef double whole
    cdef double micro = modf(timestamp, &whole) * 1e6
    cdef double rounded = round(micro)
    if fabs(micro - rounded) == 0.5:
        rounded = 2.0 * round(micro / 2.0)
    if rounded >= 1e6:
        rounded -= 1e6
        whole += 1.0
    elif rounded < 0.0:
        rounded += 1e6
        whole -= 1.0
    cdef long long seconds = <long long>whole
    # cdivision is on: C division truncates, so floor by hand.
    cdef long long days = seconds / _DAY
    cdef long long rest = seconds - days * _DAY
    if rest < 0:
        rest += _DAY
        days -= 1
    cdef long long z = days + 719468  # days from 0000-03-01
    cdef long long era = (z if z >= 0 else z - 146096) / 146097
    cdef long long doe = z - era * 146097
    cdef long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    cdef long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    cdef long long mp = (5 * doy + 2) / 153
    cdef int day = <int>(doy - (153 * mp + 2) / 5 + 1)
    cdef int month = <int>(mp + 3 if mp < 10 else mp - 9)
    cdef int year = <int>(yoe + era * 400 + (1 if month <= 2 else 0))
    return datetime_new(
        year,
        month,
        day,
        <int>(rest / 3600),
        <int>((rest / 60) % 60),
        <int>(rest % 60),
        <int>rounded,
        _UTC,
    )


@cython.final
@cython.auto_pickle(False)
@cython.no_gc  # holds no object: it can never be part of a reference cycle
cdef class _Pending:
    """One device's coalesced heartbeat in the flush window."""

    cdef double seen_at
    cdef double cpu_percent
    cdef double memory_percent
    cdef double disk_percent
    cdef long long uptime_seconds
    cdef Py_ssize_t count
    cdef int state


@cython.final
@cython.freelist(64)
@cython.auto_pickle(False)
@cython.no_gc
cdef class _Copy:
    """A device's record in the COPY window: its last drained heartbeat."""

    cdef double seen_at
    cdef double cpu_percent
    cdef double memory_percent
    cdef double disk_percent
    cdef long long uptime_seconds


@cython.final
@cython.auto_pickle(False)
@cython.no_gc
cdef class _Accumulator:
    """count, sum, min and max of each metric over one (bucket, group)."""

    cdef long long bucket
    cdef Py_ssize_t group
    cdef long long count
    cdef double cpu_sum, cpu_min, cpu_max
    cdef double mem_sum, mem_min, mem_max
    cdef double disk_sum, disk_min, disk_max


cdef _Accumulator _new_accumulator(long long bucket, Py_ssize_t group):
    cdef _Accumulator acc = _Accumulator.__new__(_Accumulator)
    acc.bucket = bucket
    acc.group = group
    acc.count = 0
    # -0.0 is the identity of float addition; +-inf lose every comparison.
    acc.cpu_sum = acc.mem_sum = acc.disk_sum = -0.0
    acc.cpu_min = acc.mem_min = acc.disk_min = INFINITY
    acc.cpu_max = acc.mem_max = acc.disk_max = -INFINITY
    return acc


@cython.final
@cython.auto_pickle(False)
@cython.binding(False)  # plain C methods: ~7 ns less per call than cyfunction methods
cdef class HeartbeatBatcher:
    """Coalesces heartbeats per device and turns them into ready-to-send flushes.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie), counts the heartbeats coalesced and folds each into its group's rollup.
    ``drain`` returns a ``Flush``: the Redis commands for the pending devices in
    first-arrival order, the state transitions and the rollups; the drained records move on
    to the COPY window, which ``drain_copy_records`` empties into rows for PostgreSQL.
    """

    cdef dict _window  # device_id -> _Pending, since the last drain
    cdef dict _last_state  # device_id -> the state last drained for it
    cdef dict _copy  # device_id -> _Copy, since the last drain_copy_records
    cdef list _pool  # _Pending objects for the flush window, reused window after window
    cdef Py_ssize_t _taken  # handed out from _pool in this window (forgotten ones too)
    cdef Py_ssize_t _max_pending
    cdef long long _added
    cdef str _last_seen_key
    cdef str _stats_key_prefix
    cdef str _stats_key_suffix
    cdef object _stats_ttl
    cdef long long _rollup_interval
    cdef double _rollup_interval_f
    cdef list _groups  # group id -> (device_type, version)
    cdef dict _group_ids  # (device_type, version) -> group id
    cdef Py_ssize_t _group_count
    cdef list _current  # group id -> its last _Accumulator (or None)
    cdef list _accumulators  # creation order since the last drain
    cdef dict _by_bucket  # (group, bucket) -> _Accumulator, same content
    cdef long long _window_heartbeats
    cdef double _window_min
    cdef double _window_max

    def __cinit__(self, *args, **kwargs):
        self._window = {}
        self._pool = []
        self._taken = 0
        self._last_state = {}
        self._copy = {}
        self._max_pending = 1
        self._added = 0
        self._last_seen_key = "last_seen"
        self._stats_key_prefix = "stats:"
        self._stats_key_suffix = ""
        self._stats_ttl = 86400
        self._rollup_interval = 60
        self._rollup_interval_f = 60.0
        self._groups = []
        self._group_ids = {}
        self._group_count = 0
        self._current = []
        self._accumulators = []
        self._by_bucket = {}
        self._window_heartbeats = 0
        self._window_min = INFINITY
        self._window_max = -INFINITY

    def __init__(
        self,
        max_pending=65536,
        *,
        str last_seen_key not None="last_seen",
        str stats_key_prefix not None="stats:",
        str stats_key_suffix not None="",
        stats_ttl=86400,
        rollup_interval=60,
    ):
        """Create an empty batcher; ``add`` signals a flush at ``max_pending`` devices.

        ``last_seen_key`` names the ZSET the ZADD writes; a device's stats hash is
        ``stats_key_prefix + device_id + stats_key_suffix``, expiring ``stats_ttl`` seconds
        after its last flush. Rollup buckets are ``rollup_interval`` seconds long.

        Raises TypeError if a key part is not a ``str`` or a number is not an integer;
        ValueError unless ``1 <= max_pending <= sys.maxsize``, ``1 <= stats_ttl <=
        MAX_STATS_TTL`` and ``rollup_interval`` is a positive divisor of 86400.
        """
        self._max_pending = <Py_ssize_t>_integer(max_pending, "max_pending", 1, PY_SSIZE_T_MAX)
        self._stats_ttl = _integer(stats_ttl, "stats_ttl", 1, _MAX_STATS_TTL)
        cdef long long interval = _integer(rollup_interval, "rollup_interval", 1, _DAY)
        if _DAY % interval:
            raise ValueError(f"rollup_interval must divide 86400 (a day), got {interval}")
        self._rollup_interval = interval
        self._rollup_interval_f = <double>interval
        self._last_seen_key = last_seen_key
        self._stats_key_prefix = stats_key_prefix
        self._stats_key_suffix = stats_key_suffix

    def group_id(self, str device_type not None, str version not None):
        """The id of the device group ``(device_type, version)``, interned on first use.

        Ids are 0, 1, 2... in first-call order and stay valid for the batcher's life. Raises
        TypeError if either is not a ``str``; ValueError when the group is new and
        ``MAX_GROUPS`` groups exist already.
        """
        key = (device_type, version)
        cdef object found = self._group_ids.get(key)
        if found is not None:
            return found
        if self._group_count >= _MAX_GROUPS:
            raise ValueError(
                f"too many device groups (at most {_MAX_GROUPS}); "
                f"cannot add {device_type!r} {version!r}"
            )
        group = self._group_count
        self._groups.append(key)
        self._group_ids[key] = group
        self._current.append(None)
        self._group_count += 1
        return group

    def add(
        self,
        str device_id not None,
        object group,
        double seen_at,
        object state,
        double cpu_percent,
        double memory_percent,
        double disk_percent,
        object uptime_seconds,
    ):
        """Coalesce one heartbeat; return True when the caller should drain now.

        ``group`` is the device's ``group_id``. The result is ``len(self) >=
        self.max_pending`` after the call. Nothing is ever dropped or blocked on. Raises
        TypeError if ``device_id`` is not a ``str``, a value field is not a real number or
        ``group``/``state``/``uptime_seconds`` is not an integer; ValueError if
        ``device_id`` is empty, ``group`` is not an id ``group_id`` returned, ``seen_at`` is
        not a finite Unix time in ``[MIN_SEEN_AT, MAX_SEEN_AT]``, a percentage is NaN or
        infinite, ``state`` is outside ``[0, 2**31 - 1]`` or ``uptime_seconds`` is outside
        ``[0, 2**63 - 1]``. A refused heartbeat changes nothing.
        """
        # Value checks in argument order (the C-typed signature already converted types),
        # all before any mutation.
        if not device_id:
            raise ValueError("device_id must not be empty")
        cdef int overflow = 0
        # Raises TypeError itself when group is not an integer.
        cdef long long g = PyLong_AsLongLongAndOverflow(group, &overflow)
        if overflow != 0 or g < 0 or g >= self._group_count:
            raise ValueError(
                f"group must be an id group_id() returned (0 <= group < "
                f"{self._group_count}), got {group!r}"
            )
        # Also refuses NaN (every comparison with it is false).
        if not (_MIN_SEEN_AT <= seen_at <= _MAX_SEEN_AT):
            raise ValueError(
                f"seen_at must be a finite Unix time in [{_MIN_SEEN_AT}, {_MAX_SEEN_AT}], "
                f"got {seen_at!r}"
            )
        cdef int c_state = <int>_integer(state, "state", 0, INT_MAX)
        _require_finite("cpu_percent", cpu_percent)
        _require_finite("memory_percent", memory_percent)
        _require_finite("disk_percent", disk_percent)
        cdef long long c_uptime = _integer(
            uptime_seconds, "uptime_seconds", 0, LLONG_MAX
        )

        # Rollup: every accepted heartbeat counts, whether or not it wins coalescing.
        cdef long long bucket = <long long>floor(seen_at / self._rollup_interval_f)
        cdef _Accumulator acc = <_Accumulator>self._current[g]
        if acc is None or acc.bucket != bucket:
            acc = self._accumulator(<Py_ssize_t>g, bucket)
        acc.count += 1
        acc.cpu_sum += cpu_percent
        if cpu_percent < acc.cpu_min:
            acc.cpu_min = cpu_percent
        if cpu_percent > acc.cpu_max:
            acc.cpu_max = cpu_percent
        acc.mem_sum += memory_percent
        if memory_percent < acc.mem_min:
            acc.mem_min = memory_percent
        if memory_percent > acc.mem_max:
            acc.mem_max = memory_percent
        acc.disk_sum += disk_percent
        if disk_percent < acc.disk_min:
            acc.disk_min = disk_percent
        if disk_percent > acc.disk_max:
            acc.disk_max = disk_percent
        self._window_heartbeats += 1
        if seen_at < self._window_min:
            self._window_min = seen_at
        if seen_at > self._window_max:
            self._window_max = seen_at
        self._added += 1

        cdef _Pending entry
        if self._taken == len(self._pool):
            self._pool.append(_Pending.__new__(_Pending))
        cdef _Pending fresh = <_Pending>self._pool[self._taken]
        # One probe: inserts ``fresh`` for a new device, else returns its entry (borrowed).
        cdef PyObject* found = PyDict_SetDefault(self._window, device_id, fresh)
        if found == <PyObject*>fresh:
            self._taken += 1
            entry = fresh
            entry.count = 1
        else:
            entry = <_Pending>found
            entry.count += 1
            if seen_at < entry.seen_at:  # an older heartbeat: counted, not kept
                return PyDict_GET_SIZE(self._window) >= self._max_pending
        entry.seen_at = seen_at
        entry.state = c_state
        entry.cpu_percent = cpu_percent
        entry.memory_percent = memory_percent
        entry.disk_percent = disk_percent
        entry.uptime_seconds = c_uptime
        return PyDict_GET_SIZE(self._window) >= self._max_pending

    cdef _Accumulator _accumulator(self, Py_ssize_t group, long long bucket):
        """The accumulator of (bucket, group), created if new; it becomes the group's current."""
        key = (group, bucket)
        cdef _Accumulator acc
        cdef object found = self._by_bucket.get(key)
        if found is None:
            acc = _new_accumulator(bucket, group)
            self._by_bucket[key] = acc
            self._accumulators.append(acc)
        else:
            acc = <_Accumulator>found
        self._current[group] = acc
        return acc

    def __len__(self):
        """The number of distinct devices pending in the flush window."""
        return PyDict_GET_SIZE(self._window)

    @property
    def added(self):
        """The number of heartbeats ``add`` accepted since construction."""
        return self._added

    @property
    def max_pending(self):
        """The pending-device count at which ``add`` starts returning True."""
        return self._max_pending

    @property
    def rollup_interval(self):
        """The length of a rollup bucket, in seconds."""
        return self._rollup_interval

    def oldest_pending_age(self, double now):
        """``now`` minus the least ``seen_at`` accepted since the last drain; 0.0 if none."""
        if self._window_heartbeats == 0:
            return 0.0
        return now - self._window_min

    def drain(self):
        """Empty the flush window into a ``Flush``; the records move to the COPY window.

        ``redis_commands``: one ZADD, then an HSET and an EXPIRE per drained device, in
        first-arrival order. ``transitions``: ``(device_id, previous_state, new_state)`` for
        each drained device whose state differs from the one last drained for it (-1 if
        never drained); the drained state becomes the remembered one. ``rollups``: per
        (bucket, group) seen since the last drain, one ``(bucket_start, device_type,
        version, metric, count, sum, min, max)`` row per metric.
        """
        cdef dict window = self._window
        cdef Py_ssize_t devices = PyDict_GET_SIZE(window)
        cdef _Copy record
        cdef list commands = []
        cdef list transitions = []
        cdef list zadd
        cdef dict last_state = self._last_state
        cdef dict copy = self._copy
        cdef Py_ssize_t pos = 0
        cdef PyObject* key_ptr
        cdef PyObject* value_ptr
        cdef PyObject* previous_ptr
        cdef PyObject* found
        cdef str device_id
        cdef str key
        cdef _Pending entry
        cdef int previous
        self._window = {}
        self._taken = 0
        if devices:
            zadd = [_ZADD, self._last_seen_key]
            while PyDict_Next(window, &pos, &key_ptr, &value_ptr):
                zadd.append((<_Pending>value_ptr).seen_at)
                zadd.append(<str>key_ptr)
            commands.append(tuple(zadd))
        pos = 0
        while PyDict_Next(window, &pos, &key_ptr, &value_ptr):
            device_id = <str>key_ptr
            entry = <_Pending>value_ptr
            key = f"{self._stats_key_prefix}{device_id}{self._stats_key_suffix}"
            commands.append(
                (
                    _HSET,
                    key,
                    _F_SEEN_AT,
                    entry.seen_at,
                    _F_STATE,
                    entry.state,
                    _F_CPU,
                    entry.cpu_percent,
                    _F_MEM,
                    entry.memory_percent,
                    _F_DISK,
                    entry.disk_percent,
                    _F_UPTIME,
                    entry.uptime_seconds,
                    _F_COUNT,
                    entry.count,
                )
            )
            commands.append((_EXPIRE, key, self._stats_ttl))
            previous_ptr = PyDict_GetItem(last_state, device_id)
            previous = _NEVER_DRAINED if previous_ptr is NULL else <int>(<object>previous_ptr)
            if entry.state != previous:
                transitions.append((device_id, previous, entry.state))
                last_state[device_id] = entry.state
            # An existing key keeps its position (first arrival), takes the new values.
            found = PyDict_GetItem(copy, device_id)
            if found is NULL:
                record = _Copy.__new__(_Copy)
                copy[device_id] = record
            else:
                record = <_Copy>found
            record.seen_at = entry.seen_at
            record.cpu_percent = entry.cpu_percent
            record.memory_percent = entry.memory_percent
            record.disk_percent = entry.disk_percent
            record.uptime_seconds = entry.uptime_seconds

        cdef list rollups = []
        cdef _Accumulator acc
        for acc in self._accumulators:
            bucket_start = _utc_datetime(<double>(acc.bucket * self._rollup_interval))
            device_type, version = self._groups[acc.group]
            rollups.append(
                (bucket_start, device_type, version, _M_CPU, acc.count,
                 acc.cpu_sum, acc.cpu_min, acc.cpu_max)
            )
            rollups.append(
                (bucket_start, device_type, version, _M_MEM, acc.count,
                 acc.mem_sum, acc.mem_min, acc.mem_max)
            )
            rollups.append(
                (bucket_start, device_type, version, _M_DISK, acc.count,
                 acc.disk_sum, acc.disk_min, acc.disk_max)
            )
        interval = (
            (self._window_min, self._window_max) if self._window_heartbeats else None
        )
        flush = Flush(
            commands, transitions, rollups, interval, devices, self._window_heartbeats
        )
        if self._accumulators:
            self._accumulators = []
            self._by_bucket = {}
            self._current = [None] * self._group_count
        self._window_heartbeats = 0
        self._window_min = INFINITY
        self._window_max = -INFINITY
        return flush

    def drain_copy_records(self):
        """Empty the COPY window: one record per device drained since the last call.

        ``(device_id, seen_at, cpu_percent, memory_percent, disk_percent,
        uptime_seconds)`` per device, ``seen_at`` a UTC datetime, from the device's last
        drained record, in order of first arrival since the last call.
        """
        cdef dict window = self._copy
        cdef list records = []
        cdef Py_ssize_t pos = 0
        cdef PyObject* key_ptr
        cdef PyObject* value_ptr
        cdef _Copy entry
        self._copy = {}
        while PyDict_Next(window, &pos, &key_ptr, &value_ptr):
            entry = <_Copy>value_ptr
            records.append(
                (
                    <str>key_ptr,
                    _utc_datetime(entry.seen_at),
                    entry.cpu_percent,
                    entry.memory_percent,
                    entry.disk_percent,
                    entry.uptime_seconds,
                )
            )
        return records

    def __reduce__(self):
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")

    def forget(self, str device_id not None):
        """Drop the remembered state of ``device_id`` and its entries in both windows.

        Its next drain reports a transition from -1. Rollups keep its heartbeats.
        Forgetting an unknown device is a no-op. Raises TypeError if ``device_id`` is not
        a ``str``.
        """
        self._window.pop(device_id, None)
        self._copy.pop(device_id, None)
        self._last_state.pop(device_id, None)
