"""``/ws/metrics``: the fleet's live metrics over a WebSocket (docs/analytics.md, 6).

Handshake. The caller authenticates as every RPC does (``control_api.auth``: the same API
keys and JWTs, permission ``analytics:view``, the same rate limit, one request per
connection): with ``X-API-Key`` or ``Authorization: Bearer <JWT>`` headers, or, from a
browser, which cannot set headers, with the bearer as a subprotocol::

    new WebSocket(url, ["fleetd.v1", "fleetd.bearer." + token])

The server answers with the subprotocol ``fleetd.v1`` and never echoes the token. A
client certificate does not authenticate here: devices hold no ``analytics:view``, and
pyvoy passes WebSockets only the certificate's subject. A refused caller's connection is
accepted and then closed at once with an ``{"type": "error", "message": ...}`` frame and a
close code and reason (1008 for a missing or refused credential or permission, 1013 for a
rate or connection limit, 1011 for a server fault), because a browser's script sees a
close frame's code and reason but never the HTTP status of a refused upgrade. Only an
offer of subprotocols without ``fleetd.v1`` is refused before the upgrade (403): a browser
would fail a connection answered without one of its offers anyway.

Protocol. The client sends ``{"type": "subscribe", "metrics": [...], "interval": 5000}``,
optionally with ``"labels": {"fleet"|"type"|"version": ...}`` and ``"aggregation"`` (AVG,
the default, MIN, MAX or COUNT); it may subscribe again at any time to change what it
receives. The server answers at once, then every ``interval`` ms, with::

    {"type": "metrics", "timestamp": "2026-01-01T12:00:05.000Z", "interval_ms": 5000,
     "metrics": {"cpu_usage": {"value": 41.5, "count": 120},
                 "device_online_count": {"value": 118}}}

folded from the live stream's entries since the previous frame (the first frame covers
the interval before the subscription): ``value`` is the aggregation over the heartbeats
of the window (null when there were none) and ``count`` their number;
``heartbeat_rate`` is heartbeats per second over the window; ``device_online_count``
counts the devices liveness holds online now. A bad message is answered with an error
frame and close 1008 (1009 for one over :data:`MAX_MESSAGE_BYTES`).

Bounds, shared with StreamEvents (``control_api.event_stream``): at most
``MAX_STREAMS_PER_CALLER`` open streams per caller, WebSockets and StreamEvents calls
together (one lease set in Redis), close 1013 past it; a connection ends (1000) after
``MAX_STREAM_SECONDS``; frames are never queued: the next one is built only once the
previous one was sent, from the latest entries, and a send that does not complete within
:data:`SEND_TIMEOUT` closes the connection (1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from control_api import auth
from control_api.asgi import Message, Receive, Scope, Send, send_text
from control_api.event_stream import LEASE_SECONDS, MAX_STREAM_SECONDS, MAX_STREAMS_PER_CALLER
from control_api.resources import Resources, resources
from fleetd.domain import bearer_tokens
from fleetd.domain.analytics.metrics import BY_NAME, HEARTBEAT_COUNT_METRIC, PERCENTILES, ROLLED_UP
from fleetd.storage import event_stream_reads as leases
from fleetd.storage import live_metrics as store
from fleetd.storage.errors import StoreUnavailable

log = logging.getLogger(__name__)

PATH: Final = "/ws/metrics"
METHOD: Final = "ws/metrics"
"""The name logs and errors give this endpoint."""
PERMISSION: Final = "analytics:view"
SUBPROTOCOL: Final = "fleetd.v1"
BEARER_PREFIX: Final = "fleetd.bearer."

MAX_MESSAGE_BYTES: Final = 4096
MIN_INTERVAL_MS: Final = 1_000
MAX_INTERVAL_MS: Final = 60_000
DEFAULT_INTERVAL_MS: Final = 5_000
SUBSCRIBE_WITHIN: Final = 30.0
"""Seconds a connection may stay open without subscribing."""
SEND_TIMEOUT: Final = 10.0
"""Seconds one frame may take to be sent before the client counts as too slow."""
MAX_REASON_BYTES: Final = 123
"""RFC 6455: a close frame's reason fits in 125 bytes with its code."""

