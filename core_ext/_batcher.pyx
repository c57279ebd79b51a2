# cython: language_level=3, autotestdict=False
"""Heartbeat batcher: the compiled twin of ``core_ext.reference.batcher``.

The reference module defines the semantics (see its docstring for the invariants); this
one must behave identically, only faster. Layout (the reference's, with C-level objects):

* The flush window is ``_pool[:_taken]``: ``_Record`` objects handed out in arrival order
  and reused by every window (so they are written sequentially and stay warm), each naming
  its device. ``add`` finds a device's record through its ``_Device`` (``pending``, valid
  while ``_Device.window`` is the batcher's window number, which ``drain`` increments), so
  one ``_devices`` probe serves rates, sampling and coalescing.
* ``_last_state`` (device_id -> state) and ``_copy`` (device_id -> ``_Record``, the COPY
  window) are persistent and touched only by ``drain``, once per drained device; the
  records ``drain_copy_records`` empties go to ``_spare`` for ``drain`` to reuse.
* Pool order is first-arrival order; ``forget`` pops ``_devices`` (marking its pending
  record forgotten, skipped by ``drain``), ``_copy`` and ``_last_state``.
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

Analytics (docs/analytics.md 2.2-2.4) added, per ``add``: one lookup in ``_devices``
(device_id -> ``_Device``: the previous counters for network rates and the GCRA arrival
time for sampling; persistent, so it is the cold per-device object the first layout paid
for, but touched by a dict probe whose key hash is already cached), and up to 11
``Sketch.add`` calls on the compiled ``fleetd_native.Sketch`` objects of the group's
accumulator. The first implementation called each sketch's bound ``add`` per reading
(~58 ns a call, 11 a heartbeat: ``add`` fell from 6.8M to ~1M heartbeats/s in cache).
Now ``add`` stores the heartbeat's 11 readings in the accumulator's buffer (a C array,
NaN for none), and ``_fold`` hands each metric's readings to its sketch in one
``add_many`` over a float64 buffer when 512 heartbeats are buffered and at ``drain``:
``add_many`` of a sequence makes exactly the sketch sequential ``add`` calls make (same
order, so the same sum; the differential tests compare the bytes). The window's own
``_window`` dict (device_id -> record) went at the same time: its probe of a cold,
growing dict was the second cache miss per heartbeat at fleet scale.
"""

cimport cython
from cpython.datetime cimport datetime_new, get_utc, import_datetime
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES, PyBUF_WRITABLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from libc.limits cimport INT_MAX, LLONG_MAX
from libc.math cimport INFINITY, NAN, fabs, floor, isfinite, isinf, isnan, modf, round

import operator

from fleetd_native import Sketch as _Sketch

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
    _METRIC_COUNT = 11
    _FIRST_ROWS = 32  # heartbeats an accumulator's buffer first has room for
    _MAX_ROWS = 512  # heartbeats buffered per accumulator before folding into its sketches

NEVER_DRAINED = _NEVER_DRAINED
MAX_STATE = INT_MAX
MAX_UPTIME_SECONDS = LLONG_MAX
MAX_MEGABYTES = LLONG_MAX
MAX_COUNTER = 18446744073709551615
MAX_GROUPS = _MAX_GROUPS
MAX_STATS_TTL = _MAX_STATS_TTL

cdef double _MIN_SEEN_AT = -62135596800.0  # 0001-01-01T00:00:00Z
cdef double _MAX_SEEN_AT = 253402300799.0  # 9999-12-31T23:59:59Z
cdef double _MAX_SAMPLE_INTERVAL = 1e9
MIN_SEEN_AT = _MIN_SEEN_AT
MAX_SEEN_AT = _MAX_SEEN_AT
MAX_SAMPLE_INTERVAL = _MAX_SAMPLE_INTERVAL

if len(METRICS) != _METRIC_COUNT:
    raise ImportError("core_ext._batcher is built for 11 rolled-up metrics")

cdef char* _FLOAT64 = "d"  # the struct format of a C double
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
cdef tuple _METRICS = tuple(METRICS)


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


