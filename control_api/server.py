"""Running the control API: pyvoy (Envoy) over TLS, client certificates optional.

When a client presents a certificate, Envoy verifies it against the fleet CA and passes it
to the app in ``x-forwarded-client-cert``, after removing any such header the client sent
(``SANITIZE_SET``); the app trusts that header only when started by this launcher
(``FLEETD_TRUST_XFCC=1``), never behind a proxy it does not control.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from pyvoy import PyvoyServer

from fleetd.settings import Settings

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
TRUST_XFCC_ENV = "FLEETD_TRUST_XFCC"


class ApiServer(PyvoyServer):
    """PyvoyServer that forwards the verified client certificate to the app."""

    def get_envoy_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_envoy_config()
        for listener in config["static_resources"]["listeners"]:
            for chain in listener.get("filter_chains", []):
                for network_filter in chain["filters"]:
                    if network_filter["name"] == "envoy.filters.network.http_connection_manager":
                        typed = network_filter["typed_config"]
                        typed["forward_client_cert_details"] = "SANITIZE_SET"
                        typed["set_current_client_cert_details"] = {
                            "subject": True,
                            "cert": True,
                            "chain": False,
                            "dns": True,
                            "uri": True,
                        }
        return config


def build_server(settings: Settings, *, port: int | None = None, quiet: bool = False) -> ApiServer:
    paths = settings.paths
    env = settings.to_env()
    env[TRUST_XFCC_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *sys.path])
    return ApiServer(
        "control_api.app:app",
        address=settings.api_host,
        port=settings.api_port if port is None else port,
        tls_key=paths.server_key,
        tls_cert=paths.server_cert,
        tls_ca_cert=paths.ca_cert,
        tls_require_client_certificate=False,
        tls_enable_http3=False,
        lifespan=True,
        websockets=True,
        env=env,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=None,
    )


async def serve(settings: Settings) -> int:
    server = build_server(settings)
    await server.start()
    log.info("control API listening on %s:%d", settings.api_host, server.listener_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(server.wait())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        stopper.cancel()
        code = waiter.result()
        log.error("the control API server exited with status %s", code)
        return 1
    waiter.cancel()
    await server.stop()
    return 0


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(asyncio.run(serve(Settings.from_env())))