ONLINE: Final = "device_online_count"
RATE: Final = "heartbeat_rate"
LIVE_METRICS: Final = (*(m.name for m in ROLLED_UP), RATE, ONLINE)
"""What the live stream can answer: the rolled-up metrics, the heartbeat rate and the
online count (the other census metrics are per minute: GetMetrics)."""
AGGREGATIONS: Final = ("AVG", "MIN", "MAX", "COUNT")
LABELS: Final = ("fleet", "type", "version")

CLOSE_NORMAL: Final = 1000
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL: Final = 1011
CLOSE_TRY_LATER: Final = 1013


class Refusal(Exception):
    """Ends the connection: an error frame with ``message``, then close ``code``."""

    def __init__(self, message: str, code: int = CLOSE_POLICY) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


_CLOSE_FOR: Final = {
    Code.UNAUTHENTICATED: CLOSE_POLICY,
    Code.PERMISSION_DENIED: CLOSE_POLICY,
    Code.INVALID_ARGUMENT: CLOSE_POLICY,
    Code.RESOURCE_EXHAUSTED: CLOSE_TRY_LATER,
    Code.UNAVAILABLE: CLOSE_TRY_LATER,
}


def _refusal(error: ConnectError) -> Refusal:
    return Refusal(error.message, _CLOSE_FOR.get(error.code, CLOSE_INTERNAL))


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscribe message, validated."""

    metrics: tuple[str, ...]
    interval_ms: int
    aggregation: str
    device_type: str | None
    version: str | None

    @property
    def by_group(self) -> bool:
        return self.device_type is not None or self.version is not None


def parse_subscribe(text: str, fleet: str) -> Subscription:
    """The subscription ``text`` asks for; a :class:`Refusal` naming the field and what to
    send when it is not a valid subscribe message for this server's ``fleet``."""
    try:
        message = json.loads(text)
    except ValueError:
        raise Refusal('messages must be JSON objects, such as {"type": "subscribe", ...}') from None
    if not isinstance(message, dict):
        raise Refusal('messages must be JSON objects, such as {"type": "subscribe", ...}')
    if message.get("type") != "subscribe":
        raise Refusal(f'type: {message.get("type")!r} is not a message type; send "subscribe"')
    unknown = sorted(set(message) - {"type", "metrics", "interval", "labels", "aggregation"})
    if unknown:
        raise Refusal(
            f"unknown field(s) {', '.join(unknown)}; a subscribe message has metrics, "
            "interval, labels and aggregation"
        )
    metrics = _metrics(message.get("metrics"))
    interval = message.get("interval", DEFAULT_INTERVAL_MS)
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise Refusal(f"interval must be a number of milliseconds, not {interval!r}")
    if not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS or interval != int(interval):
        raise Refusal(
            f"interval must be a whole number of milliseconds from {MIN_INTERVAL_MS:,} to "
            f"{MAX_INTERVAL_MS:,}, not {interval!r}"
        )
    aggregation = _aggregation(message.get("aggregation", "AVG"))
    labels = _labels(message.get("labels", {}), fleet)
    subscription = Subscription(
        metrics, int(interval), aggregation, labels.get("type"), labels.get("version")
    )
    if subscription.by_group and ONLINE in metrics:
        raise Refusal(
            f"{ONLINE} is counted for the whole fleet only: subscribe to it without "
            "labels.type and labels.version"
        )
    return subscription


def _metrics(metrics: object) -> tuple[str, ...]:
    if not isinstance(metrics, list) or not metrics:
        raise Refusal(f"metrics must be a non-empty list of names, such as {LIVE_METRICS[:2]!r}")
    if not all(isinstance(m, str) for m in metrics):
        raise Refusal("metrics must be a list of metric names (strings)")
    unknown = [m for m in metrics if m not in LIVE_METRICS]
    if unknown:
        not_live = [m for m in unknown if m in BY_NAME]
        detail = (
            f"{', '.join(map(repr, not_live))} only per minute, from GetMetrics; "
            if not_live
            else ""
        )
        raise Refusal(
            f"metrics: unknown live metric(s) {', '.join(map(repr, unknown[:5]))[:200]}; "
            f"{detail}live metrics are {', '.join(LIVE_METRICS)}"
        )
    return tuple(dict.fromkeys(metrics))


