"""``/ws/metrics``: authentication, the subscribe protocol, frames and bounds.

Two ways in: the handler called directly as an ASGI app (a websocket scope and
receive/send queues, on this test's event loop with the control API's resources opened
on it), and the real server (pyvoy, TLS) with aiohttp's WebSocket client and with the
seed's JavaScript run by Node. Frames are checked against numbers computed here from the
heartbeat values that were published, not from what the handler read.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from control_api import metrics_ws
from control_api.asgi import Message, Scope
from control_api.event_stream import MAX_STREAMS_PER_CALLER
from control_api.resources import close_resources, open_resources
from fleetd.device.v1 import agent_pb2, agent_pb2_grpc
from fleetd.services import jwt
from fleetd.services.pki import CertificateAuthority
from fleetd.storage import redis_keys
from fleetd.storage.bearer_tokens import create_api_key
from gateway.live_metrics import LiveMetrics
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import device_channel, enrol_device

JS = Path(__file__).parent / "js"
FLEET = "default"

CPU_RPI = [12.5, 40.0, 33.0]
CPU_RPI_NEW = [80.0]
CPU_JETSON = [5.0, 7.5]
MEMORY_RPI = [50.0, 70.0]


def _row(device_type: str, version: str, metric: str, values: Sequence[float]) -> tuple[Any, ...]:
    return (None, device_type, version, metric, len(values), sum(values), min(values), max(values))


async def _publish_known_heartbeats(redis: aioredis.Redis) -> None:
    """Two gateway workers' seconds, as their heartbeat pipelines would fold them."""
    first, second = LiveMetrics(redis, FLEET), LiveMetrics(redis, FLEET)
    first.fold(
        [_row("rpi4", "1.0", "cpu_usage", CPU_RPI), _row("rpi4", "1.0", "memory_usage", MEMORY_RPI)]
    )
    second.fold(
        [
            _row("rpi4", "1.1", "cpu_percent", CPU_RPI_NEW),
            _row("jetson", "2.0", "cpu_usage", CPU_JETSON),
        ]
    )
    assert await first.publish()
    assert await second.publish()


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


# --- The handler as an ASGI app ------------------------------------------------------


class AsgiSocket:
    """One WebSocket connection to the handler, driven through ASGI queues."""

    def __init__(self, scope: Scope) -> None:
        self._incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: asyncio.Queue[Message] = asyncio.Queue()
        self.task = asyncio.create_task(
            metrics_ws.metrics_ws(scope, self._incoming.get, self._send)
        )
        self._incoming.put_nowait({"type": "websocket.connect"})

    async def _send(self, message: Message) -> None:
        await self.sent.put(message)

    def send_text(self, text: str) -> None:
        self._incoming.put_nowait({"type": "websocket.receive", "text": text})

    def subscribe(self, **fields: Any) -> None:
        self.send_text(json.dumps({"type": "subscribe", **fields}))

    async def next(self, within: float = 10.0) -> Message:
        async with asyncio.timeout(within):
            return await self.sent.get()

    async def accepted(self) -> Message:
        message = await self.next()
        assert message["type"] == "websocket.accept", message
        return message

    async def frame(self, within: float = 10.0) -> dict[str, Any]:
        message = await self.next(within)
        assert message["type"] == "websocket.send", message
        decoded: dict[str, Any] = json.loads(message["text"])
        return decoded

    async def refused(self) -> tuple[str, int, str]:
        """The error frame's message, and the close code and reason that followed it."""
        error = await self.frame()
        assert error["type"] == "error", error
        close = await self.next()
        assert close["type"] == "websocket.close", close
        await asyncio.wait_for(self.task, 5.0)
        return error["message"], close["code"], close["reason"]

    async def disconnect(self) -> None:
        self._incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 5.0)


def _scope(*, subprotocols: Sequence[str] = (), headers: dict[str, str] | None = None) -> Scope:
    return {
        "type": "websocket",
        "path": metrics_ws.PATH,
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
        "subprotocols": list(subprotocols),
        "client": ("127.0.0.1", 50000),
    }


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, with_api=False) as dep:
        await open_resources(dep.settings)
        try:
            yield dep
        finally:
            await close_resources()


def _bearer_protocols(token: str) -> list[str]:
    return [metrics_ws.SUBPROTOCOL, metrics_ws.BEARER_PREFIX + token]


