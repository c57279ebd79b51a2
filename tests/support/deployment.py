"""A real deployment for tests: PKI, migrated database, Redis, the gateway (in this
process, on this loop) and the control API (pyvoy, a child process), on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pyvoy import PyvoyServer

from control_api.server import build_server
from fleetd.settings import Settings
from fleetd_cli.initialize import initialize
from gateway.server import Gateway, start_gateway


@dataclass
class Deployment:
    settings: Settings
    admin_api_key: str
    gateway: Gateway
    api: PyvoyServer | None

    @property
    def ca_pem(self) -> bytes:
        return self.settings.paths.ca_cert.read_bytes()

    @property
    def gateway_target(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    @property
    def api_port(self) -> int:
        assert self.api is not None, "deployment started without the control API"
        return self.api.listener_port

    @property
    def api_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"


async def _stop_api(api: PyvoyServer, within: float = 20.0) -> None:
    """Stop the control API; kill Envoy if it does not go (asyncio can miss the exit of a
    child reaped elsewhere, and then pyvoy's stop would wait for ever)."""
    try:
        async with asyncio.timeout(within):
            await api.stop()
    except TimeoutError:
        process = api._process  # pyvoy exposes no kill
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()


@asynccontextmanager
async def running_deployment(
    database_url: str,
    redis_url: str,
    *,
    with_api: bool = True,
    heartbeat_interval: float = 1.0,
    **overrides: Any,
) -> AsyncIterator[Deployment]:
    """A deployment on free ports; ``overrides`` are further ``Settings`` fields."""
    data_dir = Path(tempfile.mkdtemp(prefix="fleetd-dep-", dir="/tmp"))
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        heartbeat_interval=heartbeat_interval,
        redis_flush_interval=0.02,
        postgres_flush_interval=0.1,
        **overrides,
    )
    init = await initialize(settings)
    gateway = await start_gateway(settings, port=0)
    settings = replace(settings, gateway_port=gateway.port)
    api: PyvoyServer | None = None
    deployment: Deployment | None = None
    try:
        if with_api:
            api = build_server(settings, port=0)
            await api.start()
            settings = replace(settings, api_port=api.listener_port)
        deployment = Deployment(settings, init.admin_api_key, gateway, api)
        yield deployment
    finally:
        # A test may have restarted the API (restart_api): stop the current one.
        current_api = deployment.api if deployment is not None else api
        if current_api is not None:
            await _stop_api(current_api)
        # A test may have replaced the gateway (a restart): stop the current one.
        await (deployment.gateway if deployment else gateway).stop(grace=1.0)


async def restart_api(deployment: Deployment) -> None:
    """Stop the control API and start a new one on a new port (same settings, storage and
    data directory): what a crash and restart of the API process looks like."""
    if deployment.api is not None:
        await _stop_api(deployment.api)
    api = build_server(deployment.settings, port=0)
    await api.start()
    deployment.api = api
    deployment.settings = replace(deployment.settings, api_port=api.listener_port)