def _aggregation(aggregation: object) -> str:
    if isinstance(aggregation, str) and aggregation.upper() in AGGREGATIONS:
        return aggregation.upper()
    hint = (
        "; percentiles are kept per minute only: ask GetMetrics"
        if isinstance(aggregation, str) and aggregation.upper() in PERCENTILES
        else ""
    )
    raise Refusal(
        f"aggregation must be one of {', '.join(AGGREGATIONS)}, not {aggregation!r}{hint}"
    )


def _labels(labels: object, fleet: str) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise Refusal('labels must be an object such as {"type": "rpi4", "version": "1.2.0"}')
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise Refusal(
            f"labels: unknown label(s) {', '.join(unknown)}; labels are fleet, type, version"
        )
    for name, value in labels.items():
        if not isinstance(value, str) or len(value) > 256 or "\x00" in value:
            raise Refusal(f"labels.{name} must be a string of at most 256 characters")
    if labels.get("fleet", fleet) != fleet:
        raise Refusal(f"labels.fleet: this server serves fleet {fleet!r} only")
    return dict(labels)


def frame(
    subscription: Subscription,
    snapshots: list[store.Snapshot],
    online: int | None,
    window_seconds: float,
    now: float,
) -> dict[str, Any]:
    """The ``metrics`` message for ``subscription`` from the window's ``snapshots``."""
    folded: dict[str, store.Aggregate] = {}
    for snapshot in snapshots:
        for metric, aggregate in _matching(subscription, snapshot):
            kept = folded.get(metric)
            folded[metric] = aggregate if kept is None else kept.merge(aggregate)
    metrics: dict[str, dict[str, float | int | None]] = {}
    for name in subscription.metrics:
        if name == ONLINE:
            metrics[name] = {"value": online}
        elif name == RATE:
            beats = folded.get(HEARTBEAT_COUNT_METRIC.name)
            count = beats.count if beats is not None else 0
            metrics[name] = {"value": count / window_seconds, "count": count}
        else:
            metrics[name] = _value(folded.get(name), subscription.aggregation)
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds")
    return {
        "type": "metrics",
        "timestamp": stamp.replace("+00:00", "Z"),
        "interval_ms": subscription.interval_ms,
        "metrics": metrics,
    }


def _matching(
    subscription: Subscription, snapshot: store.Snapshot
) -> list[tuple[str, store.Aggregate]]:
    if not subscription.by_group:
        return list(snapshot.fleet.items())
    return [
        (metric, aggregate)
        for (device_type, version, metric), aggregate in snapshot.groups.items()
        if subscription.device_type in (None, device_type)
        and subscription.version in (None, version)
    ]


def _value(aggregate: store.Aggregate | None, aggregation: str) -> dict[str, float | int | None]:
    if aggregate is None:
        return {"value": 0 if aggregation == "COUNT" else None, "count": 0}
    value = {
        "AVG": aggregate.mean,
        "MIN": aggregate.minimum,
        "MAX": aggregate.maximum,
        "COUNT": aggregate.count,
    }[aggregation]
    return {"value": value, "count": aggregate.count}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


def credentials(scope: Scope) -> dict[str, str]:
    """The credential headers the connection carries, for ``auth.authenticate_headers``:
    a subprotocol bearer (an API key or a JWT) as the header it would be, else the
    ``X-API-Key`` / ``Authorization`` headers themselves. Never a client certificate."""
    for protocol in scope.get("subprotocols", ()):
        if protocol.startswith(BEARER_PREFIX):
            token = protocol[len(BEARER_PREFIX) :]
            if bearer_tokens.parse(token, "api_key") is not None:
                return {"x-api-key": token}
            return {"authorization": f"Bearer {token}"}
    found = {}
    for name in ("x-api-key", "authorization"):
        value = _header(scope, name.encode())
        if value is not None:
            found[name] = value
    return found


