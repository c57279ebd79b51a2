"""``fleetd.Client``: the seed's Python client, over connectrpc (Connect protocol, HTTPS).

    import fleetd
    client = fleetd.Client(endpoint="https://127.0.0.1:8443", api_key="fk_...")
    for device in client.device.list(page_size=10).devices:
        print(device.id, device.name)

TLS trusts ``ca_cert`` (PEM path or bytes), else ``$FLEETD_CA_CERT``, else the system
store. Keyword arguments of each call are the request message's fields (timestamps and
durations may be given as ``datetime`` / ``timedelta``, enums by name):

    client.analytics.get_metrics(metric_names=["cpu_usage"], interval=timedelta(hours=1))
    export = client.analytics.export_data(format="CSV", data_type="DEVICE_INVENTORY")
    client.analytics.download_export(export.export_url, "inventory.csv")
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from pyqwest import SyncClient, SyncHTTPTransport

from fleetd.export_download import Progress, download_export
from fleetd.v1 import analytics_pb2, device_pb2
from fleetd.v1.analytics_connect import AnalyticsServiceClientSync
from fleetd.v1.device_connect import DeviceServiceClientSync


def _ca_bytes(ca_cert: str | Path | bytes | None) -> bytes | None:
    if isinstance(ca_cert, bytes):
        return ca_cert
    path = ca_cert or os.environ.get("FLEETD_CA_CERT")
    return Path(path).read_bytes() if path else None


class DeviceAPI:
    """``fleetd.v1.DeviceService`` with keyword-argument requests."""

    def __init__(self, client: DeviceServiceClientSync, headers: dict[str, str]) -> None:
        self._client = client
        self._headers = headers

    def register(self, **fields: Any) -> device_pb2.RegisterDeviceResponse:
        return self._client.register_device(
            device_pb2.RegisterDeviceRequest(**fields), headers=self._headers
        )

    def list(self, **fields: Any) -> device_pb2.ListDevicesResponse:
        return self._client.list_devices(
            device_pb2.ListDevicesRequest(**fields), headers=self._headers
        )

    def get(self, device_id: str, **fields: Any) -> device_pb2.GetDeviceResponse:
        return self._client.get_device(
            device_pb2.GetDeviceRequest(device_id=device_id, **fields), headers=self._headers
        )

    def update(self, **fields: Any) -> device_pb2.UpdateDeviceResponse:
        return self._client.update_device(
            device_pb2.UpdateDeviceRequest(**fields), headers=self._headers
        )

    def delete(self, device_id: str, *, force: bool = False) -> device_pb2.DeleteDeviceResponse:
        return self._client.delete_device(
            device_pb2.DeleteDeviceRequest(device_id=device_id, force=force),
            headers=self._headers,
        )


class AnalyticsAPI:
    """``fleetd.v1.AnalyticsService`` with keyword-argument requests, and the download of
    a finished export."""

    def __init__(
        self, client: AnalyticsServiceClientSync, headers: dict[str, str], ca: bytes | None
    ) -> None:
        self._client = client
        self._headers = headers
        self._ca = ca

    def get_metrics(self, **fields: Any) -> analytics_pb2.GetMetricsResponse:
        return self._client.get_metrics(
            analytics_pb2.GetMetricsRequest(**fields), headers=self._headers
        )

    def get_device_health(self, **fields: Any) -> analytics_pb2.GetDeviceHealthResponse:
        return self._client.get_device_health(
            analytics_pb2.GetDeviceHealthRequest(**fields), headers=self._headers
        )

    def export_data(self, **fields: Any) -> analytics_pb2.ExportDataResponse:
        return self._client.export_data(
            analytics_pb2.ExportDataRequest(**fields), headers=self._headers
        )

    def download_export(
        self,
        export_url: str,
        destination: str | Path,
        *,
        progress: Progress | None = None,
        timeout: float = 3600.0,
    ) -> Path:
        """Wait for the export to be ready, then download it to ``destination``, resuming
        a partial file with an HTTP Range request; return the path. The signed URL is the
        credential: no API key is sent."""
        return download_export(
            export_url, Path(destination), ca=self._ca, progress=progress, timeout=timeout
        )


class Client:
    """A synchronous fleetd operator API client."""

    def __init__(
        self,
        endpoint: str,
        api_key: str | None = None,
        *,
        ca_cert: str | Path | bytes | None = None,
        timeout: float = 30.0,
    ) -> None:
        ca = _ca_bytes(ca_cert)
        self._transport = SyncHTTPTransport(
            tls_ca_cert=ca, tls_include_system_certs=ca is None, timeout=timeout
        )
        http = SyncClient(self._transport)
        headers = {"x-api-key": api_key} if api_key else {}
        base = endpoint.rstrip("/")
        self.device = DeviceAPI(DeviceServiceClientSync(base, http_client=http), headers)
        self.analytics = AnalyticsAPI(
            AnalyticsServiceClientSync(base, http_client=http), headers, ca
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
