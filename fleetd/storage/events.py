"""Device events on the fleet's Redis stream: one encoding for every writer and reader.

Writers (the gateway's liveness sweeper, the control API) call :func:`publish` after the
change they report is committed; readers (``DeviceService/StreamEvents``, later the
WebSocket streams and the webhook dispatcher) read ``redis_keys.events(fleet)`` and
:func:`decode` each entry. An entry's fields are ``type``, ``device_id``, ``at`` (Unix
seconds, a float written with ``repr``) and the event-specific ones named below, all
strings.

Events are notifications, not the record: PostgreSQL holds the truth, and the stream is
capped (``MAXLEN ~ 1,000,000``), so a reader that falls further behind than that, or a
Redis that restarts, loses events. That is why :func:`publish` runs after the commit and
its failure never undoes a change (callers log it; see ``control_api.notify``).

| type | event-specific fields |
|---|---|
| ``device.online``, ``device.offline`` | ``previous`` (the status before, optional), ``last_seen`` (Unix seconds, optional) |
| ``device.registered``, ``device.updated``, ``device.deleted`` | none (readers load the device) |
| ``device.deployment`` | ``assignment_id``, ``deployment_id``, ``state`` (the assignment's new state), ``reason`` |
| ``deployment.started``, ``.wave_started``, ``.awaiting_approval``, ``.paused``, ``.resumed``, ``.completed``, ``.failed``, ``.cancelled``, ``.rolling_back``, ``.rolled_back`` | ``deployment_id``, ``update_id``, ``state``, ``wave``, ``message``; ``device_id`` is empty (a deployment event is about no one device) |

Unknown types and extra fields are allowed: readers skip what they do not know.
"""  # noqa: E501

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleetd.storage import redis_keys
from fleetd.storage.types import Redis

MAXLEN = 1_000_000
"""Approximate cap of a fleet's stream (XADD MAXLEN ~): about a day at ~10 events/s."""

ONLINE = "device.online"
OFFLINE = "device.offline"
REGISTERED = "device.registered"
UPDATED = "device.updated"
DELETED = "device.deleted"
DEPLOYMENT = "device.deployment"

DEPLOYMENT_EVENT_PREFIX = "deployment."
"""Deployment state changes (fleetd.services.rollout): the only events without a device id."""

_RESERVED = frozenset({"type", "device_id", "at"})


class InvalidEvent(ValueError):
    """A stream entry without a type, a device id or a valid ``at``."""


@dataclass(frozen=True, slots=True)
class Event:
    """One device event. ``fields`` holds the event-specific values (see the module doc)."""

    type: str
    device_id: str
    at: float = field(default_factory=time.time)
    """When it happened, Unix seconds."""
    fields: Mapping[str, str] = field(default_factory=dict)


def encode(event: Event) -> dict[str, str]:
    """The stream entry's fields for ``event``.

    Raises:
        ValueError: an event-specific field reuses ``type``, ``device_id`` or ``at``, or
            the type or device id is empty.
    """
    if not event.type or not (event.device_id or _about_deployment(event.type)):
        raise ValueError("an event needs a type and a device_id")
    clash = _RESERVED.intersection(event.fields)
    if clash:
        raise ValueError(f"event field names {sorted(clash)} are reserved")
    return {
        "type": event.type,
        "device_id": event.device_id,
        "at": repr(float(event.at)),
        **event.fields,
    }


def _about_deployment(event_type: str) -> bool:
    return event_type.startswith(DEPLOYMENT_EVENT_PREFIX)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


EntryFields = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]
"""A stream entry's fields as redis-py gives them (bytes, or str with decode_responses)."""


def decode(entry: EntryFields) -> Event:
    """The event in a stream entry's fields (as redis-py returns them, bytes or str).

    Raises:
        InvalidEvent: ``type``, ``device_id`` or ``at`` is missing, or ``at`` is not a
            finite number.
    """
    try:
        fields = {_text(k): _text(v) for k, v in entry.items()}
    except UnicodeDecodeError:
        raise InvalidEvent("event fields must be UTF-8") from None
    event_type = fields.pop("type", "")
    device_id = fields.pop("device_id", "")
    at_text = fields.pop("at", "")
    if not event_type or not (device_id or _about_deployment(event_type)):
        raise InvalidEvent("event without a type or device_id")
    try:
        at = float(at_text)
    except ValueError:
        raise InvalidEvent(f"event 'at' is not a number: {at_text!r}") from None
    if at != at or at in (float("inf"), float("-inf")):
        raise InvalidEvent(f"event 'at' is not finite: {at_text!r}")
    return Event(event_type, device_id, at, fields)


async def publish(redis: Redis, fleet: str, events: Sequence[Event]) -> None:
    """Append ``events`` to the fleet's stream, in order, in one pipeline round trip.

    Raises redis-py's errors (``redis.RedisError``, ``OSError``) when Redis cannot be
    reached; callers decide whether that matters (the control API logs and carries on).
    """
    if not events:
        return
    key = redis_keys.events(fleet)
    pipe = redis.pipeline(transaction=False)
    for event in events:
        # redis-py types XADD's fields as a dict of bytes/str/numbers; ours are all str.
        pipe.xadd(key, encode(event), maxlen=MAXLEN, approximate=True)  # type: ignore[arg-type]
    await pipe.execute()