def _client_host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class _Connection:
    """One accepted WebSocket: sends with a deadline, receives one message at a time."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._pending: asyncio.Task[Message] | None = None
        self.closed = False

    async def send_json(self, message: Mapping[str, Any]) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self._send({"type": "websocket.send", "text": json.dumps(message)})
        except TimeoutError:
            raise Refusal(
                f"the client did not take a frame within {SEND_TIMEOUT:g} s; frames are "
                "not queued for slow clients: read them as they come"
            ) from None

    async def next_message(self, within: float) -> Message | None:
        """The client's next message, or None if none came within ``within`` seconds (the
        receive stays pending for the next call)."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._receive())
        done, _ = await asyncio.wait({self._pending}, timeout=max(0.0, within))
        if not done:
            return None
        message, self._pending = self._pending.result(), None
        if message["type"] == "websocket.disconnect":
            self.closed = True
        return message

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        data = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self._send({"type": "websocket.close", "code": code, "reason": data})
        except (TimeoutError, OSError):
            log.info("%s: the close frame could not be sent", METHOD)

    async def refuse(self, refusal: Refusal) -> None:
        """The error frame (best effort: the client may be the problem), then the close."""
        if not self.closed:
            with contextlib.suppress(Refusal, OSError):
                await self.send_json({"type": "error", "message": refusal.message})
        await self.close(refusal.code, refusal.message)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