cdef inline int _counter(object value, str name, unsigned long long* out) except -1:
    """``operator.index(value)`` as a uint64 into ``out``, ValueError outside [0, 2**64 - 1]."""
    cdef int overflow = 0
    cdef long long number = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow == 0 and number >= 0:
        out[0] = <unsigned long long>number
        return 0
    if overflow > 0:  # beyond int64: the top half of uint64, or beyond
        big = operator.index(value)
        if big <= 18446744073709551615:
            out[0] = <unsigned long long>big
            return 0
    raise ValueError(f"{name} must be in [0, 18446744073709551615], got {value!r}")


cdef inline int _require_finite(str name, double value) except -1:
    if not isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return 0


cdef inline double _rate(
    unsigned long long counter, unsigned long long previous, double seconds
) noexcept:
    """Bytes per second between two readings of a counter; NaN (unknown) when it went
    backwards or the quotient is not finite. The integer difference is exact, its
    conversion to double rounds to nearest, as Python's ``int / float`` does."""
    if counter < previous:
        return NAN
    cdef double rate = <double>(counter - previous) / seconds
    return rate if isfinite(rate) else NAN


cdef inline object _optional(double value):
    """NaN (no reading) as None, else the float."""
    return None if isnan(value) else value


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
@cython.freelist(64)
@cython.auto_pickle(False)
@cython.no_gc  # holds only a str: it can never be part of a reference cycle
cdef class _Record:
    """One device's heartbeat: coalesced in the flush window (a pooled ``_Record``), or
    its last drained one in the COPY window. NaN stands for None (no temperature, an
    unknown rate)."""

    cdef double seen_at
    cdef double cpu_percent
    cdef double memory_percent
    cdef double disk_percent
    cdef long long uptime_seconds
    cdef long long memory_used_mb
    cdef long long memory_total_mb
    cdef double disk_used_gb
    cdef double disk_total_gb
    cdef double load_avg_1m
    cdef double load_avg_5m
    cdef double load_avg_15m
    cdef double temperature
    cdef double rx_rate
    cdef double tx_rate
    cdef Py_ssize_t count
    cdef int state
    cdef bint sample
    cdef str device_id  # in the flush window: whose heartbeat this is
    cdef bint forgotten  # in the flush window: ``forget`` removed it


cdef inline void _copy_values(_Record into, _Record source) noexcept:
    into.seen_at = source.seen_at
    into.cpu_percent = source.cpu_percent
    into.memory_percent = source.memory_percent
    into.disk_percent = source.disk_percent
    into.uptime_seconds = source.uptime_seconds
    into.memory_used_mb = source.memory_used_mb
    into.memory_total_mb = source.memory_total_mb
    into.disk_used_gb = source.disk_used_gb
    into.disk_total_gb = source.disk_total_gb
    into.load_avg_1m = source.load_avg_1m
    into.load_avg_5m = source.load_avg_5m
    into.load_avg_15m = source.load_avg_15m
    into.temperature = source.temperature
    into.rx_rate = source.rx_rate
    into.tx_rate = source.tx_rate


@cython.final
@cython.auto_pickle(False)
@cython.no_gc  # holds only a _Record: no reference cycle
cdef class _Device:
    """What the batcher remembers of a device between heartbeats: its latest counters, for
    rates, its GCRA theoretical arrival time, for sampling, and its record in the flush
    window (``pending``, valid while ``window`` is the batcher's current one)."""

    cdef double seen_at
    cdef double tat
    cdef unsigned long long rx
    cdef unsigned long long tx
    cdef long long uptime
    cdef long long window
    cdef _Record pending


