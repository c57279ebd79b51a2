"""Malformed requests derived from the proto descriptors, as Hypothesis strategies.

Two encodings of the same idea: a request that is valid except for one hostile value at
one field (a wrong JSON type, NUL, invalid UTF-8, a huge string, NaN, an unknown enum
number, a timestamp out of range...), plus whole bodies that are no request at all
(``null``, truncated protobuf, nesting 100 000 deep). Every case carries a ``note`` that
names what is hostile about it, for the failure message.

The strategies walk the descriptors, so a field or a method added to a proto is swept
without touching this file.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

MAX_DEPTH: Final = 3
"""Nested messages deeper than this are sent empty: no request message is recursive, so
this bounds nothing real; deep nesting itself comes from the fixed cases."""
HUGE: Final = 100_001
"""A "huge" string: above every field limit the API should have."""
DEEP: Final = 100_000
"""Nesting depth of the deep-nesting cases (JSON arrays/objects, protobuf groups)."""
OVERSIZED: Final = 5_000_000
"""Bytes in the one oversized request per method: above gRPC's 4 MiB default."""


# ---------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One request body as sent, and what is hostile about it."""

    body: bytes
    note: str


def abbreviate(text: str, limit: int = 400) -> str:
    """``text`` with long runs of one character folded (``a*100001``) and cut at ``limit``."""
    folded = re.sub(r"(.)\1{15,}", lambda m: f"{m[1]}*{len(m[0])}", text, flags=re.DOTALL)
    return folded if len(folded) <= limit else f"{folded[:limit]}…(+{len(folded) - limit})"


def draw(strategy: st.SearchStrategy[Case], count: int) -> list[Case]:
    """``count`` cases from ``strategy``, the same ones on every run (derandomized, no
    example database, no shrinking: the sweep reports every failing case itself)."""
    drawn: list[Case] = []

    @settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )
    @given(strategy)
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    unique: dict[bytes, Case] = {}
    for case in drawn:
        unique.setdefault(case.body, case)
    return list(unique.values())


# ---------------------------------------------------------------------------------------
# Descriptor helpers
# ---------------------------------------------------------------------------------------

T = FieldDescriptor
TIMESTAMP: Final = "google.protobuf.Timestamp"
DURATION: Final = "google.protobuf.Duration"
FIELD_MASK: Final = "google.protobuf.FieldMask"

INT32_TYPES: Final = {T.TYPE_INT32, T.TYPE_SINT32, T.TYPE_SFIXED32}
INT64_TYPES: Final = {T.TYPE_INT64, T.TYPE_SINT64, T.TYPE_SFIXED64}
UINT_TYPES: Final = {T.TYPE_UINT32, T.TYPE_UINT64, T.TYPE_FIXED32, T.TYPE_FIXED64}
FLOAT_TYPES: Final = {T.TYPE_DOUBLE, T.TYPE_FLOAT}
INT_TYPES: Final = INT32_TYPES | INT64_TYPES | UINT_TYPES


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def message_name(field: FieldDescriptor) -> str:
    return field.message_type.full_name if field.message_type is not None else ""


def sub(field: FieldDescriptor) -> Descriptor:
    """The message type of a message field."""
    assert field.message_type is not None, field.full_name
    return field.message_type


def enum_of(field: FieldDescriptor) -> EnumDescriptor:
    assert field.enum_type is not None, field.full_name
    return field.enum_type


def enum_names(enum: EnumDescriptor) -> list[str]:
    return [value.name for value in enum.values]


# ---------------------------------------------------------------------------------------
# JSON (Connect)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Raw:
    """A JSON fragment sent as these exact bytes: what ``json.dumps`` cannot write
    (invalid UTF-8, nesting deeper than Python recursion, numbers past float range)."""

    text: bytes


Json: TypeAlias = "bool | int | float | str | Raw | list[Json] | dict[str, Json] | None"