async def metrics_ws(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app of ``/ws/metrics`` (mounted at :data:`PATH`)."""
    if scope["type"] != "websocket":
        await send_text(send, 426, f"{PATH} is a WebSocket: connect with an Upgrade\n")
        return
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    offered = list(scope.get("subprotocols", ()))
    if offered and SUBPROTOCOL not in offered:
        await send({"type": "websocket.close", "code": CLOSE_POLICY})  # a 403 before the upgrade
        return
    request_id = uuid.uuid4().hex
    response_headers: dict[str, str] = {"x-request-id": request_id}
    conn = _Connection(receive, send)
    try:
        res = resources()
        principal = await _admit(scope, request_id, response_headers)
    except ConnectError as error:
        await _accept(send, offered, response_headers)
        await conn.refuse(_refusal(error))
        return
    except Exception as error:  # a store outage or a bug: answered as the RPCs answer it
        await _accept(send, offered, response_headers)
        await conn.refuse(_refusal(auth.answer(error, METHOD, request_id)))
        return
    await _accept(send, offered, response_headers)
    try:
        await _stream(res, principal, conn)
    except Refusal as refusal:
        await conn.refuse(refusal)
    except StoreUnavailable as exc:
        log.warning("%s ended: %s", METHOD, exc)
        await conn.refuse(Refusal(f"{exc}; reconnect shortly", CLOSE_TRY_LATER))
    except Exception:
        log.exception("%s failed (request_id %s)", METHOD, request_id)
        await conn.refuse(
            Refusal(
                f"internal error (request id {request_id}); quote it to the operator",
                CLOSE_INTERNAL,
            )
        )
    finally:
        conn.cancel()


async def _admit(scope: Scope, request_id: str, response_headers: dict[str, str]) -> auth.Principal:
    """The caller, authenticated and authorised as the RPCs are, within its rate limit."""
    supplied = credentials(scope)
    if not supplied:
        raise ConnectError(
            Code.UNAUTHENTICATED,
            f"authentication required: offer the subprotocols {SUBPROTOCOL} and "
            f"{BEARER_PREFIX}<API key or JWT>, or send X-API-Key or Authorization: Bearer <JWT>",
        )
    principal = await auth.authenticate_headers(supplied)
    auth.check(principal, PERMISSION, request_id)
    await auth.limit_rate(principal, _client_host(scope), request_id, response_headers)
    return principal


async def _accept(send: Send, offered: list[str], headers: Mapping[str, str]) -> None:
    message: dict[str, Any] = {
        "type": "websocket.accept",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    if offered:
        message["subprotocol"] = SUBPROTOCOL
    await send(message)


async def _stream(res: Resources, principal: auth.Principal, conn: _Connection) -> None:
    """Subscribe, then a frame every interval, within the module's bounds."""
    caller = f"{principal.kind}:{principal.id}"
    lease = uuid.uuid4().hex
    admitted = await leases.acquire_lease(
        res.redis, caller, lease, lease_seconds=LEASE_SECONDS, max_streams=MAX_STREAMS_PER_CALLER
    )
    if not admitted:
        raise Refusal(
            f"at most {MAX_STREAMS_PER_CALLER} concurrent streams (WebSockets and StreamEvents) "
            "per caller; close one first",
            CLOSE_TRY_LATER,
        )
    try:
        await _serve(res, caller, lease, conn)
    finally:
        await asyncio.shield(leases.release_lease(res.redis, caller, lease))


async def _serve(res: Resources, caller: str, lease: str, conn: _Connection) -> None:
    fleet = res.settings.fleet
    started = time.monotonic()
    renewed = started
    subscription = await _first_subscription(conn, fleet)
    if subscription is None:
        return
    after = await store.start_id(res.redis, subscription.interval_ms)
    window_start = time.time() - subscription.interval_ms / 1000
    due = time.monotonic()
    while not conn.closed:
        now = time.monotonic()
        if now - started >= MAX_STREAM_SECONDS:
            await conn.close(
                CLOSE_NORMAL, f"connections last at most {MAX_STREAM_SECONDS:g} s; reconnect"
            )
            return
        if now - renewed >= LEASE_SECONDS / 3:
            await leases.renew_lease(res.redis, caller, lease, lease_seconds=LEASE_SECONDS)
            renewed = now
        if now >= due:
            after, window_start = await _send_frame(res, conn, subscription, after, window_start)
            due = max(due + subscription.interval_ms / 1000, time.monotonic())
        wake = min(due, renewed + LEASE_SECONDS / 3, started + MAX_STREAM_SECONDS)
        message = await conn.next_message(wake - time.monotonic())
        if message is None or conn.closed:
            continue
        subscription = _subscription(message, fleet)
        after = await store.start_id(res.redis, subscription.interval_ms)
        window_start = time.time() - subscription.interval_ms / 1000
        due = time.monotonic()


async def _first_subscription(conn: _Connection, fleet: str) -> Subscription | None:
    message = await conn.next_message(SUBSCRIBE_WITHIN)
    if message is None:
        raise Refusal(f"send a subscribe message within {SUBSCRIBE_WITHIN:g} s of connecting")
    if conn.closed:
        return None
    return _subscription(message, fleet)


def _subscription(message: Message, fleet: str) -> Subscription:
    text = message.get("text")
    if text is None:
        data = message.get("bytes") or b""
        if len(data) > MAX_MESSAGE_BYTES:
            raise _too_big()
        raise Refusal("send text frames of JSON; binary frames are not understood")
    if len(text) > MAX_MESSAGE_BYTES or len(text.encode()) > MAX_MESSAGE_BYTES:
        raise _too_big()
    return parse_subscribe(text, fleet)


def _too_big() -> Refusal:
    return Refusal(f"messages are limited to {MAX_MESSAGE_BYTES:,} bytes", CLOSE_TOO_BIG)


async def _send_frame(
    res: Resources,
    conn: _Connection,
    subscription: Subscription,
    after: str,
    window_start: float,
) -> tuple[str, float]:
    """Send the frame of the entries after ``after``; where the next window starts."""
    after, snapshots = await store.read_after(res.redis, res.settings.fleet, after)
    online = None
    if ONLINE in subscription.metrics:
        since = time.time() - res.settings.offline_after
        online = await store.online_count(res.redis, res.settings.fleet, since)
    now = time.time()
    window = max(now - window_start, 0.001)
    await conn.send_json(frame(subscription, snapshots, online, window, now))
    return after, now