def _jwt(dep: Deployment, role: str = "viewer") -> str:
    key = jwt.load_signing_key(dep.settings.paths.root)
    return jwt.issue(key, fleet=FLEET, subject="alice", role=role, ttl_seconds=60)


async def test_subprotocol_api_key_gets_frames_of_what_was_published(
    deployment: Deployment, redis: aioredis.Redis
) -> None:
    await _publish_known_heartbeats(redis)
    now = time.time()
    await redis.zadd(redis_keys.last_seen(FLEET), {"a": now, "b": now - 5, "gone": now - 3600})
    socket = AsgiSocket(_scope(subprotocols=_bearer_protocols(deployment.admin_api_key)))
    accept = await socket.accepted()
    assert accept["subprotocol"] == "fleetd.v1"  # never the token
    assert (b"x-request-id", accept["headers"][0][1]) in accept["headers"]
    socket.subscribe(
        metrics=["cpu_usage", "memory_usage", "device_online_count", "heartbeat_rate"],
        interval=5000,
    )
    frame = await socket.frame()
    every_cpu = CPU_RPI + CPU_RPI_NEW + CPU_JETSON
    assert frame["type"] == "metrics"
    assert frame["interval_ms"] == 5000
    assert frame["timestamp"].endswith("Z")
    metrics = frame["metrics"]
    assert metrics["cpu_usage"]["count"] == len(every_cpu)
    assert math.isclose(metrics["cpu_usage"]["value"], _mean(every_cpu))
    assert metrics["memory_usage"] == {"value": _mean(MEMORY_RPI), "count": 2}
    assert metrics["device_online_count"] == {"value": 2}
    assert metrics["heartbeat_rate"]["count"] == len(every_cpu)
    assert 0 < metrics["heartbeat_rate"]["value"] <= len(every_cpu) / 4.9
    await socket.disconnect()


async def test_the_next_frame_holds_only_what_came_since_the_last(
    deployment: Deployment, redis: aioredis.Redis
) -> None:
    await _publish_known_heartbeats(redis)
    socket = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    assert "subprotocol" not in await socket.accepted()
    socket.subscribe(metrics=["cpu_usage"], interval=1000, aggregation="MAX")
    first = await socket.frame()
    assert first["metrics"]["cpu_usage"] == {"value": 80.0, "count": 6}
    later = LiveMetrics(redis, FLEET)
    later.fold([_row("rpi4", "1.0", "cpu_usage", [61.0, 62.0])])
    await later.publish()
    second = await socket.frame()
    assert second["metrics"]["cpu_usage"] == {"value": 62.0, "count": 2}
    third = await socket.frame()
    assert third["metrics"]["cpu_usage"] == {"value": None, "count": 0}
    await socket.disconnect()


@pytest.mark.parametrize(
    ("labels", "aggregation", "expected"),
    [
        ({"type": "rpi4"}, "AVG", CPU_RPI + CPU_RPI_NEW),
        ({"type": "rpi4", "version": "1.0"}, "AVG", CPU_RPI),
        ({"version": "2.0"}, "AVG", CPU_JETSON),
        ({"fleet": FLEET}, "AVG", CPU_RPI + CPU_RPI_NEW + CPU_JETSON),
        ({"type": "rpi4"}, "MIN", CPU_RPI + CPU_RPI_NEW),
        ({"type": "rpi4"}, "COUNT", CPU_RPI + CPU_RPI_NEW),
        ({"type": "nothing-of-that-type"}, "AVG", []),
    ],
)
async def test_labels_and_aggregation_choose_the_heartbeats_and_the_number(
    deployment: Deployment,
    redis: aioredis.Redis,
    labels: dict[str, str],
    aggregation: str,
    expected: list[float],
) -> None:
    await _publish_known_heartbeats(redis)
    socket = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    await socket.accepted()
    socket.subscribe(metrics=["cpu_usage"], labels=labels, aggregation=aggregation)
    cpu = (await socket.frame())["metrics"]["cpu_usage"]
    assert cpu["count"] == len(expected)
    if not expected:
        assert cpu["value"] is None
    elif aggregation == "AVG":
        assert math.isclose(cpu["value"], _mean(expected))
    elif aggregation == "MIN":
        assert cpu["value"] == min(expected)
    else:
        assert cpu["value"] == len(expected)
    await socket.disconnect()