def render(value: Json) -> bytes:
    """``value`` as JSON text; strings keep lone surrogates as ``\\ud800`` escapes and
    floats keep NaN/Infinity as bare tokens (both invalid for a strict parser)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        members = (render(key) + b":" + render(item) for key, item in value.items())
        return b"{" + b",".join(members) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(render(item) for item in value) + b"]"
    return json.dumps(value).encode()


DEEP_ARRAY: Final = Raw(b"[" * DEEP + b"]" * DEEP)
DEEP_OBJECT: Final = Raw(b'{"a":' * DEEP + b"1" + b"}" * DEEP)
MODERATELY_DEEP: Final = Raw(b"[" * 200 + b"]" * 200)

WRONG_TYPES: Final[list[Json]] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    "x",
    [],
    {},
    [1, "a", None],
    {"a": "b"},
    MODERATELY_DEEP,
    DEEP_ARRAY,
    DEEP_OBJECT,
]
"""Values of the wrong JSON type for most fields (some are right for some types)."""

HOSTILE_STRINGS: Final[list[Json]] = [
    "",
    " ",
    "a\x00b",
    "\x00",
    "\ud800",
    "x\udfffy",
    "a" * HUGE,
    "é" * HUGE,
    "😀" * (HUGE // 2),
    "\u202e\u200b\ufeff",
    "\n\r\t\x1b[31m\x7f",
    "../../../../etc/passwd",
    "%s%n%x",
    "😀",
    Raw(b'"\xff\xfe"'),
    Raw(b'"\xed\xa0\x80"'),
    Raw(b'"\xc0\x80"'),
    Raw(b'"a\x80b"'),
    Raw(b'"unterminated'),
    Raw(b'"bad escape \\q"'),
    Raw(b'"\\u12"'),
]
INT_HOSTILE: Final[list[Json]] = [
    -1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**32,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    1.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    "12",
    "-1",
    "0x10",
    "1e3",
    "",
    "NaN",
    "9223372036854775808",
    "99999999999999999999",
    Raw(b"1" * 400),
    Raw(b"1e999999"),
    Raw(b"-"),
    Raw(b"01"),
]
FLOAT_HOSTILE: Final[list[Json]] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    "NaN",
    "Infinity",
    "-Infinity",
    1e308,
    -1e308,
    5e-324,
    3.5e38,
    -0.0,
    -1,
    2**64,
    "1e400",
    "",
    "abc",
    Raw(b"1e400"),
    Raw(b"-1e400"),
    Raw(b"1" * 400),
]
BOOL_HOSTILE: Final[list[Json]] = ["true", "false", 1, 0, "yes", 2]
BYTES_HOSTILE: Final[list[Json]] = [
    "!!!",
    "A",
    "AA=",
    "=",
    "\ud800",
    base64.b64encode(b"\x00" * HUGE).decode(),
    Raw(b'"\xff"'),
]
TIMESTAMP_HOSTILE: Final[list[Json]] = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "2024-13-45T25:61:61Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T23:59:60Z",
    "2024-01-01T00:00:00",
    "2024-01-01T00:00:00+99:00",
    "2024-01-01T00:00:00.1234567891Z",
    "2024-01-01",
    "now",
    "",
    "\x00",
    0,
    -1,
    1e20,
    {"seconds": 1, "nanos": 2},
]
DURATION_HOSTILE: Final[list[Json]] = [
    "0s",
    "-1s",
    "-0.5s",
    "315576000000s",
    "-315576000000s",
    "315576000001s",
    "99999999999999999999s",
    "0.000000001s",
    "0.0000000001s",
    "1",
    "1m",
    "1e3s",
    "NaNs",
    "infs",
    "",
    5,
    {"seconds": 1},
]
FIELD_MASK_HOSTILE: Final[list[Json]] = [
    "",
    ",",
    ",,,",
    "no_such_field",
    "noSuchField",
    "a..b",
    "a.b.c.d.e.f",
    "DEVICE_NAME",
    "x" * HUGE,
    "\x00",
    ",".join(["tags"] * 10_000),
    123,
    ["deviceName"],
    {"paths": ["deviceName"]},
]
ENUM_HOSTILE_NUMBERS: Final[list[Json]] = [999, -1, 2**31 - 1, 2**31, 2**40, 1.5, "999", "", "NOPE"]

TOP_LEVEL_JSON: Final[list[Case]] = [
    Case(body, f"top-level body {abbreviate(repr(body), 80)}")
    for body in [
        b"",
        b"null",
        b"123",
        b"true",
        b'"x"',
        b"[]",
        b"[{}]",
        b"{",
        b'{"a":',
        b"}",
        b"{}garbage",
        b"{} {}",
        b"\xef\xbb\xbf{}",
        b"\xff\xfe\x00\x00",
        b"\x00",
        b"{\x00}",
        b'{"\xff": 1}',
        b'{"\\ud800": 1}',
        b'{"noSuchField": 1}',
        b'{"no_such_field": {"deep": [1, 2, 3]}}',
        b"NaN",
        b"Infinity",
        DEEP_ARRAY.text,
        DEEP_OBJECT.text,
        b'{"a":' + DEEP_ARRAY.text + b"}",
    ]
]

KNOWN_DEVICE: Final = "sweep-target"
"""A device the sweep's deployment holds (tests/sweep/conftest.py), among the plausible
strings so that some requests reach a real record (and may delete it: the device the
sweep's agent calls run as is another one)."""
_ALNUM: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
VALID_TEXT: Final = st.one_of(
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(_ALNUM),
        st.text(alphabet=_ALNUM + "-_.", max_size=11),
    ),
    st.just(KNOWN_DEVICE),
    st.text(alphabet=_ALNUM + "-_.: é", max_size=12),
)
"""Plausible strings: identifiers, a known device id, short free text. All lower case, so
that no exception class name or SQL keyword can be echoed back from the input and be
mistaken for a leak."""


