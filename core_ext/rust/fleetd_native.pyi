"""fleetd's compiled hot path (Rust): X.509 device certificate identity extraction, its
per-RPC cache, device filter expressions, chunk checksumming, and quantile sketches.

The pure-Python references in ``core_ext.reference`` (``identity``, ``identity_cache``,
``filter``, ``checksum``, ``sketch``) define the semantics; this module must behave
identically on every input, refusals included.
"""

import os
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Final, final

from typing_extensions import Buffer

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CACHE_CAPACITY",
    "MAX_CERTIFICATE_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_FILTER_VALUES",
    "ChunkHasher",
    "DeviceIdentity",
    "Filter",
    "FilterError",
    "FleetSnapshot",
    "IdentityCache",
    "IdentityError",
    "Manifest",
    "Sketch",
    "compile_filter",
    "extract_identity",
    "hash_file",
    "verify_chunk",
]

MAX_CERTIFICATE_SIZE: Final[int]
"""Inputs longer than this many bytes (16384) are refused before any parsing."""

class IdentityError(ValueError):
    """The certificate does not establish a device identity; the message says why.

    Messages start with one of these prefixes (what follows is detail for logs):
    ``"certificate too large"``, ``"empty certificate"``, ``"malformed PEM"``,
    ``"malformed certificate"``, ``"CA certificate used as a device certificate"``,
    ``"certificate is not valid for client authentication"``,
    ``"missing or malformed device identity"``,
    ``"certificate common name does not match device identity"``,
    ``"unsupported key algorithm"``.
    """