async def test_a_new_subscribe_replaces_the_old_one(
    deployment: Deployment, redis: aioredis.Redis
) -> None:
    await _publish_known_heartbeats(redis)
    socket = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    await socket.accepted()
    socket.subscribe(metrics=["cpu_usage"], interval=60000)
    assert set((await socket.frame())["metrics"]) == {"cpu_usage"}
    socket.subscribe(metrics=["memory_usage"], interval=2000)
    frame = await socket.frame(within=3.0)
    assert frame["interval_ms"] == 2000
    assert frame["metrics"] == {"memory_usage": {"value": _mean(MEMORY_RPI), "count": 2}}
    await socket.disconnect()


async def test_a_jwt_in_the_subprotocol_authenticates(deployment: Deployment) -> None:
    socket = AsgiSocket(_scope(subprotocols=_bearer_protocols(_jwt(deployment))))
    assert (await socket.accepted())["subprotocol"] == "fleetd.v1"
    socket.subscribe(metrics=["cpu_usage"])
    assert (await socket.frame())["metrics"]["cpu_usage"] == {"value": None, "count": 0}
    await socket.disconnect()


async def test_a_jwt_in_the_authorization_header_authenticates(deployment: Deployment) -> None:
    socket = AsgiSocket(_scope(headers={"authorization": f"Bearer {_jwt(deployment)}"}))
    await socket.accepted()
    socket.subscribe(metrics=["device_online_count"])
    assert (await socket.frame())["metrics"] == {"device_online_count": {"value": 0}}
    await socket.disconnect()


async def test_no_credential_is_refused_with_1008(deployment: Deployment) -> None:
    socket = AsgiSocket(_scope(subprotocols=["fleetd.v1"]))
    await socket.accepted()
    message, code, reason = await socket.refused()
    assert code == 1008
    assert message.startswith("authentication required: offer the subprotocols fleetd.v1")
    # The close reason is the message, cut to what a close frame holds.
    assert len(message.encode()) > 123
    assert reason == message[:123]


async def test_a_wrong_key_is_refused_with_1008(deployment: Deployment) -> None:
    socket = AsgiSocket(_scope(subprotocols=_bearer_protocols("fk_0123456789abcdef_" + "A" * 43)))
    await socket.accepted()
    message, code, _ = await socket.refused()
    assert (message, code) == ("invalid or revoked API key", 1008)


async def test_a_role_without_analytics_view_is_refused_with_1008(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    ca = CertificateAuthority.load(deployment.settings.paths, deployment.settings.fleet)
    await enrol_device(pool, ca, "rpi-ws")
    key = await create_api_key(pool, "device", "a device's key", device_id="rpi-ws")
    socket = AsgiSocket(_scope(headers={"x-api-key": key.token}))
    await socket.accepted()
    message, code, _ = await socket.refused()
    assert code == 1008
    assert message == "role device does not have permission analytics:view"


async def test_subprotocols_without_fleetd_v1_are_refused_before_the_upgrade(
    deployment: Deployment,
) -> None:
    socket = AsgiSocket(_scope(subprotocols=["fleetd.bearer." + deployment.admin_api_key]))
    close = await socket.next()
    assert close == {"type": "websocket.close", "code": 1008}
    await asyncio.wait_for(socket.task, 5.0)


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("not json", "messages must be JSON objects"),
        ("[1, 2]", "messages must be JSON objects"),
        ('{"type": "unsubscribe"}', "type: 'unsubscribe' is not a message type"),
        ('{"type": "subscribe"}', "metrics must be a non-empty list"),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage", 3]}',
            "metrics must be a list of metric names",
        ),
        (
            '{"type": "subscribe", "metrics": ["cpu_temp"]}',
            "metrics: unknown live metric(s) 'cpu_temp'",
        ),
        ('{"type": "subscribe", "metrics": ["device_count"]}', "'device_count' only per minute"),
        ('{"type": "subscribe", "metrics": ["cpu_usage"], "interval": 999}', "interval must be"),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage"], "interval": 60001}',
            "from 1,000 to 60,000",
        ),
        ('{"type": "subscribe", "metrics": ["cpu_usage"], "interval": 1500.5}', "whole number"),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage"], "interval": "5s"}',
            "interval must be a number",
        ),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage"], "aggregation": "P95"}',
            "percentiles are kept per minute",
        ),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage"], "labels": {"tag": "x"}}',
            "unknown label(s) tag",
        ),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage"], "labels": {"fleet": "other"}}',
            "serves fleet 'default'",
        ),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage"], "labels": {"type": 4}}',
            "labels.type must be a string",
        ),
        (
            '{"type": "subscribe", "metrics": ["device_online_count"], "labels": {"type": "x"}}',
            "whole fleet only",
        ),
        (
            '{"type": "subscribe", "metrics": ["cpu_usage"], "filter": "x"}',
            "unknown field(s) filter",
        ),
    ],
)
async def test_a_bad_subscribe_is_answered_with_an_error_then_1008(
    deployment: Deployment, message: str, says: str
) -> None:
    socket = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    await socket.accepted()
    socket.send_text(message)
    error, code, _ = await socket.refused()
    assert code == 1008
    assert says in error