def _json_key(field: FieldDescriptor) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted({field.json_name, field.name}))


def _json_valid_single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Json]:
    kind = field.type
    if kind == T.TYPE_MESSAGE:
        name = message_name(field)
        if name == TIMESTAMP:
            return st.sampled_from(["2024-01-01T00:00:00Z", "2030-06-15T12:30:00.5Z"])
        if name == DURATION:
            return st.sampled_from(["1s", "30s", "3600s", "0.5s"])
        if name == FIELD_MASK:
            return st.sampled_from(["deviceName", "tags", "metadata", "deviceName,tags"])
        if depth >= MAX_DEPTH:
            return st.just({})
        return json_valid(sub(field), depth + 1)
    if kind == T.TYPE_STRING:
        return VALID_TEXT
    if kind == T.TYPE_BYTES:
        return st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
    if kind == T.TYPE_BOOL:
        return st.booleans()
    if kind == T.TYPE_ENUM:
        return st.sampled_from(enum_names(enum_of(field)))
    if kind in FLOAT_TYPES:
        return st.floats(-1000, 1000, allow_nan=False)
    if kind in UINT_TYPES:
        return st.integers(0, 1000)
    return st.integers(-10, 1000)


def _json_hostile_single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Json]:
    kind = field.type
    wrong = st.sampled_from(WRONG_TYPES)
    if kind == T.TYPE_MESSAGE:
        name = message_name(field)
        if name == TIMESTAMP:
            return st.one_of(st.sampled_from(TIMESTAMP_HOSTILE), wrong)
        if name == DURATION:
            return st.one_of(st.sampled_from(DURATION_HOSTILE), wrong)
        if name == FIELD_MASK:
            return st.one_of(st.sampled_from(FIELD_MASK_HOSTILE), wrong)
        if depth >= MAX_DEPTH:
            return wrong
        return st.one_of(json_hostile(sub(field), depth + 1), wrong)
    if kind == T.TYPE_STRING:
        return st.one_of(st.sampled_from(HOSTILE_STRINGS), wrong)
    if kind == T.TYPE_BYTES:
        return st.one_of(st.sampled_from(BYTES_HOSTILE), wrong)
    if kind == T.TYPE_BOOL:
        return st.one_of(st.sampled_from(BOOL_HOSTILE), wrong)
    if kind == T.TYPE_ENUM:
        names = enum_names(enum_of(field))
        odd: list[Json] = [*(name.lower() for name in names), f" {names[-1]}"]
        return st.one_of(st.sampled_from(ENUM_HOSTILE_NUMBERS + odd), wrong)
    if kind in FLOAT_TYPES:
        return st.one_of(st.sampled_from(FLOAT_HOSTILE), wrong)
    return st.one_of(st.sampled_from(INT_HOSTILE), wrong)


