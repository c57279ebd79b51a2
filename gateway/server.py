"""The gateway process: grpc.aio on uvloop, mutual TLS against the fleet CA.

A client without a certificate from the fleet CA fails the TLS handshake; one whose
certificate verifies is then identified by gateway.device_auth. Several processes may bind
the same port (SO_REUSEPORT) and share one Redis and PostgreSQL. SIGTERM drains: health
goes NOT_SERVING, in-flight calls get a grace period, pending heartbeats are flushed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import _async as health_aio  # public as health.aio; absent from stubs
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetd.device.v1 import agent_pb2
from fleetd.services.analytics import roles as analytics_roles
from fleetd.settings import Settings
from fleetd.storage import redis_client
from fleetd.storage.blobs import FilesystemBlobStore
from fleetd.storage.devices import CertificateStanding, certificate_standings
from fleetd.storage.postgres import connect
from fleetd.storage.types import Pool, Redis
from gateway.aborts import serve_guarded
from gateway.batching import BatchedLookup
from gateway.desired_state import DesiredStateLookup
from gateway.device_auth import DeviceAuthenticator
from gateway.heartbeats import HeartbeatPipeline
from gateway.live_metrics import LiveMetrics
from gateway.liveness import LivenessSweeper
from gateway.log_uploads import LogUploads
from gateway.pushes import PushHub
from gateway.renewals import CertificateIssuer
from gateway.service import AgentService
from gateway.serving_status import StoreHealth
from gateway.status_reports import StatusReports
from gateway.verified import VerifiedRevisions

log = logging.getLogger(__name__)

SERVICE_NAME = "fleetd.device.v1.AgentService"
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_CONCURRENT_CALLS = 20_000
PENDING_CALLS_SOFT = 10_000
PENDING_CALLS_HARD = 20_000
"""Calls grpc-core holds while the Python server has not yet taken them (grpc.aio takes
one at a time, from the event loop). Past the soft limit grpc-core starts dropping new
calls at random, all of them past the hard limit, answering CANCELLED. grpc's defaults
(1,000 / 3,000) shed a reconnect storm's burst (10,000 devices back within seconds)
although the loop drains it within seconds; these let it queue (bounded, and well under
the agent's 15 s call timeout at the loop's few thousand calls a second)."""
REDIS_CONNECTIONS = 32
DRAIN_GRACE = 5.0
"""Seconds in-flight calls get at SIGTERM. Heartbeats take milliseconds; open heartbeat
streams are ended after it and their agents reconnect (to another process or node)."""


@dataclass
class Gateway:
    """A running gateway: its server, its storage handles, its pipeline."""

    server: grpc.aio.Server
    port: int
    pool: Pool
    redis: Redis
    pipeline: HeartbeatPipeline
    live: LiveMetrics
    health: health_aio.HealthServicer
    sweeper: LivenessSweeper
    stores: StoreHealth
    desired: DesiredStateLookup
    pushes: PushHub
    service: AgentService

    async def stop(self, grace: float = 10.0) -> None:
        """Drain within a bounded time: calls, then pending heartbeats, then storage.

        Every step has a deadline, so a SIGTERM'd gateway always exits: a step that
        overruns is logged (with what it was) and the drain goes on."""
        step = max(grace, 1.0)
        await _bounded(self.stores.close(), step, "store monitor")
        await _bounded(self.pushes.close(), step, "push subscription")
        await _bounded(self.health.enter_graceful_shutdown(), step, "health")
        # Stop taking calls first, then end the open heartbeat streams with UNAVAILABLE
        # (agents retry that) instead of letting the grace period run out and cancel them.
        stopping = asyncio.ensure_future(self.server.stop(grace))
        await asyncio.sleep(0)
        ended = self.service.end_streams()
        if ended:
            log.info("drain: ending %d heartbeat streams", ended)
        await _bounded(stopping, grace + step, "gRPC server")
        await _bounded(self.sweeper.close(), step + 5.0, "sweeper")
        if not await _bounded(self.pipeline.close(), grace, "heartbeat flush"):
            log.error("pending heartbeats were not flushed within %.1fs", grace)
        await _bounded(self.live.stop(), step, "live metrics")
        await _bounded(analytics_roles.stop(), step, "analytics roles")
        await _bounded(redis_client.close(self.redis), step, "Redis client")
        if not await _bounded(self.pool.close(), grace, "PostgreSQL pool"):
            log.error("PostgreSQL connections did not close within %.1fs; terminating", grace)
            self.pool.terminate()


async def _bounded(step: Awaitable[object], seconds: float, what: str) -> bool:
    """Await ``step`` for at most ``seconds``; False (logged) if it overran."""
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.error("gateway stop: %s did not finish within %.1fs; going on", what, seconds)
        return False
    return True


def server_credentials(settings: Settings) -> grpc.ServerCredentials:
    paths = settings.paths
    return grpc.ssl_server_credentials(
        [(paths.server_key.read_bytes(), paths.server_cert.read_bytes())],
        root_certificates=paths.ca_cert.read_bytes(),
        require_client_auth=True,
    )


async def start_gateway(settings: Settings, *, port: int | None = None) -> Gateway:
    """Start serving on settings' gateway address (or ``port``; 0 picks a free one)."""
    if not settings.database_url or not settings.redis_url:
        raise ValueError("the gateway needs FLEETD_DATABASE_URL and FLEETD_REDIS_URL")
    pool = await connect(
        settings.database_url, min_size=2, max_size=10, connect_timeout=5.0, command_timeout=10.0
    )
    # A blocking pool: past max_connections a command waits (up to 5 s) for a connection
    # instead of failing; the hot paths batch, so a few connections carry the load.
    redis = redis_client.connect_bounded(
        settings.redis_url,
        max_connections=REDIS_CONNECTIONS,
        wait=5.0,
        socket_timeout=5.0,
        socket_connect_timeout=2.0,
    )
    # Samples and rollup partials need their partitions; a deployment running only
    # gateways for a while must still have them (docs/analytics.md 2.5).
    await analytics_roles.prepare(pool, settings)
    pipeline = HeartbeatPipeline(
        settings.fleet,
        redis,
        pool,
        redis_interval=settings.redis_flush_interval,
        postgres_interval=settings.postgres_flush_interval,
        sample_interval=settings.sample_interval,
        rollup_flush_interval=settings.rollup_flush_interval,
    )

    standings: BatchedLookup[tuple[str, str], CertificateStanding] = BatchedLookup(
        functools.partial(certificate_standings, pool)
    )

    async def standing(serial: str, fingerprint: str) -> CertificateStanding | None:
        return await standings.get((serial, fingerprint))

    authenticator = DeviceAuthenticator(settings.fleet, standing, pipeline.group_id)
    desired = DesiredStateLookup(redis, pool)
    pushes = PushHub(redis, on_revoked=authenticator.forget_devices)
    verified = VerifiedRevisions(lambda: pushes.subscribed_at)
    pushes.on_changed = verified.invalidate
    server = grpc.aio.server(
        # Past this many calls in flight grpc answers RESOURCE_EXHAUSTED itself: the
        # bound on the work one process queues.
        maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.server.max_pending_requests", PENDING_CALLS_SOFT),
            ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS_HARD),
        ],
    )
    service = AgentService(
        pool,
        authenticator,
        pipeline,
        desired,
        pushes,
        verified,
        heartbeat_interval=settings.heartbeat_interval,
        device_limit=settings.gateway_device_limit(),
        status_reports=StatusReports(pool),
        log_uploads=LogUploads(pool, redis, FilesystemBlobStore(settings.paths.blobs)),
        issuer=CertificateIssuer(settings),
    )
    # Every method guarded (gateway.aborts): requests decoded and checked before it runs,
    # its errors answered with honest statuses.
    serve_guarded(server, agent_pb2.DESCRIPTOR.services_by_name["AgentService"], service)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    host = settings.gateway_host
    bound = server.add_secure_port(
        f"[{host}]:{settings.gateway_port if port is None else port}"
        if ":" in host
        else f"{host}:{settings.gateway_port if port is None else port}",
        server_credentials(settings),
    )
    await server.start()
    pipeline.start()
    analytics_roles.start(pool, settings, roles=("partition_maintenance",))
    live = LiveMetrics(redis, settings.fleet)
    pipeline.on_flush = lambda flush: live.fold(flush.rollups)
    live.start()

    async def report(serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING
        if not serving:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, status)

    stores = StoreHealth(redis, pool, report)
    await report(await stores.check())
    stores.start()
    sweeper = LivenessSweeper(settings.fleet, redis, pool, offline_after=settings.offline_after)
    sweeper.start()
    pushes.start()
    log.info("gateway serving on %s:%d", host, bound)
    return Gateway(
        server,
        bound,
        pool,
        redis,
        pipeline,
        live,
        health_servicer,
        sweeper,
        stores,
        desired,
        pushes,
        service,
    )


async def serve(settings: Settings) -> None:
    gateway = await start_gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("gateway draining")
    await gateway.stop(DRAIN_GRACE)


def main() -> None:
    import uvloop

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvloop.run(serve(Settings.from_env()))