async def test_a_message_over_the_size_limit_is_closed_with_1009(deployment: Deployment) -> None:
    socket = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    await socket.accepted()
    socket.send_text(json.dumps({"type": "subscribe", "metrics": ["cpu_usage"] * 1000}))
    error, code, _ = await socket.refused()
    assert (error, code) == ("messages are limited to 4,096 bytes", 1009)


async def test_a_caller_holds_at_most_five_streams(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    key = await create_api_key(pool, "operator", "dashboards")
    open_sockets = []
    for _ in range(MAX_STREAMS_PER_CALLER):
        socket = AsgiSocket(_scope(headers={"x-api-key": key.token}))
        await socket.accepted()
        socket.subscribe(metrics=["cpu_usage"])
        await socket.frame()
        open_sockets.append(socket)
    one_too_many = AsgiSocket(_scope(headers={"x-api-key": key.token}))
    await one_too_many.accepted()
    one_too_many.subscribe(metrics=["cpu_usage"])
    message, code, _ = await one_too_many.refused()
    assert code == 1013
    assert message.startswith("at most 5 concurrent streams")
    # Another caller is not affected; a closed stream frees its slot.
    other = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    await other.accepted()
    other.subscribe(metrics=["cpu_usage"])
    await other.frame()
    await open_sockets.pop().disconnect()
    again = AsgiSocket(_scope(headers={"x-api-key": key.token}))
    await again.accepted()
    again.subscribe(metrics=["cpu_usage"])
    await again.frame()
    for socket in [*open_sockets, other, again]:
        await socket.disconnect()


async def test_a_client_that_does_not_take_frames_is_closed(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_ws, "SEND_TIMEOUT", 0.2)
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    stuck = asyncio.Event()

    async def send(message: Message) -> None:
        if message["type"] == "websocket.send" and '"metrics"' in message["text"]:
            await stuck.wait()  # a client whose TCP window stays full
        sent.append(message)

    incoming.put_nowait({"type": "websocket.connect"})
    incoming.put_nowait(
        {"type": "websocket.receive", "text": '{"type": "subscribe", "metrics": ["cpu_usage"]}'}
    )
    scope = _scope(headers={"x-api-key": deployment.admin_api_key})
    await asyncio.wait_for(metrics_ws.metrics_ws(scope, incoming.get, send), 5.0)
    assert sent[0]["type"] == "websocket.accept"
    assert sent[-1]["type"] == "websocket.close"
    assert sent[-1]["code"] == 1008
    assert "did not take a frame within 0.2 s" in sent[-1]["reason"]


async def test_a_connection_that_never_subscribes_is_closed(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_ws, "SUBSCRIBE_WITHIN", 0.2)
    socket = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    await socket.accepted()
    message, code, _ = await socket.refused()
    assert (message, code) == ("send a subscribe message within 0.2 s of connecting", 1008)


async def test_a_connection_ends_after_the_stream_time_limit(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_ws, "MAX_STREAM_SECONDS", 1.5)
    socket = AsgiSocket(_scope(headers={"x-api-key": deployment.admin_api_key}))
    await socket.accepted()
    socket.subscribe(metrics=["cpu_usage"], interval=1000)
    await socket.frame()
    await socket.frame()
    close = await socket.next()
    assert close["type"] == "websocket.close"
    assert (close["code"], close["reason"]) == (1000, "connections last at most 1.5 s; reconnect")


async def test_plain_http_is_told_to_upgrade(deployment: Deployment) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await metrics_ws.metrics_ws({"type": "http", "path": metrics_ws.PATH}, receive, send)
    assert sent[0]["status"] == 426


# --- The real server -------------------------------------------------------------------


@pytest.fixture
async def served(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


def _ws_url(dep: Deployment) -> str:
    return f"wss://127.0.0.1:{dep.api_port}{metrics_ws.PATH}"


def _tls(dep: Deployment) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=dep.ca_pem.decode())


async def _first_frame(
    dep: Deployment, *, protocols: Sequence[str] = (), headers: dict[str, str] | None = None
) -> tuple[str | None, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            _ws_url(dep), ssl=_tls(dep), protocols=tuple(protocols), headers=headers
        ) as ws,
    ):
        await ws.send_json(
            {"type": "subscribe", "metrics": ["cpu_usage", "memory_usage"], "interval": 5000}
        )
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        frame: dict[str, Any] = json.loads(message.data)
        return ws.protocol, frame