@cython.final
@cython.auto_pickle(False)
@cython.no_gc  # holds no object
cdef class _Readings:
    """Up to ``_MAX_ROWS`` readings of one metric, exported to ``Sketch.add_many`` as a
    one-dimensional float64 buffer (the batcher's scratch space, reused by every fold)."""

    cdef double values[_MAX_ROWS]
    cdef Py_ssize_t length
    cdef Py_ssize_t itemsize

    def __getbuffer__(self, Py_buffer* view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("the batcher's readings are read-only")
        self.itemsize = sizeof(double)
        view.buf = <void*>self.values
        view.obj = self
        view.len = self.length * self.itemsize
        view.readonly = 1
        view.itemsize = self.itemsize
        view.format = _FLOAT64 if flags & PyBUF_FORMAT else NULL
        view.ndim = 1
        view.shape = &self.length if flags & PyBUF_ND else NULL
        view.strides = &self.itemsize if flags & PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL


@cython.final
@cython.auto_pickle(False)
cdef class _Accumulator:
    """One sketch per metric (None until its first reading) over one (bucket, group), and
    the heartbeats not yet folded into them: ``_METRIC_COUNT`` doubles per heartbeat, NaN
    for no reading, so ``add`` only stores. ``_fold`` hands each metric's readings to its
    sketch in one ``add_many`` (in arrival order: the sketch, its sum included, is the one
    sequential ``add`` calls make) when ``_MAX_ROWS`` are buffered and before a drain."""

    cdef long long bucket
    cdef Py_ssize_t group
    cdef list sketches
    cdef double* rows
    cdef Py_ssize_t length  # heartbeats buffered in rows
    cdef Py_ssize_t capacity  # heartbeats rows has room for (grows to _MAX_ROWS)

    def __dealloc__(self):
        PyMem_Free(self.rows)


cdef _Accumulator _new_accumulator(long long bucket, Py_ssize_t group):
    cdef _Accumulator acc = _Accumulator.__new__(_Accumulator)
    acc.bucket = bucket
    acc.group = group
    acc.sketches = [None] * _METRIC_COUNT
    acc.rows = NULL
    acc.length = 0
    acc.capacity = 0
    return acc


cdef int _fold(_Accumulator acc, _Readings scratch) except -1:
    """Count the buffered heartbeats in the sketches (NaN is no reading) and empty the
    buffer."""
    cdef Py_ssize_t metric, row, n
    cdef double value
    cdef double* rows = acc.rows
    for metric in range(_METRIC_COUNT):
        n = 0
        for row in range(acc.length):
            value = rows[row * _METRIC_COUNT + metric]
            if not isnan(value):
                scratch.values[n] = value
                n += 1
        if n == 0:
            continue
        sketch = acc.sketches[metric]
        if sketch is None:
            sketch = _Sketch()
            acc.sketches[metric] = sketch
        scratch.length = n
        sketch.add_many(scratch)
    acc.length = 0
    return 0


cdef double* _next_row(_Accumulator acc, _Readings scratch) except NULL:
    """Room for one more heartbeat's readings: the buffer grows, or is folded when full."""
    cdef Py_ssize_t capacity
    cdef double* rows
    if acc.length == acc.capacity:
        if acc.capacity < _MAX_ROWS:
            capacity = _FIRST_ROWS if acc.capacity == 0 else 2 * acc.capacity
            rows = <double*>PyMem_Realloc(
                acc.rows, capacity * _METRIC_COUNT * sizeof(double)
            )
            if rows is NULL:
                raise MemoryError()
            acc.rows = rows
            acc.capacity = capacity
        else:
            _fold(acc, scratch)
    acc.length += 1
    return acc.rows + (acc.length - 1) * _METRIC_COUNT


@cython.final
@cython.auto_pickle(False)
@cython.binding(False)  # plain C methods: ~7 ns less per call than cyfunction methods
cdef class HeartbeatBatcher:
    """Coalesces heartbeats per device and turns them into ready-to-send flushes.

    ``add`` keeps, per device, the heartbeat with the greatest ``seen_at`` (the later call
    on a tie), counts the heartbeats coalesced, computes its network rates and sampling
    decision, and folds each into its group's rollup sketches. ``drain`` returns a
    ``Flush``: the Redis commands for the pending devices in first-arrival order, the
    state transitions and the rollups; the drained records move on to the COPY window,
    which ``drain_copy_records`` empties into rows for PostgreSQL.
    """

    cdef long long _window  # the flush window's number: drains so far
    cdef Py_ssize_t _pending  # devices in the flush window (forgotten ones not)
    cdef dict _last_state  # device_id -> the state last drained for it
    cdef dict _devices  # device_id -> _Device, until forget
    cdef dict _copy  # device_id -> _Record, since the last drain_copy_records
    cdef list _spare  # _Record objects of emptied COPY windows, for drain to reuse
    cdef list _pool  # _Record objects for the flush window, reused window after window
    cdef Py_ssize_t _taken  # handed out from _pool in this window (forgotten ones too)
    cdef Py_ssize_t _max_pending
    cdef long long _added
    cdef str _last_seen_key
    cdef str _stats_key_prefix
    cdef str _stats_key_suffix
    cdef object _stats_ttl
    cdef long long _rollup_interval
    cdef double _rollup_interval_f
    cdef double _sample_interval
    cdef double _max_rate_gap
    cdef list _groups  # group id -> (device_type, version)
    cdef dict _group_ids  # (device_type, version) -> group id
    cdef Py_ssize_t _group_count
    cdef list _current  # group id -> its last _Accumulator (or None)
    cdef list _accumulators  # creation order since the last drain
    cdef dict _by_bucket  # (group, bucket) -> _Accumulator, same content
    cdef long long _window_heartbeats
    cdef double _window_min
    cdef double _window_max
    cdef _Readings _scratch  # one metric's readings on their way to Sketch.add_many

    def __cinit__(self, *args, **kwargs):
        self._window = 0
        self._pending = 0
        self._pool = []
        self._spare = []
        self._taken = 0
        self._last_state = {}
        self._devices = {}
        self._copy = {}
        self._max_pending = 1
        self._added = 0
        self._last_seen_key = "last_seen"
        self._stats_key_prefix = "stats:"
        self._stats_key_suffix = ""
        self._stats_ttl = 86400
        self._rollup_interval = 60
        self._rollup_interval_f = 60.0
        self._sample_interval = 0.0
        self._max_rate_gap = INFINITY
        self._groups = []
        self._group_ids = {}
        self._group_count = 0
        self._current = []
        self._accumulators = []
        self._by_bucket = {}
        self._window_heartbeats = 0
        self._window_min = INFINITY
        self._window_max = -INFINITY
        self._scratch = _Readings.__new__(_Readings)

    def __init__(
        self,
        max_pending=65536,
        *,
        str last_seen_key not None="last_seen",
        str stats_key_prefix not None="stats:",
        str stats_key_suffix not None="",
        stats_ttl=86400,
        rollup_interval=60,
        double sample_interval=0.0,
    ):
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
        self._max_pending = <Py_ssize_t>_integer(max_pending, "max_pending", 1, PY_SSIZE_T_MAX)
        self._stats_ttl = _integer(stats_ttl, "stats_ttl", 1, _MAX_STATS_TTL)
        cdef long long interval = _integer(rollup_interval, "rollup_interval", 1, _DAY)
        if _DAY % interval:
            raise ValueError(f"rollup_interval must divide 86400 (a day), got {interval}")
        if not (0.0 <= sample_interval <= _MAX_SAMPLE_INTERVAL):
            raise ValueError(
                f"sample_interval must be in [0, {_MAX_SAMPLE_INTERVAL}] seconds, "
                f"got {sample_interval!r}"
            )
        self._rollup_interval = interval
        self._rollup_interval_f = <double>interval
        self._sample_interval = sample_interval
        self._max_rate_gap = 3.0 * sample_interval if sample_interval > 0.0 else INFINITY
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
        object memory_used_mb,
        object memory_total_mb,
        double disk_used_gb,
        double disk_total_gb,
        double load_avg_1m,
        double load_avg_5m,
        double load_avg_15m,
        double temperature,
        object network_rx_bytes,
        object network_tx_bytes,
    ):
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
        cdef long long c_uptime = _integer(uptime_seconds, "uptime_seconds", 0, LLONG_MAX)
        cdef long long c_memory_used = _integer(memory_used_mb, "memory_used_mb", 0, LLONG_MAX)
        cdef long long c_memory_total = _integer(
            memory_total_mb, "memory_total_mb", 0, LLONG_MAX
        )
        _require_finite("disk_used_gb", disk_used_gb)
        _require_finite("disk_total_gb", disk_total_gb)
        _require_finite("load_avg_1m", load_avg_1m)
        _require_finite("load_avg_5m", load_avg_5m)
        _require_finite("load_avg_15m", load_avg_15m)
        if isinf(temperature):
            raise ValueError(
                f"temperature must be finite or NaN (no sensor), got {temperature!r}"
            )
        cdef unsigned long long rx = 0
        cdef unsigned long long tx = 0
        _counter(network_rx_bytes, "network_rx_bytes", &rx)
        _counter(network_tx_bytes, "network_tx_bytes", &tx)

        # Network rates and the sampling decision, from what the device's memory says.
        cdef double rx_rate = NAN
        cdef double tx_rate = NAN
        cdef double gap
        cdef bint sample = True
        cdef double interval = self._sample_interval
        cdef _Device device
        cdef PyObject* known = PyDict_GetItem(self._devices, device_id)
        if known is NULL:
            device = _Device.__new__(_Device)
            device.seen_at = seen_at
            device.rx = rx
            device.tx = tx
            device.uptime = c_uptime
            device.tat = seen_at + interval
            device.window = -1
            self._devices[device_id] = device
        else:
            device = <_Device>known
            gap = seen_at - device.seen_at
            if c_uptime >= device.uptime and gap > 0.0 and gap <= self._max_rate_gap:
                rx_rate = _rate(rx, device.rx, gap)
                tx_rate = _rate(tx, device.tx, gap)
            if seen_at >= device.seen_at:
                device.seen_at = seen_at
                device.rx = rx
                device.tx = tx
                device.uptime = c_uptime
            sample = interval == 0.0 or seen_at >= device.tat - interval * 0.5
            if sample:
                device.tat = (device.tat if device.tat >= seen_at else seen_at) + interval

        # Rollup: every accepted heartbeat counts, whether or not it wins coalescing.
        cdef long long bucket = <long long>floor(seen_at / self._rollup_interval_f)
        cdef _Accumulator acc = <_Accumulator>self._current[g]
        if acc is None or acc.bucket != bucket:
            acc = self._accumulator(<Py_ssize_t>g, bucket)
        cdef double* row = _next_row(acc, self._scratch)
        row[0] = cpu_percent
        row[1] = memory_percent
        row[2] = <double>c_memory_used
        row[3] = disk_percent
        row[4] = disk_used_gb
        row[5] = load_avg_1m
        row[6] = load_avg_5m
        row[7] = load_avg_15m
        row[8] = temperature
        row[9] = rx_rate
        row[10] = tx_rate
        self._window_heartbeats += 1
        if seen_at < self._window_min:
            self._window_min = seen_at
        if seen_at > self._window_max:
            self._window_max = seen_at
        self._added += 1

        cdef _Record entry
        if device.window != self._window:  # the device's first heartbeat in this window
            if self._taken == len(self._pool):
                self._pool.append(_Record.__new__(_Record))
            entry = <_Record>self._pool[self._taken]
            self._taken += 1
            self._pending += 1
            entry.device_id = device_id
            entry.forgotten = False
            entry.count = 1
            entry.sample = sample
            device.window = self._window
            device.pending = entry
        else:
            entry = device.pending
            entry.count += 1
            entry.sample = entry.sample or sample
            if seen_at < entry.seen_at:  # an older heartbeat: counted, not kept
                return self._pending >= self._max_pending
        entry.seen_at = seen_at
        entry.state = c_state
        entry.cpu_percent = cpu_percent
        entry.memory_percent = memory_percent
        entry.disk_percent = disk_percent
        entry.uptime_seconds = c_uptime
        entry.memory_used_mb = c_memory_used
        entry.memory_total_mb = c_memory_total
        entry.disk_used_gb = disk_used_gb
        entry.disk_total_gb = disk_total_gb
        entry.load_avg_1m = load_avg_1m
        entry.load_avg_5m = load_avg_5m
        entry.load_avg_15m = load_avg_15m
        entry.temperature = temperature
        entry.rx_rate = rx_rate
        entry.tx_rate = tx_rate
        return self._pending >= self._max_pending

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
        return self._pending

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

    @property
    def sample_interval(self):
        """The GCRA period of per-device samples, in seconds (0: every heartbeat)."""
        return self._sample_interval

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
        version, metric, count, sum, min, max, sketch)`` row per metric with readings.
        """
        cdef list pool = self._pool
        cdef Py_ssize_t taken = self._taken
        cdef Py_ssize_t devices = self._pending
        cdef Py_ssize_t i
        cdef _Record record
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
        cdef _Record entry
        cdef int previous
        # The window's records are pool[:taken], in first-arrival order.
        self._window += 1
        self._taken = 0
        self._pending = 0
        if devices:
            zadd = [_ZADD, self._last_seen_key]
            for i in range(taken):
                entry = <_Record>pool[i]
                if not entry.forgotten:
                    zadd.append(entry.seen_at)
                    zadd.append(entry.device_id)
            commands.append(tuple(zadd))
        for i in range(taken):
            entry = <_Record>pool[i]
            device_id = entry.device_id
            entry.device_id = None
            if entry.forgotten:
                continue
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
            # An existing key keeps its position (first arrival), takes the new values and
            # ORs the sample flag.
            found = PyDict_GetItem(copy, device_id)
            if found is NULL:
                record = <_Record>self._spare.pop() if self._spare else _Record.__new__(_Record)
                record.sample = entry.sample
                copy[device_id] = record
            else:
                record = <_Record>found
                record.sample = record.sample or entry.sample
            _copy_values(record, entry)

        cdef list rollups = []
        cdef _Accumulator acc
        cdef Py_ssize_t metric
        for acc in self._accumulators:
            _fold(acc, self._scratch)
            bucket_start = _utc_datetime(<double>(acc.bucket * self._rollup_interval))
            device_type, version = self._groups[acc.group]
            for metric in range(_METRIC_COUNT):
                sketch = acc.sketches[metric]
                if sketch is None:
                    continue
                rollups.append(
                    (bucket_start, device_type, version, _METRICS[metric], sketch.count,
                     sketch.sum, sketch.min, sketch.max, sketch)
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

        A ``CopyRecord`` per device (``seen_at`` a UTC datetime, ``temperature`` None for
        no sensor), from the device's last drained record with the OR of the ``sample``
        flags of the records drained since, in order of first arrival since the last call.
        """
        cdef dict window = self._copy
        cdef list records = []
        cdef Py_ssize_t pos = 0
        cdef PyObject* key_ptr
        cdef PyObject* value_ptr
        cdef _Record entry
        cdef list spare = self._spare
        self._copy = {}
        while PyDict_Next(window, &pos, &key_ptr, &value_ptr):
            entry = <_Record>value_ptr
            spare.append(entry)  # reused by drain: no deallocation here, no allocation there
            records.append(
                (
                    <str>key_ptr,
                    _utc_datetime(entry.seen_at),
                    entry.cpu_percent,
                    entry.memory_percent,
                    entry.disk_percent,
                    entry.uptime_seconds,
                    entry.memory_used_mb,
                    entry.memory_total_mb,
                    entry.disk_used_gb,
                    entry.disk_total_gb,
                    entry.load_avg_1m,
                    entry.load_avg_5m,
                    entry.load_avg_15m,
                    _optional(entry.temperature),
                    _optional(entry.rx_rate),
                    _optional(entry.tx_rate),
                    entry.sample,
                )
            )
        return records

    def __reduce__(self):
        """Refused (TypeError): a batcher is process-local buffer state, not a value."""
        raise TypeError(f"cannot pickle {type(self).__qualname__!r} object")

    def forget(self, str device_id not None):
        """Drop what the batcher remembers of ``device_id`` and its entries in both windows.

        Its next drain reports a transition from -1, its next heartbeat has unknown rates
        and is a sample. Rollups keep its heartbeats. Forgetting an unknown device is a
        no-op. Raises TypeError if ``device_id`` is not a ``str``.
        """
        device = self._devices.pop(device_id, None)
        if device is not None and (<_Device>device).window == self._window:
            (<_Device>device).pending.forgotten = True
            self._pending -= 1
        self._copy.pop(device_id, None)
        self._last_state.pop(device_id, None)