def _json_hostile_field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Json]:
    """A hostile value for ``field``: of its element type, or of the container."""
    if is_map(field):
        entry = sub(field)
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        valid_key = _json_valid_single(key_field, depth)
        valid_value = _json_valid_single(value_field, depth)
        many = Raw(
            b"{" + b",".join(b'"k%d":"v"' % i for i in range(HUGE // 10)) + b"}"
        )  # ten thousand entries
        return st.one_of(
            st.builds(
                lambda k, v: {k: v},
                st.sampled_from([s for s in HOSTILE_STRINGS if isinstance(s, str)]),
                valid_value,
            ),
            st.builds(lambda k, v: {k: v}, valid_key, _json_hostile_single(value_field, depth)),
            st.sampled_from([[], "x", 1, [{"key": "a", "value": "b"}], many, DEEP_ARRAY]),
            st.just(None),
        )
    single = _json_hostile_single(field, depth)
    if field.is_repeated:
        valid = _json_valid_single(field, depth)
        huge_list = Raw(b"[" + b",".join([b"0"] * HUGE) + b"]")
        return st.one_of(
            st.builds(lambda a, b: [a, b], valid, single),
            st.sampled_from(["x", 1, {}, True, [None], [[]], huge_list, DEEP_ARRAY]),
        )
    return single


def json_valid(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Json]]:
    """A request of ``desc`` with plausible values in some of its fields."""
    optional: dict[str, st.SearchStrategy[Json]] = {}
    for field in desc.fields:
        single = _json_valid_single(field, depth)
        if is_map(field):
            value = _json_valid_single(sub(field).fields_by_name["value"], depth)
            optional[field.json_name] = st.dictionaries(VALID_TEXT, value, max_size=2)
        elif field.is_repeated:
            optional[field.json_name] = st.lists(single, max_size=2)
        else:
            optional[field.json_name] = single
    return st.fixed_dictionaries({}, optional=optional)


def json_hostile(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Json]]:
    """A request of ``desc`` plausible but for one hostile field (or one unknown field)."""
    if not desc.fields:
        return st.one_of(
            st.just({}), st.builds(lambda v: {"noSuchField": v}, st.sampled_from(WRONG_TYPES))
        )

    def with_hostile(field: FieldDescriptor) -> st.SearchStrategy[dict[str, Json]]:
        return st.builds(
            lambda base, key, value: {**base, key: value},
            json_valid(desc, depth),
            _json_key(field),
            _json_hostile_field(field, depth),
        )

    return st.sampled_from(list(desc.fields)).flatmap(with_hostile)


def _json_case(value: Json) -> Case:
    body = render(value)
    return Case(body, abbreviate(body.decode("utf-8", "backslashreplace")))


def json_cases(desc: Descriptor) -> st.SearchStrategy[Case]:
    """Connect JSON bodies for a request of ``desc``: mostly one hostile field, some
    fully plausible (a valid-looking request must not fail either)."""
    return st.one_of(
        json_hostile(desc),
        json_hostile(desc),
        json_hostile(desc),
        json_valid(desc),
    ).map(_json_case)


PER_FIELD_JSON: Final[dict[str, list[Json]]] = {
    "string": ["a\x00b", "\ud800", "a" * HUGE, Raw(b'"\xff\xfe"')],
    "int": [2**64, -1, float("nan")],
    "float": [float("nan"), float("inf"), Raw(b"1e400")],
    "enum": [999],
    TIMESTAMP: ["10000-01-01T00:00:00Z", "0001-01-01T00:00:00Z"],
    DURATION: ["-315576000000s", "315576000000s"],
}
"""For each top-level field, these values are always tried (besides the generated ones):
the classes of input most likely to reach storage unchecked."""


def _per_field_class(field: FieldDescriptor) -> str:
    if field.type == T.TYPE_MESSAGE:
        return message_name(field)
    if field.type == T.TYPE_STRING:
        return "string"
    if field.type == T.TYPE_ENUM:
        return "enum"
    if field.type in FLOAT_TYPES:
        return "float"
    return "int" if field.type in INT_TYPES else ""


def json_per_field(desc: Descriptor) -> list[Case]:
    """One request per top-level field and value of :data:`PER_FIELD_JSON`."""
    cases: list[Case] = []
    for field in desc.fields:
        for value in PER_FIELD_JSON.get(_per_field_class(field), []):
            if is_map(field):
                if not isinstance(value, str):
                    continue
                request: Json = {field.json_name: {value: "v", "k": value}}
            elif field.is_repeated:
                request = {field.json_name: [value]}
            else:
                request = {field.json_name: value}
            cases.append(_json_case(request))
    return cases


