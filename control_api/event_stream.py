"""``DeviceService/StreamEvents``: the fleet's device events, tailed from Redis.

The events are the entries of the fleet's stream (``fleetd.storage.events``), read with
``XREAD BLOCK`` from the id after the last one delivered, so no event between two reads
is missed; ``resume_after`` starts from an earlier id (whatever the capped stream still
holds is replayed first). Event types are mapped to the API's names (``status_change``,
``deployment``...); a ``device_filter`` is matched per event by core_ext against the
device as PostgreSQL has it (fetched per batch, cached briefly), with the status an
online/offline event reports.

Bounds, so a stream cannot hold more than its share:

- at most :data:`MAX_STREAMS_PER_CALLER` open streams per caller across all API processes
  (a lease per stream in a Redis ZSET, renewed while it runs, so a crashed process's
  streams expire), RESOURCE_EXHAUSTED past it;
- a stream ends (OK) after :data:`MAX_STREAM_SECONDS`; the client resumes with
  ``resume_after`` set to the last ``event_id`` it received;
- reads take at most :data:`READ_COUNT` entries and are driven by the client: the next
  read waits until the previous batch was sent (flow control), so a slow client only
  falls behind in Redis, never in server memory;
- a client that goes away cancels the handler (connectrpc watches for the disconnect),
  which releases the lease.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Final

from connectrpc.code import Code
from connectrpc.errors import ConnectError

import core_ext
from control_api import convert
from control_api.auth import Principal
from control_api.errors import invalid
from control_api.resources import Resources
from fleetd.storage import devices as device_store
from fleetd.storage import event_stream_reads as reads
from fleetd.storage import events
from fleetd.storage.devices import DeviceRecord
from fleetd.storage.errors import StoreUnavailable
from fleetd.v1 import device_pb2, update_pb2

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CALLER: Final = 5
MAX_STREAM_SECONDS: Final = 3600.0
READ_COUNT: Final = 500
BLOCK_MS: Final = 1000
"""XREAD BLOCK; below the API's Redis socket timeout (2 s)."""
LEASE_SECONDS: Final = 30.0
DEVICE_CACHE_SECONDS: Final = 5.0
DEVICE_CACHE_SIZE: Final = 10_000

TYPES: Final[dict[str, str]] = {
    events.ONLINE: "status_change",
    events.OFFLINE: "status_change",
    "device.heartbeat": "heartbeat",
    events.DEPLOYMENT: "deployment",
    events.REGISTERED: "registered",
    events.UPDATED: "updated",
    events.DELETED: "deleted",
}
"""Stream event type -> the API's event type (StreamEventsRequest.events)."""
API_TYPES: Final = frozenset(TYPES.values())
DEFAULT_TYPES: Final = API_TYPES - {"heartbeat"}
_CHANGES_DEVICE: Final = frozenset({events.REGISTERED, events.UPDATED, events.DELETED})
_STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")

_STATE: Final[dict[str, int]] = {
    name: update_pb2.DeviceDeploymentStatus.State.Value(name.upper())
    for name in (
        "pending",
        "downloading",
        "verifying",
        "applying",
        "healthy",
        "rolled_back",
        "failed",
        "cancelled",
        "skipped",
    )
}


class Subscription:
    """What one StreamEvents call asked for, validated."""

    def __init__(self, request: device_pb2.StreamEventsRequest) -> None:
        unknown = sorted(set(request.events) - API_TYPES)
        if unknown:
            raise invalid(
                f"events: unknown type(s) {', '.join(map(repr, unknown))}; "
                f"types are {', '.join(sorted(API_TYPES))}"
            )
        self.types = frozenset(request.events) or DEFAULT_TYPES
        self.filter_text = request.device_filter
        self.filtered = bool(request.device_filter.strip())
        self.compile_filter()  # fail now, not at the first event
        if request.resume_after and not _STREAM_ID.match(request.resume_after):
            raise invalid("resume_after must be an event_id from an earlier stream")
        self.resume_after = request.resume_after

    def compile_filter(self) -> core_ext.Filter:
        """The filter, compiled now (relative times such as ``last_seen:>-5m`` move on)."""
        try:
            return core_ext.compile_filter(self.filter_text)
        except core_ext.FilterError as exc:
            raise invalid(f"device_filter: {exc} (at character {exc.position})") from None


def _record(device_id: str, device: DeviceRecord | None, status: str | None) -> dict[str, object]:
    """A device as core_ext's Filter.matches reads it (unknown device: only the id)."""
    record: dict[str, object] = {"id": device_id}
    if device is not None:
        record.update(
            name=device.name,
            type=device.device_type,
            version=device.version,
            agent_version=device.agent_version,
            fleet=device.fleet,
            status=device.status,
            cpu_usage=device.cpu_usage,
            memory_usage=device.memory_usage,
            disk_usage=device.disk_usage,
            uptime_seconds=device.uptime_seconds,
            last_seen=device.last_seen,
            registered_at=device.registered_at,
            updated_at=device.updated_at,
            tags=list(device.tags),
            metadata=device.metadata,
        )
    if status is not None:
        record["status"] = status
    return record


def _float_field(fields: Mapping[str, str], name: str) -> float | None:
    try:
        return float(fields[name])
    except (KeyError, ValueError):
        return None