@final
class DeviceIdentity:
    """The identity a device certificate establishes, with what the caller needs to check it.

    Immutable; equality and hash cover every field.
    """

    def __new__(
        cls,
        device_id: str,
        fleet: str,
        serial: str,
        fingerprint: str,
        not_before: int,
        not_after: int,
        key_algorithm: str,
    ) -> DeviceIdentity: ...
    @property
    def device_id(self) -> str:
        """The device, from the ``spiffe://<fleet>/device/<device_id>`` URI SAN.

        Equal to the subject common name.
        """
    @property
    def fleet(self) -> str:
        """The fleet the device belongs to, from the same URI."""
    @property
    def serial(self) -> str:
        """The certificate serial number: lowercase hex, no leading zeros, ``"0"`` for zero."""
    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the certificate's DER encoding."""
    @property
    def not_before(self) -> int:
        """Start of the validity period, Unix seconds (not checked by this module)."""
    @property
    def not_after(self) -> int:
        """End of the validity period, Unix seconds (not checked by this module)."""
    @property
    def key_algorithm(self) -> str:
        """``"EC-P256"``, ``"EC-P384"``, ``"EC-P521"``, ``"Ed25519"``, ``"Ed448"`` or
        ``"RSA-<modulus bits>"`` (e.g. ``"RSA-2048"``)."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def extract_identity(data: bytes) -> DeviceIdentity:
    """Extract the device identity from a client certificate.

    ``data`` is PEM (optional leading whitespace, then ``-----BEGIN CERTIFICATE-----``; only
    the first block is read) or DER, at most 16384 bytes. The certificate must not be a CA,
    must allow clientAuth, must carry exactly one ``spiffe://<fleet>/device/<device_id>``
    URI SAN, a subject CN equal to ``device_id`` and an EC P-256/P-384/P-521, Ed25519, Ed448
    or RSA key. Validity dates and signatures are reported, not checked.

    Checks run in this order: size, empty input, PEM armour, DER structure, CA flag,
    client-auth EKU, identity URI SAN, common name, key algorithm.

    Raises:
        IdentityError: when the certificate is refused (see its message prefixes).
        TypeError: when ``data`` is not ``bytes``.
    """

MAX_CACHE_CAPACITY: Final[int]
"""The largest ``IdentityCache`` capacity accepted (16777216)."""

@final
class IdentityCache:
    """At most ``capacity`` certificate → ``DeviceIdentity`` entries, for the per-RPC path.

    Keyed by the certificate's exact bytes (PEM and DER of one certificate are two entries).
    Eviction is CLOCK (second chance): a hit marks its entry; when the cache is full the hand
    sweeps the slots in insertion order, clearing marks, and replaces the first unmarked
    entry; new entries start unmarked. Refusals are never cached: a refused certificate is
    parsed again on every call, so junk cannot evict the devices really talking. Revocation
    is the caller's check, on every call, against the fleet's revoked set. Thread-safe; the
    GIL is released while a certificate is parsed.

    Raises:
        ValueError: when ``capacity`` is not between 1 and ``MAX_CACHE_CAPACITY``.
        TypeError: when ``capacity`` is not an integer.
    """

    def __new__(cls, capacity: int) -> IdentityCache: ...
    def get(self, data: bytes) -> DeviceIdentity:
        """The identity ``data`` establishes, from the cache or extracted and cached.

        A hit returns the same ``DeviceIdentity`` object each time.

        Raises:
            IdentityError: when the certificate is refused (see ``extract_identity``).
            TypeError: when ``data`` is not ``bytes``.
        """
    def clear(self) -> None:
        """Drop every entry; the counters keep their values."""
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int:
        """The most entries the cache holds."""
    @property
    def hits(self) -> int:
        """Lookups answered from the cache."""
    @property
    def misses(self) -> int:
        """Lookups that parsed the certificate (refusals included)."""
    @property
    def evictions(self) -> int:
        """Entries dropped to make room for new ones (``clear()`` does not count)."""

DEFAULT_CHUNK_SIZE: Final[int]
"""The chunk size when none is given: 1 MiB."""

MAX_CHUNK_SIZE: Final[int]
"""The largest chunk size accepted: 1 GiB."""

@final
class Manifest:
    """The digests of one file or stream: whole-file SHA-256 and one SHA-256 per chunk.

    ``chunks[i]`` covers bytes ``[i * chunk_size, (i + 1) * chunk_size)``; the last chunk may
    be shorter; empty input has no chunks. Digests are lowercase hex. Immutable; equality
    and hash cover every field.
    """

    def __new__(
        cls, sha256: str, size: int, chunk_size: int, chunks: Sequence[str]
    ) -> Manifest: ...
    @property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 of all the bytes."""
    @property
    def size(self) -> int:
        """The number of bytes."""
    @property
    def chunk_size(self) -> int:
        """The chunk size the manifest was made with."""
    @property
    def chunks(self) -> tuple[str, ...]:
        """Lowercase hex SHA-256 of each chunk, in order."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class ChunkHasher:
    """Streaming SHA-256 over chunks: feed writes of any size, then ``finish()``.

    Both digests advance together: on one thread through a two-lane SHA-256 kernel (the
    message schedule shared, two states; SHA-NI where present), or, for updates of 1 MiB
    or more with ``threads`` >= 2, the whole-file digest on a helper thread while the calling
    thread hashes the chunks. The GIL is released for updates of 16 KiB or more. Not for
    concurrent use by several threads.

    Args:
        chunk_size: bytes per chunk, a multiple of 64 from 64 to 1 GiB (default 1 MiB).
        threads: 1, or 2 and more (a stream never uses more than two); default 2 when the
            process may use two cores.

    Raises:
        ValueError: when ``chunk_size`` or ``threads`` is out of range.
    """

    def __new__(cls, chunk_size: int = ..., *, threads: int | None = None) -> ChunkHasher: ...
    def update(self, data: Buffer) -> None:
        """Absorb ``data`` (bytes, bytearray, memoryview or any C-contiguous buffer).

        A mutable buffer must not change during the call.

        Raises:
            TypeError: when ``data`` is not a buffer (``str`` included).
            BufferError: when the buffer is not C-contiguous.
        """
    def finish(self) -> Manifest:
        """The manifest of everything absorbed so far; the hasher may go on."""
    @property
    def chunk_size(self) -> int:
        """Bytes per chunk."""
    @property
    def size(self) -> int:
        """Bytes absorbed so far."""

def hash_file(
    path: str | os.PathLike[str], chunk_size: int = ..., threads: int | None = None
) -> Manifest:
    """The manifest of the file at ``path``, with the GIL released.

    A regular file is hashed up to the size it had when opened; anything else (a pipe, a
    device) is read to its end on one thread. With ``threads`` > 1, ``threads - 1`` workers
    read and hash chunks (two at a time) while the calling thread computes the whole-file
    digest over them in order (at most four chunk buffers per worker in memory). The
    whole-file digest is one sequential stream: however many threads, a file is hashed no
    faster than one core's SHA-256. Default ``threads``: the cores the process may use
    (affinity and cgroup quota).

    Raises:
        OSError: when the file cannot be read, or became shorter while it was hashed.
        ValueError: when ``chunk_size`` or ``threads`` is out of range.
    """

def verify_chunk(data: Buffer, expected: str) -> bool:
    """Whether ``data`` hashes to ``expected`` (a SHA-256 digest, 64 hex digits, any case).

    Raises:
        ValueError: when ``expected`` is not 64 hexadecimal digits.
        TypeError: when ``data`` is not a buffer or ``expected`` not a ``str``.
    """

# ----------------------------------------------------------------------------- filters
# The grammar, field types, NULL semantics and error order are documented in
# core_ext/reference/filter/ (package docstring) and docs/core_ext.md.

MAX_FILTER_LENGTH: Final[int]
"""Longest accepted expression, in characters (4096)."""
MAX_FILTER_DEPTH: Final[int]
"""Deepest accepted nesting of parentheses and ``NOT`` (32)."""
MAX_FILTER_TERMS: Final[int]
"""Most ``field:value`` terms in one expression (64)."""
MAX_FILTER_VALUES: Final[int]
"""Most values in one term's list (``field:v1,v2,...``) (100)."""