def json_fixed(desc: Descriptor) -> list[Case]:
    """The cases every method gets: bodies that are no request, one hostile value per
    top-level field, and one oversized body."""
    cases = [*TOP_LEVEL_JSON, *json_per_field(desc)]
    strings = [f for f in desc.fields if f.type == T.TYPE_STRING and not f.is_repeated]
    if strings:
        key = strings[0].json_name
        body = render({key: "a" * OVERSIZED})
        cases.append(Case(body, f"{{{key!r}: 'a'*{OVERSIZED}}} (oversized body)"))
    return cases


# ---------------------------------------------------------------------------------------
# Protobuf binary (gRPC)
# ---------------------------------------------------------------------------------------

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


def varint(value: int) -> bytes:
    """Base-128 varint of ``value`` (negative numbers as their 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, LEN) + varint(len(payload)) + payload


@dataclass(frozen=True, slots=True)
class Wire:
    """Encoded fields, and a note on the hostile ones (empty for plausible ones)."""

    data: bytes
    note: str = ""


def _join(pieces: list[Wire]) -> Wire:
    return Wire(b"".join(p.data for p in pieces), "; ".join(p.note for p in pieces if p.note))


def _expected_wire_type(field: FieldDescriptor) -> int:
    kind = field.type
    if kind in (T.TYPE_DOUBLE, T.TYPE_FIXED64, T.TYPE_SFIXED64):
        return I64
    if kind in (T.TYPE_FLOAT, T.TYPE_FIXED32, T.TYPE_SFIXED32):
        return I32
    if kind in (T.TYPE_STRING, T.TYPE_BYTES, T.TYPE_MESSAGE):
        return LEN
    return VARINT


def _scalar(field: FieldDescriptor, value: int | float) -> bytes:
    """``value`` encoded as ``field``'s scalar type, without the key."""
    kind = field.type
    if kind == T.TYPE_DOUBLE:
        return struct.pack("<d", float(value))
    if kind == T.TYPE_FLOAT:
        return struct.pack("<f", float(value)) if math.isfinite(value) else _f32(float(value))
    if kind in (T.TYPE_FIXED64, T.TYPE_SFIXED64):
        return struct.pack("<Q", int(value) & ((1 << 64) - 1))
    if kind in (T.TYPE_FIXED32, T.TYPE_SFIXED32):
        return struct.pack("<I", int(value) & ((1 << 32) - 1))
    if kind in (T.TYPE_SINT32, T.TYPE_SINT64):
        n = int(value)
        return varint((n << 1) ^ (n >> 63))
    return varint(int(value))


def _f32(value: float) -> bytes:
    if math.isnan(value):
        return b"\x00\x00\xc0\x7f"
    return b"\x00\x00\x80\x7f" if value > 0 else b"\x00\x00\x80\xff"


def _wire_valid_single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[bytes]:
    """A plausible value of ``field`` with its key."""
    kind, number = field.type, field.number
    if kind == T.TYPE_MESSAGE:
        name = message_name(field)
        if name in (TIMESTAMP, DURATION):
            seconds = 1_704_067_200 if name == TIMESTAMP else 30
            return st.just(length_delimited(number, key(1, VARINT) + varint(seconds)))
        if name == FIELD_MASK:
            return st.just(length_delimited(number, length_delimited(1, b"device_name")))
        if depth >= MAX_DEPTH:
            return st.just(length_delimited(number, b""))
        return wire_valid(sub(field), depth + 1).map(lambda w: length_delimited(number, w.data))
    if kind == T.TYPE_STRING:
        return VALID_TEXT.map(lambda s: length_delimited(number, s.encode()))
    if kind == T.TYPE_BYTES:
        return st.binary(max_size=16).map(lambda b: length_delimited(number, b))
    if kind == T.TYPE_BOOL:
        return st.sampled_from([0, 1]).map(lambda n: key(number, VARINT) + varint(n))
    if kind == T.TYPE_ENUM:
        numbers = [v.number for v in enum_of(field).values]
        return st.sampled_from(numbers).map(lambda n: key(number, VARINT) + varint(n))
    wire_type = _expected_wire_type(field)
    if kind in FLOAT_TYPES:
        return st.floats(-1000, 1000, allow_nan=False).map(
            lambda x: key(number, wire_type) + _scalar(field, x)
        )
    return st.integers(0, 1000).map(lambda n: key(number, wire_type) + _scalar(field, n))


