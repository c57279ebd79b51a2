"""How the control API turns request bodies into messages: decoded, then checked, or refused.

Every service of the control API is built with :data:`CODECS` (``control_api.app``), so
every request message of every method, in every protocol (Connect JSON or binary, gRPC,
gRPC-Web, unary or streamed, GET or POST) passes through :meth:`JsonCodec.decode` or
:meth:`BinaryCodec.decode` before an interceptor or a handler sees it. A body that is not
a message (``null``, ``123``, ``"text"``, a corrupt wire format, bytes that are not UTF-8)
or a message that breaks a rule of ``fleetd.domain.message_rules`` (a NUL, an over-long
string, NaN) is refused there with INVALID_ARGUMENT naming what was wrong, so nothing about
it reaches the audit log, a store or a handler. A refusal's words are ours: no exception
class, no parser internals (the server logs those).

Encoding (responses) is connectrpc's own google.protobuf codecs, unchanged.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final, TypeVar

from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.errors import ConnectError
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from fleetd.domain import message_rules

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

_FIELD = re.compile(r"Failed to parse (\w+) field: ")
_AT = re.compile(r" at [\w.\[\]]+$")
_INTERNALS = re.compile(
    r"[A-Z]\w*(?:Error|Exception)\b|object is not|has no attribute|unhashable|argument"
    r"|expected string or bytes-like|<\w|0x[0-9a-f]"
)
"""Words of Python's own exceptions that protobuf's parser sometimes passes on as its
message: such a reason is replaced by a plain one."""
_JSON_KINDS: Final = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
}


def refused(message: str) -> ConnectError:
    """INVALID_ARGUMENT for a request that is not a valid message (the ErrorInfo detail
    is added on the way out, in ``control_api.auth.answer``)."""
    return ConnectError(Code.INVALID_ARGUMENT, message)


def checked(message: M) -> M:
    """``message`` if it follows ``message_rules``; else INVALID_ARGUMENT naming the field."""
    try:
        message_rules.check(message)
    except message_rules.Violation as violation:
        raise refused(str(violation)) from None
    return message


class JsonCodec:
    """Protobuf JSON: the body must be a JSON object that protobuf's mapping accepts."""

    def __init__(self) -> None:
        self._encoder = google_protobuf_json_codec()

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        encoded: bytes = self._encoder.encode(message)
        return encoded

    def decode(self, data: bytes | bytearray, message_class: type[M]) -> M:
        descriptor: Descriptor = message_class.DESCRIPTOR  # type: ignore[assignment]  # upb
        kind = descriptor.full_name
        value = _json_object(bytes(data), kind)
        message = message_class()
        try:
            json_format.ParseDict(value, message, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise refused(f"the request is not a valid {kind}: {_reason(str(exc))}") from None
        except Exception as exc:
            # protobuf's parser lets some built-in errors through for odd shapes.
            log.info("JSON %s refused: %r", kind, exc)
            raise refused(
                f"the request is not a valid {kind}: a field holds a value of the wrong type"
            ) from None
        wrong = _misshapen(value, descriptor)
        if wrong is not None:
            raise refused(f"the request is not a valid {kind}: {wrong} must be a JSON object")
        return checked(message)


class BinaryCodec:
    """Protobuf binary: the wire format must parse, and its strings be UTF-8."""

    def __init__(self) -> None:
        self._encoder = google_protobuf_binary_codec()

    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        encoded: bytes = self._encoder.encode(message)
        return encoded

    def decode(self, data: bytes | bytearray, message_class: type[M]) -> M:
        try:
            return message_rules.parse(message_class, bytes(data))
        except message_rules.Violation as violation:
            raise refused(str(violation)) from None


CODECS: Final[list[Any]] = [BinaryCodec(), JsonCodec()]
"""The codecs every control API service is built with (binary first, as connectrpc's)."""


def _json_object(data: bytes, kind: str) -> dict[str, Any]:
    """The body as a JSON object; else INVALID_ARGUMENT saying what it is instead."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise refused(f"the request body is not valid UTF-8 (at byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise refused(f"the request body is not valid JSON: {exc.msg} at {exc.pos}") from None
    except _Duplicate as exc:
        raise refused(f"the request body names {exc.key!r} twice") from None
    except _NotText:
        raise refused("the request body holds a name that is not valid UTF-8") from None
    except RecursionError:
        raise refused("the request body nests too deeply") from None
    if not isinstance(value, dict):
        shown = _JSON_KINDS.get(type(value), "not an object")
        raise refused(f"the request body must be a JSON object (a {kind}), not {shown}")
    return value


class _NotText(Exception):
    """A name (an object's key) holds a lone surrogate (``"\\ud800"``): it cannot be
    UTF-8, and protobuf's parser fails on it in ways that are not a ParseError."""


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:64]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(key)
        if not key.isascii():
            try:
                key.encode()
            except UnicodeEncodeError:
                raise _NotText from None
        result[key] = value
    return result


_SPECIAL_JSON: Final = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)
"""Message types whose JSON form is not an object (a string, a number, an array...)."""


def _misshapen(value: dict[str, Any], descriptor: Descriptor, path: str = "") -> str | None:
    """The path of a message field given something other than a JSON object (or null).

    protobuf's parser, ignoring unknown fields, reads a string where a message belongs
    as a message of unknown fields (its characters), that is as an empty message: the
    request would mean something its sender did not write. The parser has accepted the
    body, so its depth is bounded (protobuf stops at 100 levels)."""
    for key, item in value.items():
        field = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
        entry = None if field is None else field.message_type
        if field is None or entry is None or item is None:
            continue
        where = f"{path}{field.name}"
        if entry.GetOptions().map_entry:
            if not isinstance(item, dict):
                return where
            inner = entry.fields_by_name["value"].message_type
            if inner is not None and inner.full_name not in _SPECIAL_JSON:
                for k, v in item.items():
                    found = _nested(v, inner, f"{where}[{k!r}]")
                    if found is not None:
                        return found
        elif field.is_repeated:
            if not isinstance(item, list):
                return where
            if entry.full_name not in _SPECIAL_JSON:
                for i, v in enumerate(item):
                    found = _nested(v, entry, f"{where}[{i}]")
                    if found is not None:
                        return found
        elif entry.full_name not in _SPECIAL_JSON:
            found = _nested(item, entry, where)
            if found is not None:
                return found
    return None


def _nested(item: object, descriptor: Descriptor, where: str) -> str | None:
    if item is None:
        return None
    if not isinstance(item, dict):
        return where
    return _misshapen(item, descriptor, f"{where}.")


def _reason(parser_message: str) -> str:
    """protobuf's ParseError message, as a field path and a reason without internals:
    ``Failed to parse system_info field: Failed to parse disk_gb field: Couldn't parse
    float: "x".`` becomes ``system_info.disk_gb: Couldn't parse float: "x"``."""
    path = _FIELD.findall(parser_message)
    reason = _AT.sub("", _FIELD.sub("", parser_message).rstrip("."))
    if _INTERNALS.search(reason):
        reason = "a value of the wrong type"
    reason = reason[:200]
    return f"{'.'.join(path)}: {reason}" if path else reason
