"""``AnalyticsService.GetDeviceHealth``: the health of many devices at once.

Selection: ``device_ids`` (at most ``MAX_DEVICE_IDS``), ``device_filter`` (the ListDevices
grammar, compiled by core_ext), both (the listed devices that match the filter), or
neither (the whole fleet); offboarded devices never count. The summary counts every
selected device in one SQL pass; the map holds the ``MAX_ENTRIES`` worst of them (worst
status first, then by device id), each evaluated as GetDevice's include_health is. Both
are read in one REPEATABLE READ transaction, so the map and the counts describe the same
instant. Rules and thresholds: ``fleetd.domain.device_health``.
"""

from __future__ import annotations

import datetime as dt

from connectrpc.code import Code
from connectrpc.errors import ConnectError

import core_ext
from control_api.errors import invalid
from control_api.resources import resources
from fleetd.domain import device_fields, device_health
from fleetd.storage.analytics import health as health_store
from fleetd.v1 import analytics_pb2

MAX_DEVICE_IDS = 1_000
"""At most this many ``device_ids`` per request."""

MAX_ENTRIES = 1_000
"""At most this many devices in ``device_health`` (the summary still counts them all)."""


def _selection(request: analytics_pb2.GetDeviceHealthRequest) -> health_store.Selection:
    """The request's selection, validated (INVALID_ARGUMENT names the field)."""
    ids: list[str] | None = None
    if request.device_ids:
        if len(request.device_ids) > MAX_DEVICE_IDS:
            raise invalid(
                f"device_ids: at most {MAX_DEVICE_IDS} ids per request "
                f"(got {len(request.device_ids)}); use device_filter for larger selections"
            )
        for position, device_id in enumerate(request.device_ids):
            if not device_fields.DEVICE_ID.match(device_id):
                raise invalid(
                    f"device_ids[{position}]: {device_id[:64]!r} is not a device id "
                    "(1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)"
                )
        ids = list(dict.fromkeys(request.device_ids))
    condition = None
    if request.device_filter.strip():
        try:
            compiled = core_ext.compile_filter(request.device_filter)
        except core_ext.FilterError as exc:
            raise invalid(f"device_filter: {exc} (at character {exc.position})") from None
        condition = compiled.to_sql
    return health_store.Selection(device_ids=ids, condition=condition)


def _thresholds() -> device_health.Thresholds:
    try:
        return device_health.Thresholds.from_settings(resources().settings)
    except device_health.InvalidThresholds as exc:
        # The server's configuration, not the request, is wrong: say which setting.
        raise ConnectError(
            Code.FAILED_PRECONDITION,
            f"health thresholds are misconfigured (FLEETD_MIN_AGENT_VERSION): {exc}",
        ) from None


async def get_device_health(
    request: analytics_pb2.GetDeviceHealthRequest,
) -> analytics_pb2.GetDeviceHealthResponse:
    try:
        check_type = device_health.effective_check_type(request.check_type)
    except ValueError:
        raise invalid("check_type: use BASIC, RESOURCES or COMPREHENSIVE (the default)") from None
    selection = _selection(request)
    thresholds = _thresholds()
    now = dt.datetime.now(dt.UTC)
    async with (
        resources().pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        counted = await health_store.summary(
            conn, thresholds=thresholds, check_type=check_type, selection=selection, now=now
        )
        worst: list[device_health.Observed] = []
        if counted.total:
            worst = await health_store.worst(
                conn,
                thresholds=thresholds,
                check_type=check_type,
                selection=selection,
                now=now,
                limit=MAX_ENTRIES,
            )
    summary = analytics_pb2.HealthSummary(
        total_devices=counted.total,
        healthy_count=counted.by_status[device_health.HEALTHY],
        degraded_count=counted.by_status[device_health.DEGRADED],
        unhealthy_count=counted.by_status[device_health.UNHEALTHY],
        unreachable_count=counted.by_status[device_health.UNREACHABLE],
        failing_checks=counted.failing,
        check_type=check_type,
    )
    summary.generated_at.FromDatetime(now)
    response = analytics_pb2.GetDeviceHealthResponse(summary=summary)
    for observed in worst:
        response.device_health[observed.device_id].CopyFrom(
            device_health.evaluate(observed, now=now, thresholds=thresholds, check_type=check_type)
        )
    return response