BAD_UTF8: Final[list[tuple[bytes, str]]] = [
    (b"\xff\xfe", "invalid UTF-8 ff fe"),
    (b"\xed\xa0\x80", "UTF-8-encoded surrogate"),
    (b"\xc0\x80", "overlong NUL"),
    (b"a\x80b", "stray continuation byte"),
    (b"\xf4\x90\x80\x80", "code point above U+10FFFF"),
    (b"a" * HUGE + b"\xff", "huge then invalid UTF-8"),
]
GOOD_BUT_HOSTILE_TEXT: Final[list[tuple[bytes, str]]] = [
    (b"", "empty"),
    (b"a\x00b", "NUL inside"),
    (b"\x00", "NUL"),
    (b"a" * HUGE, f"'a'*{HUGE}"),
    ("é".encode() * HUGE, f"'é'*{HUGE}"),
    ("😀".encode() * (HUGE // 2), f"emoji*{HUGE // 2}"),
    ("\u202e\u200b\ufeff".encode(), "bidi override, zero width, BOM"),
    (b"\n\r\t\x1b[31m\x7f", "control characters"),
    (b"../../../../etc/passwd", "path traversal"),
]
VARINT_HOSTILE: Final[list[int]] = [
    -1,
    2**31 - 1,
    2**31,
    -(2**31),
    2**32,
    2**32 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**64 - 1,
]
DOUBLE_HOSTILE: Final[list[float]] = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    5e-324,
    -0.0,
    -1.0,
    1e20,
]
TIME_SECONDS_HOSTILE: Final[list[int]] = [
    -62_135_596_801,  # one second before 0001-01-01
    253_402_300_800,  # 10000-01-01
    315_576_000_001,  # past the largest Duration
    -315_576_000_001,
    2**62,
    -(2**62),
    2**63 - 1,
    -1,
]
NANOS_HOSTILE: Final[list[int]] = [-1, 1_000_000_000, 2**31 - 1, -(2**31)]


def _wire_hostile_single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Wire]:
    """A hostile value of ``field``, of its own wire type."""
    kind, number, name = field.type, field.number, field.name
    if kind == T.TYPE_MESSAGE:
        type_name = message_name(field)
        if type_name in (TIMESTAMP, DURATION):

            def time(seconds: int, nanos: int) -> Wire:
                payload = key(1, VARINT) + varint(seconds) + key(2, VARINT) + varint(nanos)
                return Wire(
                    length_delimited(number, payload),
                    f"{name}={type_name.rsplit('.', 1)[1]}(seconds={seconds}, nanos={nanos})",
                )

            return st.one_of(
                st.builds(time, st.sampled_from(TIME_SECONDS_HOSTILE), st.just(0)),
                st.builds(time, st.just(1_704_067_200), st.sampled_from(NANOS_HOSTILE)),
            )
        if type_name == FIELD_MASK:
            return st.sampled_from(
                [
                    (b"no_such_field", "unknown path"),
                    (b"", "empty path"),
                    (b"a..b", "a..b"),
                    *BAD_UTF8,
                    (b",".join([b"tags"] * 10_000), "10 000 paths"),
                ]
            ).map(
                lambda p: Wire(
                    length_delimited(number, length_delimited(1, p[0])), f"{name}: {p[1]}"
                )
            )
        if depth >= MAX_DEPTH:
            return st.just(Wire(length_delimited(number, b"\xff\xff"), f"{name}: garbage"))
        return wire_hostile(sub(field), depth + 1).map(
            lambda w: Wire(length_delimited(number, w.data), f"{name}.{{{w.note}}}")
        )
    if kind == T.TYPE_STRING:
        return st.sampled_from(BAD_UTF8 + GOOD_BUT_HOSTILE_TEXT).map(
            lambda p: Wire(length_delimited(number, p[0]), f"{name}: {p[1]}")
        )
    if kind == T.TYPE_BYTES:
        return st.sampled_from([(b"\x00" * HUGE, f"{HUGE} NUL bytes"), (b"\xff", "ff")]).map(
            lambda p: Wire(length_delimited(number, p[0]), f"{name}: {p[1]}")
        )
    wire_type = _expected_wire_type(field)
    if kind == T.TYPE_ENUM:
        values: list[int | float] = [999, -1, 2**31 - 1, -(2**31), 2**32, 2**63]
    elif kind in FLOAT_TYPES:
        values = list(DOUBLE_HOSTILE)
    elif kind == T.TYPE_BOOL:
        values = [2, 255, 2**64 - 1]
    else:
        values = list(VARINT_HOSTILE)
    return st.sampled_from(values).map(
        lambda v: Wire(key(number, wire_type) + _scalar(field, v), f"{name}={v!r}")
    )


