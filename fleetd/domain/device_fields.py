"""Limits on what a device may send: every field bounded, every number sane.

A refusal names the field and the limit, and becomes INVALID_ARGUMENT at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

MAX_TAGS = 64
MAX_TAG_LEN = 64
MAX_METADATA = 64
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256
MAX_TEXT = 256


class InvalidRequest(ValueError):
    """The request breaks a documented limit; the message says which."""


def text(name: str, value: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters")
    return value


def tags(values: Iterable[str]) -> list[str]:
    result = list(values)
    if len(result) > MAX_TAGS:
        raise InvalidRequest(f"at most {MAX_TAGS} tags")
    for tag in result:
        if not tag or len(tag) > MAX_TAG_LEN:
            raise InvalidRequest(f"tags must be 1 to {MAX_TAG_LEN} characters")
    return sorted(set(result))


def metadata(values: Mapping[str, str]) -> dict[str, str]:
    if len(values) > MAX_METADATA:
        raise InvalidRequest(f"at most {MAX_METADATA} metadata entries")
    for key, value in values.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise InvalidRequest(f"metadata keys must be 1 to {MAX_METADATA_KEY} characters")
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(f"metadata value of {key!r} exceeds {MAX_METADATA_VALUE} chars")
    return dict(values)


def percent(name: str, value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise InvalidRequest(f"{name} must be a percentage between 0 and 100, got {value}")
    return value


def non_negative(name: str, value: int, limit: int = 2**62) -> int:
    if not 0 <= value <= limit:
        raise InvalidRequest(f"{name} must be between 0 and {limit}, got {value}")
    return value