class FilterError(ValueError):
    """The filter expression is invalid; the message says what was expected.

    Attributes:
        position: 0-based character offset in the expression where the problem is.
    """

    position: int

@final
class FleetSnapshot:
    """An immutable columnar snapshot of a fleet, for :meth:`Filter.evaluate`.

    Built once from arrays, copied in without per-row Python work; a column that is not
    given is NULL on every row (no tags for ``tags``).

    Args:
        size: the number of rows (devices), 0 to 4294967295.
        strings: field name (``id``, ``name``, ``type``, ``version``, ``agent_version``,
            ``fleet``, ``status``) -> ``(dictionary, codes)``: row ``i`` holds
            ``dictionary[codes[i]]``, or NULL when ``codes[i] == NULL_CODE``; ``codes`` is
            an ``array('I')`` of ``size`` codes.
        numbers: field name (``cpu_usage``, ``memory_usage``, ``disk_usage``,
            ``uptime_seconds``, ``last_seen``, ``registered_at``, ``updated_at``) ->
            ``array('d')``: numbers, timestamps as Unix seconds (``float(micros) / 1e6``),
            NaN for NULL.
        metadata: metadata key -> ``(dictionary, codes)`` as for ``strings``, ``NULL_CODE``
            where the key is missing.
        tags: ``(dictionary, offsets, codes)``: row ``i``'s tags are
            ``dictionary[codes[j]] for j in range(offsets[i], offsets[i + 1])``; ``offsets``
            has ``size + 1`` entries ascending from 0 to ``len(codes)``; both ``array('I')``.

    Raises:
        TypeError: a column of the wrong type.
        ValueError: unknown field names, wrong lengths, codes outside their dictionary,
            offsets not ascending from 0 to ``len(codes)``.
    """

    NULL_CODE: ClassVar[int]
    """The code of NULL (or a missing metadata key) in a dictionary-encoded column
    (0xFFFFFFFF)."""

    def __new__(
        cls,
        size: int,
        *,
        strings: Mapping[str, tuple[Sequence[str], array[int]]] | None = None,
        numbers: Mapping[str, array[float]] | None = None,
        metadata: Mapping[str, tuple[Sequence[str], array[int]]] | None = None,
        tags: tuple[Sequence[str], array[int], array[int]] | None = None,
    ) -> FleetSnapshot: ...
    def __len__(self) -> int: ...
    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]]) -> FleetSnapshot:
        """A snapshot of device records (the shape :meth:`Filter.matches` takes).

        Every field is read with the same rules and errors as :meth:`Filter.matches`;
        every metadata key found becomes a column. For tests, benchmarks and small fleets:
        it does Python work per row.
        """

@final
class Filter:
    """A compiled filter expression; immutable, reusable, thread-safe.

    Made by :func:`compile_filter`, never directly.
    """

    @property
    def expression(self) -> str:
        """The source expression, as given."""
    def to_sql(self, first_param: int = 1) -> tuple[str, list[object]]:
        """A WHERE-clause fragment over the ``devices`` table, and its bind values.

        Placeholders are ``$first_param``, ``$first_param + 1``...; values are never part
        of the SQL text, only whitelisted column names, operators and casts are. Bind
        values are str, float, list[str] and UTC ``datetime.datetime``. The fragment is
        two-valued (never NULL), parenthesised, and refers to the columns unqualified;
        the empty filter gives ``TRUE``.

        Raises:
            ValueError: ``first_param`` is not from 1 to 65535.
            TypeError: ``first_param`` is not an int.
        """
    def evaluate(self, snapshot: FleetSnapshot) -> array[int]:
        """The indexes of the snapshot rows that match, ascending, as ``array('I')``.

        Runs without the GIL.
        """
    def matches(self, record: Mapping[str, object]) -> bool:
        """Whether one device or event record matches.

        Keys are field names; only the fields the filter names are read, a missing key
        is NULL. Strings (``id``, ``name``, ``type``, ``status``...) are str or None;
        numbers float, int or None (NaN is NULL); timestamps ``datetime.datetime``
        (naive = UTC), Unix seconds (float or int) or None; ``metadata`` a mapping of
        str to str (or None); ``tags`` a list or tuple of str (or None).

        Raises:
            TypeError: a field the filter reads has a value of another type.
        """