def _response(
    entry_id: str, event: events.Event, api_type: str, device: DeviceRecord | None
) -> device_pb2.StreamEventsResponse:
    msg = device_pb2.StreamEventsResponse(
        event_id=entry_id, type=api_type, device_id=event.device_id
    )
    msg.timestamp.FromNanoseconds(int(event.at * 1e9))
    fields = event.fields
    if api_type == "status_change":
        change = msg.status_change
        change.state = device_pb2.ONLINE if event.type == events.ONLINE else device_pb2.OFFLINE
        previous = fields.get("previous")
        if previous in convert.STATUS_TO_STATE:
            change.previous_state = convert.STATUS_TO_STATE[previous]
        last_seen = _float_field(fields, "last_seen")
        if last_seen is not None:
            change.last_seen.FromNanoseconds(int(last_seen * 1e9))
    elif api_type == "deployment":
        deployment = msg.deployment
        deployment.deployment_id = fields.get("deployment_id", "")
        deployment.update_id = fields.get("update_id", "")
        status = deployment.status
        status.device_id = event.device_id
        status.assignment_id = fields.get("assignment_id", "")
        status.state = _STATE.get(fields.get("state", ""), 0)  # type: ignore[assignment]
        status.reason = fields.get("reason", "")
    elif api_type == "heartbeat":
        for field, target in (
            ("cpu", "cpu_percent"),
            ("mem", "memory_percent"),
            ("disk", "disk_percent"),
        ):
            value = _float_field(fields, field)
            if value is not None:
                setattr(msg.heartbeat, target, value)
    elif api_type in ("registered", "updated") and device is not None:
        msg.device.CopyFrom(convert.device(device))
    return msg


class _DeviceCache:
    """Devices by id for a few seconds (None: no such device); what a stream needs to
    match its filter."""

    def __init__(self) -> None:
        self._devices: dict[str, tuple[float, DeviceRecord | None]] = {}

    async def devices(
        self, res: Resources, device_ids: set[str], fresh: set[str]
    ) -> dict[str, DeviceRecord | None]:
        now = time.monotonic()
        found: dict[str, DeviceRecord | None] = {}
        missing: list[str] = []
        for device_id in device_ids:
            cached = self._devices.get(device_id)
            if device_id in fresh or cached is None or cached[0] < now:
                missing.append(device_id)
            else:
                found[device_id] = cached[1]
        if missing:
            loaded = await device_store.get_devices(res.pool, missing)
            if len(self._devices) + len(missing) > DEVICE_CACHE_SIZE:
                self._devices.clear()
            for device_id in missing:
                device = loaded.get(device_id)
                self._devices[device_id] = (now + DEVICE_CACHE_SECONDS, device)
                found[device_id] = device
        return found


async def stream(
    res: Resources, principal: Principal, request: device_pb2.StreamEventsRequest
) -> AsyncIterator[device_pb2.StreamEventsResponse]:
    """The events of ``request``, as they happen, within the module's bounds.

    Redis failing raises ``StoreUnavailable`` (UNAVAILABLE, control_api/auth.py), naming
    the ``resume_after`` to continue from once the stream has started.
    """
    subscription = Subscription(request)
    redis = res.redis
    fleet = res.settings.fleet
    caller = f"{principal.kind}:{principal.id}"
    lease = uuid.uuid4().hex
    admitted = await reads.acquire_lease(
        redis, caller, lease, lease_seconds=LEASE_SECONDS, max_streams=MAX_STREAMS_PER_CALLER
    )
    if not admitted:
        raise ConnectError(
            Code.RESOURCE_EXHAUSTED,
            f"at most {MAX_STREAMS_PER_CALLER} concurrent event streams per caller; "
            "close one first",
        )
    try:
        last_id = subscription.resume_after or await reads.newest_id(redis, fleet)
        started = time.monotonic()
        renewed = started
        cache = _DeviceCache()
        while time.monotonic() - started < MAX_STREAM_SECONDS:
            try:
                if time.monotonic() - renewed > LEASE_SECONDS / 3:
                    await reads.renew_lease(redis, caller, lease, lease_seconds=LEASE_SECONDS)
                    renewed = time.monotonic()
                batch = await reads.read_after(
                    redis, fleet, last_id, count=READ_COUNT, block_ms=BLOCK_MS
                )
            except StoreUnavailable as exc:
                # Only this module knows where the client should pick up again.
                raise StoreUnavailable(f"{exc}; resume with resume_after {last_id!r}") from exc
            if not batch:
                continue
            last_id = batch[-1][0]
            for response in await _select(res, subscription, cache, batch):
                yield response
    finally:
        await asyncio.shield(reads.release_lease(redis, caller, lease))


async def _select(
    res: Resources,
    subscription: Subscription,
    cache: _DeviceCache,
    batch: list[reads.Entry],
) -> list[device_pb2.StreamEventsResponse]:
    """The batch's events this subscription wants, as responses."""
    wanted = [
        (entry_id, event, TYPES[event.type])
        for entry_id, event in batch
        if event is not None and TYPES.get(event.type) in subscription.types
    ]
    need_devices = {
        event.device_id
        for _, event, api_type in wanted
        if subscription.filtered or api_type in ("registered", "updated")
    }
    fresh = {e.device_id for _, e, _ in wanted if e.type in _CHANGES_DEVICE}
    devices = await cache.devices(res, need_devices, fresh) if need_devices else {}
    device_filter = subscription.compile_filter() if subscription.filtered else None
    selected = []
    for entry_id, event, api_type in wanted:
        device = devices.get(event.device_id)
        if device_filter is not None:
            status = {events.ONLINE: "online", events.OFFLINE: "offline"}.get(event.type)
            if not device_filter.matches(_record(event.device_id, device, status)):
                continue
        selected.append(_response(entry_id, event, api_type, device))
    return selected
