"""AnalyticsService: each RPC in its own module, this class only routes.

GetMetrics: control_api/analytics_metrics.py; GetDeviceHealth: control_api/analytics_health.py;
ExportData: control_api/analytics_export.py (the file itself is served by
control_api/exports_http.py). Permissions (analytics:view, analytics:export) are checked by
the AuthInterceptor before a handler runs (control_api/permissions.py).
"""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from control_api import analytics_export, analytics_health, analytics_metrics
from fleetd.v1 import analytics_pb2
from fleetd.v1.analytics_connect import AnalyticsService


class AnalyticsServiceImpl(AnalyticsService):
    async def get_metrics(
        self, request: analytics_pb2.GetMetricsRequest, ctx: RequestContext[Any, Any]
    ) -> analytics_pb2.GetMetricsResponse:
        return await analytics_metrics.get_metrics(request)

    async def get_device_health(
        self, request: analytics_pb2.GetDeviceHealthRequest, ctx: RequestContext[Any, Any]
    ) -> analytics_pb2.GetDeviceHealthResponse:
        return await analytics_health.get_device_health(request)

    async def export_data(
        self, request: analytics_pb2.ExportDataRequest, ctx: RequestContext[Any, Any]
    ) -> analytics_pb2.ExportDataResponse:
        return await analytics_export.export_data(request)
