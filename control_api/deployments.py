"""Deployments: DeployUpdate, GetDeploymentStatus, RollbackDeployment, ListDeployments,
PauseDeployment, ResumeDeployment, ApproveWave, CancelDeployment.

DeployUpdate resolves the targets once (``fleetd.storage.deployments.create_deployment``);
the rollout engine (``fleetd.services.rollout.engine``) drives the deployment from there. The
operator actions are ``fleetd.services.rollout.operations``; a state that does not allow one is
FAILED_PRECONDITION. Mutating calls are audited by control_api.auth with the deployment
id as target. docs/rollouts.md describes the state machine.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf import duration_pb2

import core_ext
from control_api import convert
from control_api.auth import audit_target, current_principal
from control_api.errors import invalid
from control_api.pagination import created_after, created_token, page_size
from control_api.resources import resources
from fleetd.domain import device_fields
from fleetd.domain.rollout.decide import FINISHED, TERMINAL, Counts
from fleetd.domain.rollout.policy import InvalidConfig, effective_config
from fleetd.domain.rollout.reasons import SKIP_MESSAGES
from fleetd.services.rollout import operations
from fleetd.storage import deployment_listing as listing
from fleetd.storage import deployments as store
from fleetd.storage.deployment_listing import DeviceStatus
from fleetd.storage.deployments import DeploymentRecord
from fleetd.v1 import update_pb2

Ctx = RequestContext[Any, Any]

MAX_DEVICE_IDS = 10_000
MAX_FILTER = 4096
MAX_REASON = 1024
MAX_DEVICE_DETAILS = 1000
_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

_STATE = {
    "pending": update_pb2.DeploymentStatus.PENDING,
    "running": update_pb2.DeploymentStatus.RUNNING,
    "paused": update_pb2.DeploymentStatus.PAUSED,
    "completed": update_pb2.DeploymentStatus.COMPLETED,
    "failed": update_pb2.DeploymentStatus.FAILED,
    "cancelled": update_pb2.DeploymentStatus.CANCELLED,
    "rolling_back": update_pb2.DeploymentStatus.ROLLING_BACK,
    "rolled_back": update_pb2.DeploymentStatus.ROLLED_BACK,
}
_DEVICE_STATE = {
    "waiting": update_pb2.DeviceDeploymentStatus.PENDING,
    "pending": update_pb2.DeviceDeploymentStatus.PENDING,
    "downloading": update_pb2.DeviceDeploymentStatus.DOWNLOADING,
    "verifying": update_pb2.DeviceDeploymentStatus.VERIFYING,
    "applying": update_pb2.DeviceDeploymentStatus.APPLYING,
    "healthy": update_pb2.DeviceDeploymentStatus.HEALTHY,
    "rolled_back": update_pb2.DeviceDeploymentStatus.ROLLED_BACK,
    "failed": update_pb2.DeviceDeploymentStatus.FAILED,
    "cancelled": update_pb2.DeviceDeploymentStatus.CANCELLED,
    "skipped": update_pb2.DeviceDeploymentStatus.SKIPPED,
}


def _deployment_id(value: str) -> str:
    if not value:
        raise invalid("deployment_id is required")
    if not _ID.match(value):
        raise invalid("deployment_id is not a valid id")
    audit_target(value)
    return value


def _text(name: str, value: str, limit: int = MAX_REASON) -> str:
    if len(value) > limit or "\x00" in value:
        raise invalid(f"{name} must be at most {limit} characters, without NUL")
    return value


async def status_of(deployment_id: str) -> update_pb2.DeploymentStatus:
    """The DeploymentStatus of a deployment (NOT_FOUND if there is none)."""
    res = resources()
    deployment = await store.get_deployment(res.pool, deployment_id)
    if deployment is None:
        raise ConnectError(Code.NOT_FOUND, f"deployment {deployment_id} not found")
    return _status(deployment, await store.counts(res.pool, deployment_id))


def _status(deployment: DeploymentRecord, counts: Counts) -> update_pb2.DeploymentStatus:
    total = deployment.target_device_count
    ended = sum(counts.get(s) for s in TERMINAL)
    status = update_pb2.DeploymentStatus(
        deployment_id=deployment.deployment_id,
        update_id=deployment.update_id,
        update_name=deployment.update_name,
        update_version=deployment.update_version,
        state=_STATE[deployment.state],
        config=deployment.config,
        device_filter=deployment.device_filter,
        target_device_count=total,
        current_wave=deployment.current_wave,
        total_waves=deployment.total_waves,
        awaiting_approval=deployment.awaiting_approval,
        progress_percentage=100.0 * ended / total if total else 0.0,
        message=deployment.message,
        created_by=deployment.created_by,
        created_at=convert.timestamp(deployment.created_at),
        updated_at=convert.timestamp(deployment.updated_at),
    )
    if deployment.started_at is not None:
        status.started_at.CopyFrom(convert.timestamp(deployment.started_at))
    if deployment.completed_at is not None:
        status.completed_at.CopyFrom(convert.timestamp(deployment.completed_at))
    return status


def _duration(value: dt.timedelta) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(value)
    return d


async def _metrics(deployment: DeploymentRecord, counts: Counts) -> update_pb2.DeploymentMetrics:
    get = counts.get
    finished = sum(get(s) for s in FINISHED)
    failures = get("failed") + get("rolled_back")
    assigned = counts.total() - get("waiting") - get("skipped")
    metrics = update_pb2.DeploymentMetrics(
        total_devices=deployment.target_device_count,
        pending_count=get("waiting") + get("pending"),
        downloading_count=get("downloading"),
        verifying_count=get("verifying"),
        applying_count=get("applying"),
        healthy_count=get("healthy"),
        rolled_back_count=get("rolled_back"),
        failed_count=get("failed"),
        cancelled_count=get("cancelled"),
        skipped_count=get("skipped"),
        success_percentage=100.0 * get("healthy") / finished if finished else 0.0,
        failure_percentage=100.0 * failures / assigned if assigned else 0.0,
    )
    durations = await listing.apply_durations(resources().pool, deployment.deployment_id)
    if durations is not None:
        metrics.median_apply_duration.CopyFrom(_duration(durations.median))
        metrics.p95_apply_duration.CopyFrom(_duration(durations.p95))
    ended = sum(get(s) for s in TERMINAL)
    remaining = counts.total() - ended
    started = deployment.started_at
    if deployment.state == "running" and started is not None and remaining and finished:
        elapsed = dt.datetime.now(dt.UTC) - started
        # Throughput so far (devices ended per second), extrapolated to the rest.
        rate = finished / max(elapsed.total_seconds(), 1e-3)
        eta = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=remaining / rate)
        metrics.estimated_completion.CopyFrom(convert.timestamp(eta))
    return metrics


def _device_status(target: DeviceStatus) -> update_pb2.DeviceDeploymentStatus:
    message = target.message or SKIP_MESSAGES.get(target.reason, "")
    status = update_pb2.DeviceDeploymentStatus(
        device_id=target.device_id,
        device_name=target.device_name,
        state=_DEVICE_STATE[target.state],
        wave=target.wave,
        assignment_id=target.assignment_id,
        previous_version=target.previous_version,
        installed_version=target.installed_version,
        reason=target.reason,
        message=message,
    )
    if target.assigned_at is not None:
        status.assigned_at.CopyFrom(convert.timestamp(target.assigned_at))
    if target.updated_at is not None:
        status.updated_at.CopyFrom(convert.timestamp(target.updated_at))
    if target.completed_at is not None:
        status.completed_at.CopyFrom(convert.timestamp(target.completed_at))
    return status


def _operation_error(exc: Exception, deployment_id: str) -> ConnectError:
    if isinstance(exc, operations.NotFound):
        return ConnectError(Code.NOT_FOUND, f"deployment {deployment_id} not found")
    return ConnectError(Code.FAILED_PRECONDITION, str(exc))


class DeploymentMethods:
    """UpdateService methods about deployments (mixed into UpdateServiceImpl)."""

    async def deploy_update(
        self, request: update_pb2.DeployUpdateRequest, ctx: Ctx
    ) -> update_pb2.DeployUpdateResponse:
        if not request.update_id:
            raise invalid("update_id is required")
        if not request.device_ids and not request.device_filter.strip():
            raise invalid("set device_ids, device_filter or both to choose the targets")
        if len(request.device_ids) > MAX_DEVICE_IDS:
            raise invalid(f"device_ids: at most {MAX_DEVICE_IDS}; use device_filter for more")
        bad = next((d for d in request.device_ids if not device_fields.DEVICE_ID.match(d)), None)
        if bad is not None:
            raise invalid(f"device_ids: {bad[:140]!r} is not a valid device id")
        _text("device_filter", request.device_filter, MAX_FILTER)
        condition = None
        if request.device_filter.strip():
            try:
                condition = core_ext.compile_filter(request.device_filter).to_sql
            except core_ext.FilterError as exc:
                raise invalid(f"device_filter: {exc} (at character {exc.position})") from None
        res = resources()
        strategy = await store.update_strategy(res.pool, request.update_id)
        if strategy is None:
            raise ConnectError(Code.NOT_FOUND, f"update {request.update_id} not found")
        try:
            config = effective_config(request.config, strategy)
        except InvalidConfig as exc:
            raise invalid(str(exc)) from None
        artifacts = await store.update_artifacts(res.pool, request.update_id) or []
        if not artifacts:
            raise ConnectError(
                Code.FAILED_PRECONDITION, f"update {request.update_id} has no artifacts"
            )
        deployment_id = f"dep-{secrets.token_hex(6)}"
        audit_target(deployment_id)
        new = store.NewDeployment(
            deployment_id=deployment_id,
            update_id=request.update_id,
            config=config.SerializeToString(deterministic=True),
            percentages=[w.cumulative_percentage for w in config.waves],
            device_filter=request.device_filter,
            condition=condition,
            device_ids=sorted(set(request.device_ids)) if request.device_ids else None,
            created_by=current_principal().id,
        )
        try:
            async with res.pool.acquire() as conn:
                created = await store.create_deployment(conn, new, artifacts)
        except store.UnknownDevices as exc:
            shown = ", ".join(exc.missing[:10]) + (" ..." if len(exc.missing) > 10 else "")
            raise ConnectError(
                Code.NOT_FOUND, f"device_ids: {len(exc.missing)} unknown device(s): {shown}"
            ) from None
        except store.NoTargets as exc:
            raise ConnectError(Code.FAILED_PRECONDITION, f"no targets: {exc}") from None
        return update_pb2.DeployUpdateResponse(
            deployment_id=created.deployment_id,
            target_device_count=created.target_device_count,
            started_at=convert.timestamp(created.started_at),
        )

    async def get_deployment_status(
        self, request: update_pb2.GetDeploymentStatusRequest, ctx: Ctx
    ) -> update_pb2.GetDeploymentStatusResponse:
        deployment_id = _deployment_id(request.deployment_id)
        res = resources()
        deployment = await store.get_deployment(res.pool, deployment_id)
        if deployment is None:
            raise ConnectError(Code.NOT_FOUND, f"deployment {deployment_id} not found")
        counts = await store.counts(res.pool, deployment_id)
        response = update_pb2.GetDeploymentStatusResponse(
            status=_status(deployment, counts), metrics=await _metrics(deployment, counts)
        )
        if request.include_device_details:
            targets = await listing.device_statuses(res.pool, deployment_id, MAX_DEVICE_DETAILS)
            response.device_statuses.extend(_device_status(t) for t in targets)
        return response

    async def list_deployments(
        self, request: update_pb2.ListDeploymentsRequest, ctx: Ctx
    ) -> update_pb2.ListDeploymentsResponse:
        size = page_size(request.page_size)
        order = " ".join(request.order_by.split()).lower() or "created_at desc"
        if order not in ("created_at desc", "created_at asc", "created_at"):
            raise invalid('order_by: use "created_at DESC" (the default) or "created_at ASC"')
        descending = order == "created_at desc"
        states, update_id, created_by = _list_filter(request.filter)
        if request.update_id:
            if update_id and update_id != request.update_id:
                raise invalid("update_id and the filter's update_id disagree")
            update_id = request.update_id
        res = resources()
        scope = f"deployments|{order}|{request.filter}|{request.update_id}"
        after = created_after(res.page_tokens, scope, request.page_token)
        page = await listing.list_deployments(
            res.pool,
            limit=size + 1,
            descending=descending,
            after=after,
            states=states,
            update_id=update_id,
            created_by=created_by,
        )
        response = update_pb2.ListDeploymentsResponse(
            total_count=await listing.count_deployments(
                res.pool, states=states, update_id=update_id, created_by=created_by
            )
        )
        for deployment in page[:size]:
            counts = await store.counts(res.pool, deployment.deployment_id)
            response.deployments.append(_status(deployment, counts))
        if len(page) > size:
            last = page[size - 1]
            response.next_page_token = created_token(
                res.page_tokens, scope, last.created_at, last.deployment_id
            )
        return response

    async def rollback_deployment(
        self, request: update_pb2.RollbackDeploymentRequest, ctx: Ctx
    ) -> update_pb2.RollbackDeploymentResponse:
        deployment_id = _deployment_id(request.deployment_id)
        reason = _text("reason", request.reason)
        res = resources()
        try:
            outcome = await operations.start_rollback(
                res.pool,
                res.redis,
                res.settings.fleet,
                deployment_id,
                reason,
                force=request.force,
            )
        except (operations.NotFound, operations.IllegalState) as exc:
            raise _operation_error(exc, deployment_id) from None
        return update_pb2.RollbackDeploymentResponse(
            success=True,
            devices_rolled_back=outcome.devices,
            rolled_back_at=convert.timestamp(dt.datetime.now(dt.UTC)),
        )

    async def pause_deployment(
        self, request: update_pb2.PauseDeploymentRequest, ctx: Ctx
    ) -> update_pb2.PauseDeploymentResponse:
        deployment_id = _deployment_id(request.deployment_id)
        reason = _text("reason", request.reason)
        res = resources()
        try:
            await operations.pause(res.pool, res.redis, res.settings.fleet, deployment_id, reason)
        except (operations.NotFound, operations.IllegalState) as exc:
            raise _operation_error(exc, deployment_id) from None
        return update_pb2.PauseDeploymentResponse(status=await status_of(deployment_id))

    async def resume_deployment(
        self, request: update_pb2.ResumeDeploymentRequest, ctx: Ctx
    ) -> update_pb2.ResumeDeploymentResponse:
        deployment_id = _deployment_id(request.deployment_id)
        res = resources()
        try:
            await operations.resume(res.pool, res.redis, res.settings.fleet, deployment_id)
        except (operations.NotFound, operations.IllegalState) as exc:
            raise _operation_error(exc, deployment_id) from None
        return update_pb2.ResumeDeploymentResponse(status=await status_of(deployment_id))

    async def approve_wave(
        self, request: update_pb2.ApproveWaveRequest, ctx: Ctx
    ) -> update_pb2.ApproveWaveResponse:
        deployment_id = _deployment_id(request.deployment_id)
        _text("comment", request.comment)
        res = resources()
        try:
            await operations.approve(
                res.pool, res.redis, res.settings.fleet, deployment_id, request.wave
            )
        except (operations.NotFound, operations.IllegalState) as exc:
            raise _operation_error(exc, deployment_id) from None
        return update_pb2.ApproveWaveResponse(status=await status_of(deployment_id))

    async def cancel_deployment(
        self, request: update_pb2.CancelDeploymentRequest, ctx: Ctx
    ) -> update_pb2.CancelDeploymentResponse:
        deployment_id = _deployment_id(request.deployment_id)
        reason = _text("reason", request.reason)
        res = resources()
        try:
            outcome = await operations.cancel(
                res.pool, res.redis, res.settings.fleet, deployment_id, reason
            )
        except (operations.NotFound, operations.IllegalState) as exc:
            raise _operation_error(exc, deployment_id) from None
        return update_pb2.CancelDeploymentResponse(
            status=await status_of(deployment_id), devices_cancelled=outcome.devices
        )


_TERM = re.compile(r"^\s*(state|update_id|created_by)\s*:\s*([A-Za-z0-9._@:-]+)\s*$")


def _list_filter(text: str) -> tuple[list[str], str, str]:
    """ListDeployments' filter: terms ``state:<s>``, ``update_id:<id>``,
    ``created_by:<principal>`` joined by AND (several state terms mean any of them)."""
    states: list[str] = []
    found: dict[str, str] = {}
    if not text.strip():
        return states, "", ""
    _text("filter", text, MAX_FILTER)
    for term in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        match = _TERM.match(term)
        if match is None:
            raise invalid(
                f"filter: cannot read {term.strip()[:80]!r}; use terms state:<state>, "
                "update_id:<id>, created_by:<principal> joined by AND"
            )
        key, value = match[1], match[2]
        if key == "state":
            if value.lower() not in _STATE:
                raise invalid(f"filter: unknown state {value!r}; states: {', '.join(_STATE)}")
            states.append(value.lower())
        elif key in found and found[key] != value:
            raise invalid(f"filter: {key} given twice with different values")
        else:
            found[key] = value
    return states, found.get("update_id", ""), found.get("created_by", "")
