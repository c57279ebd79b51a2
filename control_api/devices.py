"""``fleetd.v1.DeviceService``: enrolment, inventory and enrolment tokens.

Methods not written here answer UNIMPLEMENTED (the generated Protocol's default, given a
clear message by control_api.auth).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf import json_format

import core_ext
from control_api import convert, event_stream, notify, tuf_files
from control_api.auth import audit_target, current_principal, require
from control_api.errors import invalid
from control_api.heartbeat import heartbeat as record_heartbeat
from control_api.pagination import InvalidPageToken, created_after, created_token, page_size
from control_api.resources import resources
from fleetd.domain import device_fields, device_health
from fleetd.services import certificates
from fleetd.storage import bearer_tokens as credential_store
from fleetd.storage import devices as device_store
from fleetd.storage import events, ordering
from fleetd.storage.analytics import health as health_store
from fleetd.storage.types import Connection
from fleetd.v1 import device_pb2
from fleetd.v1.device_connect import DeviceService

MAX_TOKEN_TTL = dt.timedelta(days=30)
MAX_TOKEN_USES = 1_000_000
MAX_TOKEN_DESCRIPTION = 256

Ctx = RequestContext[Any, Any]


def _validate_new_device(request: device_pb2.RegisterDeviceRequest) -> str:
    device_id = request.device_id or f"dev-{secrets.token_hex(6)}"
    if not device_fields.DEVICE_ID.match(device_id):
        raise invalid(
            "device_id must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    try:
        device_fields.text("device_name", request.device_name, device_fields.MAX_NAME)
        device_fields.text("device_type", request.device_type, device_fields.MAX_DEVICE_TYPE)
        device_fields.text("version", request.version, device_fields.MAX_VERSION)
    except device_fields.InvalidRequest as exc:
        raise invalid(str(exc)) from None
    try:
        device_fields.metadata(
            request.metadata, min_key_length=device_fields.REGISTER_DEVICE_MIN_METADATA_KEY
        )
    except device_fields.InvalidRequest:
        # This API's words, which its clients already see, for the same limits.
        raise invalid(
            f"metadata: at most {device_fields.MAX_METADATA} entries, "
            f"keys <= {device_fields.MAX_METADATA_KEY} and "
            f"values <= {device_fields.MAX_METADATA_VALUE} characters"
        ) from None
    return device_id


class DeviceServiceImpl(DeviceService):
    async def register_device(
        self, request: device_pb2.RegisterDeviceRequest, ctx: Ctx
    ) -> device_pb2.RegisterDeviceResponse:
        if not request.enrollment_token:
            require("device:register")
        elif not request.csr:
            raise invalid("enrolment with enrollment_token needs a csr (PEM PKCS#10)")
        device_id = _validate_new_device(request)
        audit_target(device_id)
        res = resources()
        settings = res.settings
        new = device_store.NewDevice(
            device_id=device_id,
            fleet=settings.fleet,
            name=request.device_name or device_id,
            device_type=request.device_type,
            version=request.version,
            system_info=json_format.MessageToDict(
                request.system_info, preserving_proto_field_name=True
            ),
            metadata=dict(request.metadata),
        )
        created_by = current_principal().id or "enrollment token"
        try:
            async with res.pool.acquire() as conn, conn.transaction():
                if request.enrollment_token:
                    await credential_store.consume_enrollment_token(
                        conn, request.enrollment_token, settings.fleet
                    )
                device = await device_store.insert_device(conn, new)
                certificate = ""
                if request.csr:
                    certificate = await _issue_certificate(conn, device_id, request.csr)
                api_key = await credential_store.create_api_key(
                    conn,
                    "device",
                    f"device {device_id}",
                    device_id=device_id,
                    created_by=created_by,
                )
        except credential_store.EnrollmentRefused as exc:
            raise ConnectError(Code.UNAUTHENTICATED, str(exc)) from None
        except device_store.DeviceExists:
            raise ConnectError(
                Code.ALREADY_EXISTS, f"device {device_id} is already registered"
            ) from None
        await notify.publish(
            [events.Event(events.REGISTERED, device_id, device.registered_at.timestamp())]
        )
        return device_pb2.RegisterDeviceResponse(
            device_id=device_id,
            api_key=api_key.token,
            certificate=certificate,
            registered_at=convert.timestamp(device.registered_at),
            ca_certificate=res.ca.cert_pem.decode() if certificate else "",
            gateway_endpoint=settings.gateway_endpoint,
            fleet=settings.fleet,
            tuf_root=await tuf_files.repository().root() or b"",
        )

    async def list_devices(
        self, request: device_pb2.ListDevicesRequest, ctx: Ctx
    ) -> device_pb2.ListDevicesResponse:
        size = page_size(request.page_size)
        try:
            order = ordering.parse(request.order_by)
        except ordering.InvalidOrderBy as exc:
            raise invalid(str(exc)) from None
        try:
            device_filter = core_ext.compile_filter(request.filter)
        except core_ext.FilterError as exc:
            raise invalid(f"filter: {exc} (at character {exc.position})") from None
        res = resources()
        # A token is valid only for the query (filter and ordering) that issued it.
        scope = f"devices|{order.canonical}|{request.filter}"
        conditions: list[Callable[[int], device_store.SqlCondition]] = []
        if request.filter.strip():
            conditions.append(device_filter.to_sql)
        if request.page_token:
            try:
                position = res.page_tokens.decode(scope, request.page_token)
                after = position.get("after")
                if not isinstance(after, list):
                    raise InvalidPageToken("page_token is malformed")
                order.check_position(after)  # validate now, not inside the query
                conditions.append(partial(_after, order, after))
            except (InvalidPageToken, ordering.InvalidOrderBy) as exc:
                raise invalid(str(exc)) from None
        rows = await device_store.list_devices(
            res.pool, limit=size + 1, order_by=order.order_by_sql(), conditions=conditions
        )
        more = len(rows) > size
        rows = rows[:size]
        async with res.pool.acquire() as conn:
            total = await device_store.total_devices(
                conn,
                device_filter.to_sql if request.filter.strip() else None,
                exact_up_to=res.settings.exact_count_limit,
            )
        response = device_pb2.ListDevicesResponse(
            devices=[convert.device(r) for r in rows],
            total_count=min(total.count, 2**31 - 1),
            total_count_estimated=total.estimated,
        )
        if more:
            response.next_page_token = res.page_tokens.encode(
                scope, {"after": order.position(rows[-1])}
            )
        return response

    async def get_device(
        self, request: device_pb2.GetDeviceRequest, ctx: Ctx
    ) -> device_pb2.GetDeviceResponse:
        if not request.device_id:
            raise invalid("device_id is required")
        principal = current_principal()
        if principal.role == "device" and principal.device_id != request.device_id:
            raise ConnectError(Code.PERMISSION_DENIED, "a device may only view itself")
        res = resources()
        record = await device_store.get_device(res.pool, request.device_id)
        if record is None or record.offboarded_at is not None:
            raise ConnectError(Code.NOT_FOUND, f"device {request.device_id} not found")
        device = convert.device(record)
        response = device_pb2.GetDeviceResponse(device=device)
        if request.include_metrics:
            # Latest stats; the per-minute history arrives with the fleet rollups.
            response.metrics.device_id = device.id
            response.metrics.latest.CopyFrom(device.stats)
        if request.include_health:
            # The same observation and rules as GetDeviceHealth (COMPREHENSIVE).
            now = dt.datetime.now(dt.UTC)
            observed = await health_store.observe(res.pool, device.id, now=now)
            if observed is not None:
                response.health.CopyFrom(
                    device_health.evaluate(
                        observed,
                        now=now,
                        thresholds=device_health.Thresholds.from_settings(res.settings),
                    )
                )
        return response

    async def update_device(
        self, request: device_pb2.UpdateDeviceRequest, ctx: Ctx
    ) -> device_pb2.UpdateDeviceResponse:
        if not request.device_id:
            raise invalid("device_id is required")
        audit_target(request.device_id)
        changes = device_changes(request)
        res = resources()
        record = await device_store.update_device(
            res.pool, request.device_id, changes, res.settings.offline_after
        )
        if record is None:
            raise ConnectError(Code.NOT_FOUND, f"device {request.device_id} not found")
        await notify.publish(
            [events.Event(events.UPDATED, request.device_id, record.updated_at.timestamp())]
        )
        return device_pb2.UpdateDeviceResponse(
            device=convert.device(record), updated_at=convert.timestamp(record.updated_at)
        )

    async def delete_device(
        self, request: device_pb2.DeleteDeviceRequest, ctx: Ctx
    ) -> device_pb2.DeleteDeviceResponse:
        if not request.device_id:
            raise invalid("device_id is required")
        audit_target(request.device_id)
        try:
            async with resources().pool.acquire() as conn, conn.transaction():
                offboarded = await device_store.offboard_device(
                    conn,
                    request.device_id,
                    f"deleted by {current_principal().id}",
                    force=request.force,
                )
        except device_store.ActiveDeployment as exc:
            raise ConnectError(
                Code.FAILED_PRECONDITION,
                f"{exc}; finish or cancel the deployment, or delete with force=true "
                "(which cancels its assignments)",
            ) from None
        if offboarded is None:
            raise ConnectError(Code.NOT_FOUND, f"device {request.device_id} not found")
        await notify.certificates_revoked([request.device_id])
        at = offboarded.at.timestamp()
        await notify.publish(
            [
                *(
                    events.Event(
                        events.DEPLOYMENT,
                        request.device_id,
                        at,
                        {
                            "assignment_id": a.assignment_id,
                            "deployment_id": a.deployment_id,
                            "state": "cancelled",
                            "reason": "DEVICE_DELETED",
                        },
                    )
                    for a in offboarded.cancelled
                ),
                events.Event(events.DELETED, request.device_id, at),
            ]
        )
        return device_pb2.DeleteDeviceResponse(
            success=True, deleted_at=convert.timestamp(offboarded.at)
        )

    async def stream_events(
        self, request: device_pb2.StreamEventsRequest, ctx: Ctx
    ) -> AsyncIterator[device_pb2.StreamEventsResponse]:
        async for response in event_stream.stream(resources(), current_principal(), request):
            yield response

    async def heartbeat(
        self, request: device_pb2.HeartbeatRequest, ctx: Ctx
    ) -> device_pb2.HeartbeatResponse:
        return await record_heartbeat(resources(), current_principal(), request)

    async def create_enrollment_token(
        self, request: device_pb2.CreateEnrollmentTokenRequest, ctx: Ctx
    ) -> device_pb2.CreateEnrollmentTokenResponse:
        principal = current_principal()
        ttl = request.ttl.ToTimedelta() if request.HasField("ttl") else dt.timedelta(hours=24)
        if not dt.timedelta(0) < ttl <= MAX_TOKEN_TTL:
            raise invalid("ttl must be positive and at most 30 days")
        max_uses = request.max_uses or 1
        if not 1 <= max_uses <= MAX_TOKEN_USES:
            raise invalid(f"max_uses must be between 1 and {MAX_TOKEN_USES}")
        if request.device_type or request.tags or request.metadata:
            raise invalid("device_type, tags and metadata presets on tokens are not supported yet")
        if len(request.description) > MAX_TOKEN_DESCRIPTION:
            raise invalid(f"description is longer than {MAX_TOKEN_DESCRIPTION} characters")
        res = resources()
        secret, _ = await credential_store.create_enrollment_token(
            res.pool,
            res.settings.fleet,
            ttl=ttl,
            max_uses=max_uses,
            description=request.description,
            created_by=principal.id,
        )
        audit_target(secret.id)
        stored = await credential_store.get_enrollment_token(res.pool, secret.id)
        assert stored is not None
        return device_pb2.CreateEnrollmentTokenResponse(
            token=convert.enrollment_token(stored), secret=secret.token
        )

    async def list_enrollment_tokens(
        self, request: device_pb2.ListEnrollmentTokensRequest, ctx: Ctx
    ) -> device_pb2.ListEnrollmentTokensResponse:
        size = page_size(request.page_size)
        res = resources()
        scope = f"tokens:{int(request.include_inactive)}"
        after = created_after(res.page_tokens, scope, request.page_token)
        tokens = await credential_store.list_enrollment_tokens(
            res.pool,
            res.settings.fleet,
            limit=size + 1,
            after=after,
            include_inactive=request.include_inactive,
        )
        response = device_pb2.ListEnrollmentTokensResponse(
            tokens=[convert.enrollment_token(t) for t in tokens[:size]],
            total_count=await credential_store.count_enrollment_tokens(
                res.pool, res.settings.fleet, include_inactive=request.include_inactive
            ),
        )
        if len(tokens) > size:
            last = tokens[size - 1]
            response.next_page_token = created_token(
                res.page_tokens, scope, last.created_at, last.token_id
            )
        return response

    async def revoke_enrollment_token(
        self, request: device_pb2.RevokeEnrollmentTokenRequest, ctx: Ctx
    ) -> device_pb2.RevokeEnrollmentTokenResponse:
        if not request.token_id:
            raise invalid("token_id is required")
        audit_target(request.token_id)
        res = resources()
        await credential_store.revoke_enrollment_token(res.pool, request.token_id)
        token = await credential_store.get_enrollment_token(res.pool, request.token_id)
        if token is None or token.fleet != res.settings.fleet:
            raise ConnectError(Code.NOT_FOUND, f"enrollment token {request.token_id} not found")
        return device_pb2.RevokeEnrollmentTokenResponse(token=convert.enrollment_token(token))


async def _issue_certificate(conn: Connection, device_id: str, csr: str) -> str:
    """The enrolling device's certificate, recorded in the enrolment's transaction."""
    try:
        issued = await certificates.issue_device_certificate(
            conn, resources().ca, device_id, csr.encode()
        )
    except certificates.EnrollmentError as exc:
        raise invalid(f"csr: {exc}") from None
    return issued.pem


def _after(order: ordering.Ordering, position: list[Any], first: int) -> tuple[str, list[Any]]:
    return order.after_sql(position, first)


MUTABLE_PATHS = frozenset({"name", "type", "tags", "metadata", "status"})
OUTPUT_ONLY_PATHS = frozenset(
    {
        "id",
        "fleet",
        "version",
        "agent_version",
        "system_info",
        "last_seen",
        "registered_at",
        "updated_at",
        "stats",
        "certificate_serial",
        "certificate_expires_at",
        "ip_address",
        "last_boot",
        "desired_state_revision",
        "reported_state_revision",
        "installed_artifacts",
        "health",
    }
)


def device_changes(request: device_pb2.UpdateDeviceRequest) -> device_store.DeviceChanges:
    """The update the field mask asks for, validated; INVALID_ARGUMENT names the path."""
    paths = list(request.update_mask.paths)
    if not paths:
        raise invalid('update_mask is required, e.g. {"paths": ["name"]}')
    device = request.device
    changes = device_store.DeviceChanges()
    for path in paths:
        head, _, rest = path.partition(".")
        if head == "metadata" and rest:
            if not device_fields.OPERATOR_METADATA_KEY.match(rest):
                raise invalid(f"update_mask: metadata key {rest!r} is not a valid key")
            if rest in device.metadata:
                changes.metadata_set[rest] = device.metadata[rest]
            else:
                changes.metadata_delete.append(rest)
            continue
        if head in OUTPUT_ONLY_PATHS:
            raise invalid(f"update_mask: {path!r} is output only and cannot be updated")
        if head not in MUTABLE_PATHS or rest:
            raise invalid(
                f"update_mask: unknown path {path!r}; updatable paths are "
                "name, type, tags, metadata, metadata.<key> and status"
            )
    if "name" in paths:
        if not 1 <= len(device.name) <= device_fields.MAX_NAME:
            raise invalid(f"device.name must be 1 to {device_fields.MAX_NAME} characters")
        changes = replace(changes, name=device.name)
    if "type" in paths:
        try:
            device_fields.text("device.type", device.type, device_fields.MAX_DEVICE_TYPE)
        except device_fields.InvalidRequest as exc:
            raise invalid(str(exc)) from None
        changes = replace(changes, device_type=device.type)
    if "tags" in paths:
        try:
            tags = device_fields.tags(device.tags)
        except device_fields.InvalidRequest:
            # This API's words, which its clients already see, for the gateway's limits.
            raise invalid(
                f"device.tags: at most {device_fields.MAX_TAGS} tags "
                f"of 1 to {device_fields.MAX_TAG_LEN} characters"
            ) from None
        changes = replace(changes, tags=tags)
    if "metadata" in paths:
        changes = replace(changes, metadata=dict(device.metadata))
    for key, value in device.metadata.items():
        if not device_fields.is_operator_metadata(key, value):
            raise invalid(
                f"device.metadata[{key!r}]: keys [A-Za-z0-9_.-]"
                f"{{{device_fields.MIN_METADATA_KEY},{device_fields.MAX_METADATA_KEY}}}, "
                f"values <= {device_fields.MAX_METADATA_VALUE}"
            )
    if "status" in paths:
        if device.status == device_pb2.MAINTENANCE:
            changes = replace(changes, status="maintenance")
        elif device.status in (
            device_pb2.ONLINE,
            device_pb2.OFFLINE,
            device_pb2.DEVICE_STATE_UNSPECIFIED,
        ):
            changes = replace(changes, status="active")
        else:
            raise invalid(
                "device.status: operators may set MAINTENANCE, or ONLINE/OFFLINE to leave "
                "maintenance (liveness then decides which)"
            )
    return changes