@pytest.mark.slow
async def test_served_subprotocol_bearer_gets_the_published_values(
    served: Deployment, redis: aioredis.Redis
) -> None:
    await _publish_known_heartbeats(redis)
    protocol, frame = await _first_frame(served, protocols=_bearer_protocols(served.admin_api_key))
    assert protocol == "fleetd.v1"
    every_cpu = CPU_RPI + CPU_RPI_NEW + CPU_JETSON
    assert frame["metrics"]["cpu_usage"]["count"] == len(every_cpu)
    assert math.isclose(frame["metrics"]["cpu_usage"]["value"], _mean(every_cpu))
    assert frame["metrics"]["memory_usage"] == {"value": _mean(MEMORY_RPI), "count": 2}


@pytest.mark.slow
async def test_served_api_key_header_authenticates(served: Deployment) -> None:
    protocol, frame = await _first_frame(served, headers={"X-API-Key": served.admin_api_key})
    assert protocol is None
    assert frame["metrics"]["cpu_usage"] == {"value": None, "count": 0}


@pytest.mark.slow
async def test_served_refusal_without_credentials_is_a_1008_close(served: Deployment) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(_ws_url(served), ssl=_tls(served), protocols=("fleetd.v1",)) as ws,
    ):
        error = await ws.receive(timeout=10)
        assert json.loads(error.data)["message"].startswith("authentication required")
        close = await ws.receive(timeout=10)
        assert close.type == aiohttp.WSMsgType.CLOSE
        assert close.data == 1008
        assert isinstance(close.extra, str)
        assert close.extra.startswith("authentication required")


@pytest.mark.slow
async def test_served_heartbeats_through_the_gateway_reach_the_socket(
    served: Deployment, pool: asyncpg.Pool
) -> None:
    """End to end, once the gateway's heartbeat pipeline feeds ``LiveMetrics``: a device's
    heartbeat through the device API is in a frame within a few seconds."""
    ca = CertificateAuthority.load(served.settings.paths, served.settings.fleet)
    creds = await enrol_device(pool, ca, "ws-live-1")
    stub = agent_pb2_grpc.AgentServiceStub(
        device_channel(served.gateway_target, served.ca_pem, creds)
    )
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            _ws_url(served),
            ssl=_tls(served),
            protocols=tuple(_bearer_protocols(served.admin_api_key)),
        ) as ws,
    ):
        await ws.send_json(
            {"type": "subscribe", "metrics": ["cpu_usage"], "interval": 1000, "aggregation": "MAX"}
        )
        await ws.receive(timeout=10)
        stats = agent_pb2.DeviceStats(cpu_percent=77.25)
        await stub.Heartbeat(agent_pb2.HeartbeatRequest(stats=stats), timeout=5)
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and 77.25 not in seen:
            frame = json.loads((await ws.receive(timeout=10)).data)
            seen.append(frame["metrics"]["cpu_usage"]["value"])
        assert 77.25 in seen


@pytest.mark.slow
async def test_the_seeds_javascript_runs_with_node(
    served: Deployment, redis: aioredis.Redis
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (20 or later, for its built-in WebSocket) is required by this test")
    await _publish_known_heartbeats(redis)
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(served.settings.paths.ca_cert),
        "FLEETD_WS_URL": _ws_url(served),
        "FLEETD_TOKEN": served.admin_api_key,
    }
    process = await asyncio.create_subprocess_exec(
        node,
        "--experimental-websocket",
        "--no-warnings",
        str(JS / "seed_ws_metrics.mjs"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    frame = json.loads(stdout)
    assert frame["type"] == "metrics"
    every_cpu = CPU_RPI + CPU_RPI_NEW + CPU_JETSON
    assert math.isclose(frame["metrics"]["cpu_usage"]["value"], _mean(every_cpu))
    assert frame["metrics"]["memory_usage"] == {"value": _mean(MEMORY_RPI), "count": 2}