def _wire_malformed_field(field: FieldDescriptor) -> st.SearchStrategy[Wire]:
    """``field``'s number with a wrong wire type, a truncated or overlong encoding."""
    number, name = field.number, field.name
    expected = _expected_wire_type(field)
    wrong = [
        (VARINT, varint(2**63)),
        (I64, b"\x00" * 8),
        (LEN, varint(3) + b"abc"),
        (I32, b"\x00" * 4),
        (SGROUP, key(number, EGROUP)),
    ]
    pieces = [
        Wire(key(number, wt) + payload, f"{name} with wire type {wt}")
        for wt, payload in wrong
        if wt != expected
    ]
    pieces += [
        Wire(key(number, LEN) + varint(1000) + b"ab", f"{name}: length 1000, 2 bytes follow"),
        Wire(key(number, LEN) + varint(2**31), f"{name}: length 2**31, nothing follows"),
        Wire(key(number, LEN) + b"\xff" * 10 + b"\x01", f"{name}: 11-byte length varint"),
        Wire(key(number, VARINT) + b"\xff" * 10 + b"\x01", f"{name}: 11-byte varint"),
        Wire(key(number, VARINT) + b"\xff", f"{name}: varint cut short"),
        Wire(key(number, 6), f"{name} with wire type 6"),
        Wire(key(number, 7), f"{name} with wire type 7"),
    ]
    if field.is_repeated and expected == VARINT:
        packed = b"".join(varint(n) for n in range(HUGE // 10))
        pieces += [
            Wire(length_delimited(number, packed), f"{name}: {HUGE // 10} packed varints"),
            Wire(length_delimited(number, b"\x01\xff"), f"{name}: packed, last varint cut"),
        ]
    return st.sampled_from(pieces)


def _wire_hostile_field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Wire]:
    if is_map(field):
        entry = sub(field)
        return st.one_of(
            wire_hostile(entry, depth).map(
                lambda w: Wire(length_delimited(field.number, w.data), f"{field.name}[{w.note}]")
            ),
            st.just(
                Wire(
                    b"".join(
                        length_delimited(
                            field.number,
                            length_delimited(1, b"k%d" % i) + length_delimited(2, b"v"),
                        )
                        for i in range(HUGE // 10)
                    ),
                    f"{field.name}: {HUGE // 10} entries",
                )
            ),
            _wire_malformed_field(field),
        )
    return st.one_of(_wire_hostile_single(field, depth), _wire_malformed_field(field))


def wire_valid(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Wire]:
    """Plausible encoded fields of ``desc`` (any subset, any order, repeats allowed)."""
    if not desc.fields:
        return st.just(Wire(b""))
    fields = st.sampled_from(list(desc.fields)).flatmap(
        lambda f: _wire_valid_single(f, depth).map(Wire)
    )
    return st.lists(fields, max_size=4).map(_join)


UNKNOWN_FIELDS: Final[list[Wire]] = [
    Wire(length_delimited(1000, b"hello"), "unknown field 1000"),
    Wire(key(2**29 - 1, VARINT) + b"\x01", "field number 2**29-1"),
    Wire(key(0, VARINT) + b"\x01", "field number 0"),
    Wire(key(1000, SGROUP) * DEEP + key(1000, EGROUP) * DEEP, f"groups nested {DEEP} deep"),
    Wire(key(1000, SGROUP) * 50 + key(1000, EGROUP) * 50, "groups nested 50 deep"),
    Wire(key(1000, SGROUP), "group never ended"),
    Wire(key(1000, EGROUP), "end of a group never started"),
    Wire(key(1000, SGROUP) + key(1001, EGROUP), "group ended with another number"),
]


def wire_hostile(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Wire]:
    """Plausible fields of ``desc`` around one hostile field (or one odd unknown field)."""
    hostile: list[st.SearchStrategy[Wire]] = [st.sampled_from(UNKNOWN_FIELDS)]
    if desc.fields:
        hostile.insert(
            0, st.sampled_from(list(desc.fields)).flatmap(lambda f: _wire_hostile_field(f, depth))
        )
    return st.builds(
        lambda before, bad, after: _join([before, bad, after]),
        wire_valid(desc, depth),
        st.one_of(*hostile),
        wire_valid(desc, depth),
    )


def _wire_case(wire: Wire) -> Case:
    note = wire.note or "plausible"
    return Case(wire.data, abbreviate(f"{note} — bytes {wire.data!r}"))


def wire_cases(desc: Descriptor) -> st.SearchStrategy[Case]:
    """Protobuf bodies for a request of ``desc``: mostly one hostile field, some plausible,
    some random bytes."""
    return st.one_of(
        wire_hostile(desc).map(_wire_case),
        wire_hostile(desc).map(_wire_case),
        wire_hostile(desc).map(_wire_case),
        wire_valid(desc).map(_wire_case),
        st.binary(min_size=1, max_size=48).map(lambda b: Case(b, f"random bytes {b!r}")),
    )


PER_FIELD_WIRE: Final[dict[str, list[tuple[bytes, str]]]] = {
    "string": [(b"a\x00b", "NUL inside"), (b"\xff\xfe", "invalid UTF-8"), (b"a" * HUGE, "huge")],
}


def wire_per_field(desc: Descriptor) -> list[Case]:
    """One request per top-level field: NUL, invalid UTF-8 and a huge string in strings
    (map keys and values too), out-of-range seconds in timestamps and durations, an unknown
    enum number, -1 and 2**63 in integers."""
    cases: list[Case] = []
    for field in desc.fields:
        number, name, kind = field.number, field.name, _per_field_class(field)
        pieces: list[Wire] = []
        if is_map(field):
            for raw, what in PER_FIELD_WIRE["string"]:
                entry = length_delimited(1, raw) + length_delimited(2, raw)
                pieces.append(Wire(length_delimited(number, entry), f"{name}[{what}]={what}"))
        elif kind == "string":
            pieces += [
                Wire(length_delimited(number, raw), f"{name}: {what}")
                for raw, what in PER_FIELD_WIRE["string"]
            ]
        elif kind in (TIMESTAMP, DURATION):
            for seconds in (2**62, -(2**62)):
                payload = key(1, VARINT) + varint(seconds)
                pieces.append(Wire(length_delimited(number, payload), f"{name}.seconds={seconds}"))
        elif kind == "enum":
            pieces.append(Wire(key(number, VARINT) + varint(999), f"{name}=999"))
        elif kind == "int":
            wire_type = _expected_wire_type(field)
            pieces += [
                Wire(key(number, wire_type) + _scalar(field, v), f"{name}={v}") for v in (-1, 2**63)
            ]
        elif kind == "float":
            pieces.append(
                Wire(
                    key(number, I64 if field.type == T.TYPE_DOUBLE else I32)
                    + _scalar(field, math.nan),
                    f"{name}=nan",
                )
            )
        cases += [_wire_case(piece) for piece in pieces]
    return cases


def wire_fixed(desc: Descriptor) -> list[Case]:
    """The cases every method gets: garbage bodies, one hostile value per top-level field,
    and one oversized body."""
    cases = [
        *wire_per_field(desc),
        Case(b"\xff" * 16, "ff*16"),
        Case(b"\x0a\x64ab", "field 1: length 100, 2 bytes follow"),
        Case(b"\x08" + b"\xff" * 10 + b"\x01", "field 1: 11-byte varint"),
        Case(b"\x00", "single zero byte (field number 0)"),
        Case(b"\x07", "wire type 7"),
        *(Case(w.data, w.note) for w in UNKNOWN_FIELDS),
    ]
    cases.append(
        Case(length_delimited(1, b"a" * OVERSIZED), f"field 1: {OVERSIZED} bytes (oversized)")
    )
    return cases
