"""The operator API as one ASGI application, built at import time from ``FLEETD_*``.

Served by pyvoy (see fleetd_cli.supervisor.api_command): Connect JSON, gRPC and gRPC-Web on
one TLS port, plus reflection (v1 and v1alpha), ``grpc.health.v1``, ``/healthz`` and the
TUF repository under ``/tuf/`` (control_api/tuf_files.py). Each event loop's start-up
also starts the background roles, each in fleetd/services beside what it runs: the TUF
timestamp refresher (tuf_repo/refresher.py), the rollout engine (rollout/engine.py; one
active across replicas), the blob collector (blob_collection.py; one round at a time
across replicas) and the analytics roles (analytics/roles.py: partitions, rollup
compactor, device downsampler, census; partitions are made before serving) and the
export worker (analytics/export_jobs.py, claim-driven, every replica); its shutdown stops
them. Besides RPCs it serves ``/ws/metrics`` (control_api/metrics_ws.py) and export
downloads under ``/exports/`` (control_api/exports_http.py, signed URLs).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from connectrpc.interceptor import Interceptor
from connectrpc.server import ConnectASGIApplication

from control_api import exports_http, grpc_health, metrics_ws, tuf_files
from control_api.analytics import AnalyticsServiceImpl
from control_api.asgi import Receive, Router, Scope, Send, send_text
from control_api.auth import AuditStart, AuthInterceptor
from control_api.binaries import MAX_MESSAGE_BYTES, BinaryServiceImpl
from control_api.devices import DeviceServiceImpl
from control_api.fieldmask_compat import FieldMaskCompat
from control_api.reflection import reflection_apps
from control_api.request_codecs import CODECS
from control_api.resources import close_resources, open_resources
from control_api.status_codes import SeedStatusCodes
from control_api.updates import UpdateServiceImpl
from fleetd.domain import device_health
from fleetd.services import blob_collection
from fleetd.services.analytics import export_jobs
from fleetd.services.analytics import roles as analytics_roles
from fleetd.services.rollout import engine as rollout_engine
from fleetd.services.tuf_repo import refresher as tuf_refresher
from fleetd.settings import ConfigError, Settings
from fleetd.v1 import analytics_pb2, binary_pb2, device_pb2, update_pb2
from fleetd.v1.analytics_connect import AnalyticsServiceASGIApplication
from fleetd.v1.binary_connect import BinaryServiceASGIApplication
from fleetd.v1.device_connect import DeviceServiceASGIApplication
from fleetd.v1.update_connect import UpdateServiceASGIApplication

log = logging.getLogger(__name__)


def _quiet_pyvoy_receive_noise(loop: asyncio.AbstractEventLoop) -> None:
    """pyvoy 1.3 logs an InvalidStateError from RecvFutureExecutor once per gRPC call (a
    receive() future cancelled by connectrpc's disconnect watcher). Harmless; drop it."""

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.InvalidStateError) and (
            "RecvFutureExecutor" in repr(context.get("handle"))
        ):
            return
        lp.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
    await send_text(send, 200, '{"status": "ok"}\n', "application/json")


def create_app(settings: Settings | None = None) -> SeedStatusCodes:
    settings = settings or Settings.from_env()
    if (
        settings.min_agent_version
        and device_health.parse_version(settings.min_agent_version) is None
    ):
        raise ConfigError(
            f"FLEETD_MIN_AGENT_VERSION={settings.min_agent_version!r}: use a version such as 1.4.0"
        )
    # Every service alike: the caller is authenticated before its body is read; the body
    # is decoded and checked (control_api.request_codecs) before the audit log records
    # the call's start (AuditStart) and its handler runs.
    interceptors: list[Interceptor] = [AuthInterceptor(), AuditStart()]
    services: list[ConnectASGIApplication[Any]] = [
        DeviceServiceASGIApplication(DeviceServiceImpl(), interceptors=interceptors, codecs=CODECS),
        UpdateServiceASGIApplication(UpdateServiceImpl(), interceptors=interceptors, codecs=CODECS),
        AnalyticsServiceASGIApplication(
            AnalyticsServiceImpl(), interceptors=interceptors, codecs=CODECS
        ),
        BinaryServiceASGIApplication(
            BinaryServiceImpl(),
            interceptors=interceptors,
            codecs=CODECS,
            read_max_bytes=MAX_MESSAGE_BYTES,
        ),
    ]
    served = [s.path.lstrip("/") for s in services]
    health_service = grpc_health.HealthService(served)
    reflection, reflection_alpha = reflection_apps(
        [
            device_pb2.DESCRIPTOR,
            update_pb2.DESCRIPTOR,
            analytics_pb2.DESCRIPTOR,
            binary_pb2.DESCRIPTOR,
            grpc_health.DESCRIPTOR,
        ]
    )
    connect_apps: list[Any] = [
        *services,
        grpc_health.HealthASGIApplication(health_service),
        reflection,
        reflection_alpha,
    ]

    async def startup() -> None:
        _quiet_pyvoy_receive_noise(asyncio.get_running_loop())
        res = await open_resources(settings)
        await analytics_roles.prepare(res.pool, settings)
        analytics_roles.start(res.pool, settings)
        export_jobs.start(res.pool, settings, res.redis)
        tuf_refresher.start(tuf_files.repository())
        rollout_engine.start(
            res.pool,
            res.redis,
            database_url=settings.database_url or "",
            fleet=settings.fleet,
            tick=settings.rollout_tick,
            heartbeat_interval=settings.heartbeat_interval,
            offline_after=settings.offline_after,
            tuf=tuf_files.repository(),
        )
        blob_collection.start(
            res.pool,
            settings.paths.blobs,
            grace_period=settings.blob_grace_period,
            interval=settings.blob_collect_interval,
        )

    async def shutdown() -> None:
        health_service.set_all(grpc_health.NOT_SERVING)
        await rollout_engine.stop()
        await tuf_refresher.stop()
        await blob_collection.stop()
        await analytics_roles.stop()
        await export_jobs.stop()
        await close_resources()

    router = Router(
        exact={"/healthz": healthz, metrics_ws.PATH: metrics_ws.metrics_ws},
        prefixes={
            tuf_files.PREFIX: tuf_files.TufFiles(),
            exports_http.PREFIX: exports_http.ExportDownloads(),
            **{f"{a.path}/": a for a in connect_apps},
        },
        startup=[startup],
        shutdown=[shutdown],
    )
    return SeedStatusCodes(FieldMaskCompat(router))


app = create_app()