def compile_filter(expression: str, *, now: float | None = None) -> Filter:
    """Parse and type-check a filter expression.

    Args:
        expression: the filter; empty or whitespace-only matches every device.
        now: Unix seconds that relative times (``-10m``) count back from; default the
            current time. Resolved here, once, so every backend agrees.

    Raises:
        FilterError: the expression is invalid (message and ``position`` say where/why).
        ValueError: ``now`` is not finite or outside years 1 to 9999.
        TypeError: ``expression`` is not a str, or ``now`` not a real number.
    """

# ---------------------------------------------------------------------------- sketches
# The mapping, collapsing rule and byte format are specified in the docstring of
# core_ext/reference/sketch.py and in docs/core_ext.md ("Quantile sketches").

@final
class Sketch:
    """A mergeable quantile sketch (DDSketch): quantiles within a relative error.

    Values ``x > 0`` are counted under key ``ceil(log(x) / ln gamma)``, ``x < 0`` under
    ``-ceil(log(-x) / ln gamma)`` in a second store, zeros apart, with
    ``gamma = (1 + alpha) / (1 - alpha)``.
    Each store keeps at most ``max_bins`` consecutive keys and collapses its *lowest* values
    beyond that; quantiles above the collapsed range stay within ``relative_accuracy``.
    ``count``, ``min`` and ``max`` are exact; ``sum`` is the float sum in insertion order.
    Not for concurrent use by several threads.

    Args:
        relative_accuracy: ``alpha``, from 1e-06 to 0.5 (default 0.01: 1%).
        max_bins: bins per store, 1 to 65536 (default 2048: values in a ratio of 6e17 at 1%).

    Raises:
        ValueError: when either is out of range.
        TypeError: when ``max_bins`` is not an integer.
    """

    def __new__(cls, relative_accuracy: float = 0.01, max_bins: int = 2048) -> Sketch: ...
    def add(self, value: float, count: int = 1) -> None:
        """Count ``value`` ``count`` times.

        Raises:
            ValueError: when ``value`` is NaN or infinite, ``count`` is below 1, or the
                sketch would hold more than 2**63 - 1 values.
        """
    def add_many(self, values: Iterable[float]) -> None:
        """Count each value once: all of them, or none when one is refused.

        A ``list`` or ``tuple`` of floats, or a one-dimensional float64 buffer
        (``array('d')``, numpy), is the fast path; any iterable of real numbers will do.

        Raises:
            ValueError: ``"values[i] is nan: ..."`` for the first NaN or infinite value.
            TypeError: for the first value that is not a real number.
        """
    def merge(self, other: Sketch) -> None:
        """Add everything ``other`` holds; ``other`` is unchanged (it may be ``self``).

        Equal to the sketch of both streams together when ``other.max_bins >= max_bins``
        (``sum`` up to float rounding).

        Raises:
            ValueError: when the relative accuracies differ, or the count would pass
                2**63 - 1.
            TypeError: when ``other`` is not a ``Sketch`` of this implementation.
        """
    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (``0 <= q <= 1``) within ``relative_accuracy``, ``None`` if empty.

        Estimates the element of rank ``floor(q * (count - 1))`` in sorted order, clamped to
        ``[min, max]``; ``quantile(0)`` is ``min`` and ``quantile(1)`` is ``max``.

        Raises:
            ValueError: when ``q`` is not between 0 and 1.
        """
    @property
    def relative_accuracy(self) -> float:
        """``alpha``: quantiles are within ``alpha * |true value|`` of the truth."""
    @property
    def max_bins(self) -> int:
        """The most bins each store keeps before it collapses its lowest ones."""
    @property
    def count(self) -> int:
        """How many values were added (exact)."""
    @property
    def sum(self) -> float:
        """The float sum of the values."""
    @property
    def min(self) -> float | None:
        """The least value (exact), ``None`` when empty."""
    @property
    def max(self) -> float | None:
        """The greatest value (exact), ``None`` when empty."""
    @property
    def avg(self) -> float | None:
        """``sum / count``, ``None`` when empty."""
    def to_bytes(self) -> bytes:
        """The sketch in binary format version 1: compact, canonical, and byte for byte
        the same from both implementations (``b"DS"``, version, accuracy, ``max_bins``,
        zero count, sum/min/max, then each store's non-empty bins, delta-encoded varints).
        """
    @classmethod
    def from_bytes(cls, data: bytes) -> Sketch:
        """Read what ``to_bytes`` wrote, checking every field.

        Raises:
            ValueError: ``"malformed sketch: ..."`` for a wrong magic or version, truncated
                or trailing bytes, out-of-range accuracy, ``max_bins``, keys or counts,
                more than ``max_bins`` bins or a span of ``max_bins`` keys or more, empty
                bins, non-minimal varints, and statistics that disagree with the bins.
            TypeError: when ``data`` is not ``bytes``.
        """
