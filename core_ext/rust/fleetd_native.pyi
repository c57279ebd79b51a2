"""fleetd's compiled hot path (Rust): X.509 device certificate identity extraction, device
filter expressions.

The pure-Python references ``core_ext.reference.identity`` and ``core_ext.reference.filter``
define the semantics; this module must behave identically on every input, refusals included.
"""

from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Final, final

__all__ = ["MAX_CERTIFICATE_SIZE", "DeviceIdentity", "IdentityError", "extract_identity"]
__all__ += [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_FILTER_VALUES",
    "Filter",
    "FilterError",
    "FleetSnapshot",
    "compile_filter",
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

# ----------------------------------------------------------------------------- filters
# The grammar, field types, NULL semantics and error order are documented in
# core_ext/reference/filter.py and docs/core_ext.md.

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
