"""Limits on a device's fields: every field bounded, every number sane, for both servers.

The gateway (``Register``, ``Heartbeat``) and the control API (``RegisterDevice``,
``UpdateDevice``, ``Heartbeat``) check the same fields against the constants here. Where
the two servers accept different inputs for the same field, both limits are named here,
after the edge that applies them, so the disagreement is visible in one place:

- metadata keys: the gateway's ``Register`` and the control API's ``UpdateDevice`` need
  1 to ``MAX_METADATA_KEY`` characters, but ``RegisterDevice`` also accepts an empty key
  (``REGISTER_DEVICE_MIN_METADATA_KEY``); ``UpdateDevice`` alone restricts keys to
  ``OPERATOR_METADATA_KEY``'s alphabet, and alone does not bound the number of entries;
- a percentage is refused with different words by each server (the rule, ``is_percent``,
  is the same).
- uptime: the gateway bounds ``uptime_seconds`` to ``non_negative``'s limit, the control
  API's ``Heartbeat`` only refuses a negative one.

A refusal is ``InvalidRequest`` naming the field and the limit; each edge turns it into
INVALID_ARGUMENT, in its own words where its clients already rely on them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""A device id: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.
The same rule as the ``devices.device_id`` CHECK constraint and the device id core_ext
extracts from a certificate's URI SAN."""

MAX_NAME = 256
"""A device's display name (``RegisterDevice.device_name``, ``UpdateDevice``'s ``name``)."""
MAX_DEVICE_TYPE = 64
"""``device_type``, on either server."""
MAX_VERSION = 64
"""A version string: the device's ``version`` and its agent's ``agent_version``."""
MAX_TEXT = 256
"""Any other free text a device reports (its hardware profile's fields)."""

MAX_TAGS = 64
MAX_TAG_LEN = 64

MAX_METADATA = 64
"""Metadata entries a registration may carry (gateway ``Register``, ``RegisterDevice``)."""
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256
MIN_METADATA_KEY = 1
"""The shortest metadata key the gateway's ``Register`` accepts."""
REGISTER_DEVICE_MIN_METADATA_KEY = 0
"""The shortest metadata key the control API's ``RegisterDevice`` accepts: unlike the
gateway, it takes an empty key. Kept as it is (a behaviour clients may rely on) until the
two servers are reconciled."""
OPERATOR_METADATA_KEY = re.compile(rf"^[A-Za-z0-9_.-]{{{MIN_METADATA_KEY},{MAX_METADATA_KEY}}}$")
"""The metadata keys an operator may set with the control API's ``UpdateDevice`` (whole
map or ``metadata.<key>`` paths): a narrower alphabet than the servers' registrations."""

# The numbers a device reports about itself (its hardware profile, ``SystemInfo``, and its
# stats), bounded on both servers by ``fleetd.domain.message_rules``: none is negative,
# none is larger than any real device, and none is NaN or infinite.
MAX_CPU_CORES = 4096
MAX_MEMORY_MB = 2**40
"""1 EiB in MiB."""
MAX_DISK_GB = 1e9
"""1 EB in GB."""
MAX_LOAD_AVERAGE = 1e6
MIN_TEMPERATURE = -273.15
MAX_TEMPERATURE = 1000.0
MAX_UPTIME_SECONDS = 2**62
"""The bound ``non_negative`` applies by default (a device's uptime, a size)."""


class InvalidRequest(ValueError):
    """The request breaks a documented limit; the message says which."""


def text(name: str, value: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit:
        raise InvalidRequest(f"{name} is longer than {limit} characters")
    return value


def tags(values: Iterable[str]) -> list[str]:
    """At most ``MAX_TAGS`` tags of 1 to ``MAX_TAG_LEN`` characters; sorted, without
    duplicates (a device's tags are a set)."""
    result = list(values)
    if len(result) > MAX_TAGS:
        raise InvalidRequest(f"at most {MAX_TAGS} tags")
    for tag in result:
        if not tag or len(tag) > MAX_TAG_LEN:
            raise InvalidRequest(f"tags must be 1 to {MAX_TAG_LEN} characters")
    return sorted(set(result))


def metadata(
    values: Mapping[str, str], *, min_key_length: int = MIN_METADATA_KEY
) -> dict[str, str]:
    """At most ``MAX_METADATA`` entries, keys of ``min_key_length`` to
    ``MAX_METADATA_KEY`` characters, values of at most ``MAX_METADATA_VALUE``."""
    if len(values) > MAX_METADATA:
        raise InvalidRequest(f"at most {MAX_METADATA} metadata entries")
    for key, value in values.items():
        if not min_key_length <= len(key) <= MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata keys must be {min_key_length} to {MAX_METADATA_KEY} characters"
            )
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(f"metadata value of {key!r} exceeds {MAX_METADATA_VALUE} chars")
    return dict(values)


def is_operator_metadata(key: str, value: str) -> bool:
    """Whether an operator may set metadata ``key`` to ``value`` with ``UpdateDevice``."""
    return bool(OPERATOR_METADATA_KEY.match(key)) and len(value) <= MAX_METADATA_VALUE


def is_percent(value: float) -> bool:
    """The one rule for a percentage: a finite number from 0 to 100 (NaN is not one)."""
    return math.isfinite(value) and 0.0 <= value <= 100.0


def percent(name: str, value: float) -> float:
    if not is_percent(value):
        raise InvalidRequest(f"{name} must be a percentage between 0 and 100, got {value}")
    return value


def used_percent(used: float, total: float) -> float | None:
    """``used`` of ``total`` as a percentage, capped at 100 (a device may briefly report
    more used than its total); None when nothing is reported used or the total is unknown."""
    if used and total > 0:
        return min(100.0, 100.0 * used / total)
    return None


def non_negative(name: str, value: int, limit: int = MAX_UPTIME_SECONDS) -> int:
    if not 0 <= value <= limit:
        raise InvalidRequest(f"{name} must be between 0 and {limit}, got {value}")
    return value
