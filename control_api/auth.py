"""Authentication and authorisation for every operator API call.

One metadata interceptor (:class:`AuthInterceptor`) runs before the request body is read:
it assigns a request id, authenticates the caller (``X-API-Key``, a bearer JWT or a
device's client certificate), and checks the method's permission in
``control_api.permissions``. On the way out it answers every error (:func:`answer`), the
one place the operator API maps exceptions to codes:

- a ConnectError stands (a handler's refusal, a malformed or rule-breaking request refused
  while it was decoded by ``control_api.request_codecs``);
- a store outage (``fleetd.storage.errors.STORE_DOWN``: connection-level failures only)
  is UNAVAILABLE, retry later;
- a value the database refused (``DATA_ERRORS``) is INVALID_ARGUMENT, in our words;
- anything else is INTERNAL with the request id to quote: the exception, its class and
  any SQL stay in the server's log.

Mutating calls are audited around the call, outside its transaction: a ``STARTED`` entry
before any work (no entry, no call) and the outcome after (retried; a loss stays visible
in the log as a call without outcome). The start is written by :class:`AuditStart`, a
message interceptor that runs once the request has been decoded and checked, so a request
refused as malformed leaves no entry at all; every call that wrote ``STARTED`` gets its
outcome. docs/design.md says why.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

import core_ext
from control_api import client_cert, debug
from control_api.errors import api_error, data_refused, store_unavailable, with_info
from control_api.permissions import (
    METHOD_PERMISSIONS,
    READ_ONLY_METHODS,
    TOKEN_AUTHENTICATED_METHODS,
    allows,
)
from control_api.resources import resources
from fleetd.services import jwt
from fleetd.storage import audit, bearer_tokens
from fleetd.storage.devices import certificate_standing
from fleetd.storage.errors import is_data_error, is_store_down

log = logging.getLogger(__name__)

API_KEY_CACHE_SECONDS = 5.0
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``kind`` is "anonymous", "api_key", "jwt" or "mtls"."""

    kind: str
    id: str
    role: str
    device_id: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"


ANONYMOUS = Principal("anonymous", "", "")
principal_var: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "principal", default=ANONYMOUS
)
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


@dataclass(slots=True)
class _Call:
    """What the audit log needs to know about the current call, shared (mutable) between
    the interceptors and the handler."""

    method: str
    targets: list[str] = field(default_factory=list)
    started: bool = False
    """Whether its STARTED entry was written (then its outcome must be)."""


call_var: contextvars.ContextVar[_Call] = contextvars.ContextVar("audited_call")


def audit_target(target: str) -> None:
    """Name what the current call acts on (a device id, a token id) for the audit log."""
    call = call_var.get(None)
    if call is not None:
        call.targets.append(target)


AUDIT_RETRY_DELAYS = (0.05, 0.25, 1.0)
"""Pauses between attempts to append a call's outcome (four attempts in all)."""


def _entry(principal: Principal, method: str, request_id: str, outcome: str) -> audit.Entry:
    call = call_var.get(None)
    targets = call.targets if call is not None else []
    return audit.Entry(
        actor=principal.id or "anonymous",
        actor_kind=principal.kind,
        role=principal.role,
        method=method,
        target=",".join(targets)[:512],
        request_id=request_id,
        outcome=outcome,
    )


async def _append(entry: audit.Entry) -> None:
    async with resources().pool.acquire() as conn:
        await audit.append(conn, entry)


async def _audit_start() -> None:
    """Before a mutating call does anything: record that it started, or refuse it.

    A call whose start cannot be recorded is refused (UNAVAILABLE) and changes nothing, so
    no change is ever made without a trace in the log.
    """
    call = call_var.get(None)
    if call is None or call.method in READ_ONLY_METHODS or call.started:
        return
    principal, method, request_id = principal_var.get(), call.method, request_id_var.get()
    try:
        await _append(_entry(principal, method, request_id, audit.STARTED))
        call.started = True
    except Exception:
        log.exception("audit log append failed; refusing %s (request_id %s)", method, request_id)
        raise api_error(
            Code.UNAVAILABLE,
            "the audit log cannot be written, so the call was not run; retry shortly",
            request_id=request_id,
            user_id=principal.id,
        ) from None


async def _audit(principal: Principal, method: str, request_id: str, outcome: str) -> None:
    """After a mutating call (or a denial): record its outcome and targets.

    The call's effect stands whatever happens here, so a failed append is retried, then
    logged loudly; the log itself still shows the call's STARTED entry without an outcome
    (``fleetd audit verify`` lists it).
    """
    if method in READ_ONLY_METHODS:
        return
    entry = _entry(principal, method, request_id, outcome)
    for delay in (*AUDIT_RETRY_DELAYS, None):
        try:
            await _append(entry)
            return
        except Exception:
            if delay is None:
                log.exception(
                    "AUDIT OUTCOME LOST for %s (request_id %s, outcome %s): the log shows the "
                    "call as started with no outcome",
                    method,
                    request_id,
                    outcome,
                )
                return
            log.warning("audit append failed for request_id %s; retrying", request_id)
            await asyncio.sleep(delay)


def current_principal() -> Principal:
    return principal_var.get()


def check(principal: Principal, permission: str, request_id: str) -> None:
    """Refuse ``principal`` unless it is authenticated and holds ``permission``:
    UNAUTHENTICATED or PERMISSION_DENIED (with ErrorInfo), as every RPC is refused."""
    if not principal.authenticated:
        raise api_error(
            Code.UNAUTHENTICATED,
            "authentication required: send X-API-Key or Authorization: Bearer <JWT>",
            request_id=request_id,
        )
    if not allows(principal.role, permission):
        raise api_error(
            Code.PERMISSION_DENIED,
            f"role {principal.role} does not have permission {permission}",
            request_id=request_id,
            user_id=principal.id,
            permission=permission,
        )


def require(permission: str) -> Principal:
    """The caller, if it holds ``permission``; else UNAUTHENTICATED / PERMISSION_DENIED."""
    principal = principal_var.get()
    check(principal, permission, request_id_var.get())
    return principal


async def authenticate_api_key(token: str) -> Principal:
    res = resources()
    now = time.monotonic()
    cached = res.api_key_cache.get(token)
    if cached is not None and cached[0] > now and isinstance(cached[1], Principal):
        return cached[1]
    found = await bearer_tokens.authenticate_api_key(res.pool, token)
    if found is None:
        raise ConnectError(Code.UNAUTHENTICATED, "invalid or revoked API key")
    principal = Principal("api_key", found.key_id, found.role, found.device_id)
    if len(res.api_key_cache) > 10_000:
        res.api_key_cache.clear()
    res.api_key_cache[token] = (now + API_KEY_CACHE_SECONDS, principal)
    return principal


async def authenticate_bearer(authorization: str) -> Principal:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ConnectError(Code.UNAUTHENTICATED, "Authorization must be 'Bearer <JWT>'")
    res = resources()
    token = token.strip()
    keys = await res.jwt_public_keys()
    try:
        claims = jwt.verify(token, keys, fleet=res.settings.fleet)
    except jwt.InvalidToken as exc:
        if "kid" not in str(exc):
            raise ConnectError(Code.UNAUTHENTICATED, str(exc)) from None
        # Perhaps a key published since the last load (a rotation): reload once.
        keys = await res.jwt_public_keys(refresh=True)
        try:
            claims = jwt.verify(token, keys, fleet=res.settings.fleet)
        except jwt.InvalidToken as again:
            raise ConnectError(Code.UNAUTHENTICATED, str(again)) from None
    return Principal("jwt", claims.subject, claims.role)


def _client_host(ctx: RequestContext[Any, Any]) -> str:
    address = ctx.client_address or "unknown"
    host, sep, port = address.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() else address


async def limit_rate(
    principal: Principal,
    client_host: str,
    request_id: str,
    response_headers: MutableMapping[str, str],
) -> None:
    """Apply the caller's limit (per principal; per client address when anonymous) and put
    the X-RateLimit-* headers (and Retry-After when refused) in ``response_headers``;
    RESOURCE_EXHAUSTED past the limit."""
    limit = resources().limits.for_caller(principal.kind, principal.role)
    if limit is None:  # admin: unlimited (X-Bypass-Rate-Limit is moot for it)
        response_headers["x-ratelimit-limit"] = "unlimited"
        return
    subject = (
        f"{principal.kind}:{principal.id}" if principal.authenticated else f"addr:{client_host}"
    )
    decision = await resources().rate_limiter.check(subject, limit)
    for name, value in decision.headers().items():
        response_headers[name] = value
    if not decision.allowed:
        response_headers["retry-after"] = str(max(1, round(decision.retry_after)))
        per = "second" if limit.period == 1.0 else f"{limit.period:g} seconds"
        raise api_error(
            Code.RESOURCE_EXHAUSTED,
            f"rate limit of {limit.count} requests per {per} exceeded; "
            f"retry in {decision.retry_after:.1f}s",
            request_id=request_id,
            user_id=principal.id,
        )


async def authenticate_certificate(pem: bytes) -> Principal:
    """A device acting as itself, identified by its (Envoy-verified) client certificate."""
    res = resources()
    try:
        identity = core_ext.extract_identity(pem)
    except core_ext.IdentityError as exc:
        raise ConnectError(Code.UNAUTHENTICATED, f"client certificate refused: {exc}") from None
    if identity.fleet != res.settings.fleet:
        raise ConnectError(Code.UNAUTHENTICATED, "client certificate belongs to another fleet")
    standing = await certificate_standing(res.pool, identity.serial, identity.fingerprint)
    if standing is None or standing.device_id != identity.device_id:
        raise ConnectError(
            Code.UNAUTHENTICATED, "client certificate was not issued to a registered device"
        )
    if standing.revoked or standing.offboarded:
        raise ConnectError(Code.UNAUTHENTICATED, "client certificate has been revoked")
    return Principal("mtls", identity.device_id, "device", identity.device_id)


async def authenticate_headers(headers: Mapping[str, str]) -> Principal:
    """The caller the request's credential headers name: ``X-API-Key``, else
    ``Authorization: Bearer <JWT>``, else a client certificate Envoy verified
    (``x-forwarded-client-cert``, when trusted); ANONYMOUS when there is none.
    UNAUTHENTICATED for a credential that is wrong, expired or revoked."""
    api_key = headers.get("x-api-key")
    if api_key is not None:
        return await authenticate_api_key(api_key.strip())
    authorization = headers.get("authorization")
    if authorization is not None:
        return await authenticate_bearer(authorization)
    if client_cert.trusted():
        pem = client_cert.certificate_pem(headers.get("x-forwarded-client-cert"))
        if pem is not None:
            return await authenticate_certificate(pem)
    return ANONYMOUS


def answer(error: Exception, method: str, request_id: str, user_id: str = "") -> ConnectError:
    """What the caller is told about ``error``, raised by ``method`` or on its way in.

    A ConnectError stands (with ErrorInfo added if it has none); a store outage is
    UNAVAILABLE, retry later; a value the database refused is INVALID_ARGUMENT (logged: the
    edge's validation missed it); anything else is a bug: logged with its traceback,
    answered INTERNAL with the request id to quote and nothing of the exception.
    """
    if isinstance(error, ConnectError):
        if error.code == Code.UNIMPLEMENTED and error.message == "Not implemented":
            error = ConnectError(
                Code.UNIMPLEMENTED, f"{method} is not implemented by this server yet"
            )
        return with_info(error, request_id=request_id, user_id=user_id)
    if is_store_down(error):
        log.warning("%s unavailable (request_id %s): %r", method, request_id, error)
        return store_unavailable(error, request_id=request_id, user_id=user_id)
    if is_data_error(error):
        log.warning(
            "%s: the database refused a value (request_id %s): %r", method, request_id, error
        )
        return data_refused(request_id=request_id, user_id=user_id)
    log.error("internal error in %s (request_id %s)", method, request_id, exc_info=error)
    return api_error(
        Code.INTERNAL,
        f"internal error (request id {request_id}); quote it to the operator",
        request_id=request_id,
        user_id=user_id,
    )


def _raise(error: Exception, answered: ConnectError) -> None:
    """Raise ``answered`` in place of ``error`` (nothing when it is ``error`` itself)."""
    if answered is error:
        return
    # A ConnectError rebuilt with its details needs no cause; an exception turned into an
    # answer keeps it, for the server's own log.
    raise answered from (None if isinstance(error, ConnectError) else error)


Token = tuple[
    contextvars.Token[Principal],
    contextvars.Token[str],
    contextvars.Token[debug.DebugTrace | None],
    contextvars.Token[_Call],
]


class AuthInterceptor:
    """connectrpc MetadataInterceptor: on_start before the body, on_end after the call."""

    async def on_start(self, ctx: RequestContext[Any, Any]) -> Token:
        supplied = ctx.request_headers.get("x-request-id") or ""
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        ctx.response_headers["x-request-id"] = request_id
        method = f"{ctx.method.service_name}/{ctx.method.name}"
        try:
            principal = await self._admit(ctx, method, request_id)
        except Exception as exc:
            _raise(exc, answer(exc, method, request_id))
            raise
        trace = None
        if principal.role == "admin" and ctx.request_headers.get("x-debug", "") == "true":
            trace = debug.DebugTrace(request_id)
            trace.mark(f"authenticated {principal.kind}:{principal.id} for {method}")
        return (
            principal_var.set(principal),
            request_id_var.set(request_id),
            debug.trace_var.set(trace),
            call_var.set(_Call(method)),
        )

    async def _admit(
        self, ctx: RequestContext[Any, Any], method: str, request_id: str
    ) -> Principal:
        """The caller, authenticated, authorised and within its rate limit; else the
        refusal, raised (and audited once if the caller is known: a denial)."""
        permission = METHOD_PERMISSIONS.get(method)
        if permission is None:  # a served method missing from the table is a bug: deny
            raise api_error(
                Code.PERMISSION_DENIED,
                f"{method} has no permission assigned",
                request_id=request_id,
            )
        principal = await authenticate_headers(ctx.request_headers)
        if principal.authenticated or method not in TOKEN_AUTHENTICATED_METHODS:
            try:
                check(principal, permission, request_id)
            except ConnectError as denied:
                if principal.authenticated:  # anonymous probes would only flood the log
                    await _audit(principal, method, request_id, denied.code.name)
                raise
        await limit_rate(principal, _client_host(ctx), request_id, ctx.response_headers)
        return principal

    async def on_end(
        self, token: Token, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        principal_token, request_token, trace_token, call_token = token
        request_id = request_id_var.get()
        principal = principal_var.get()
        call = call_var.get()
        method = call.method
        answered = None if error is None else answer(error, method, request_id, principal.id)
        if call.started:
            outcome = "OK" if answered is None else answered.code.name
            await _audit(principal, method, request_id, outcome)
        call_var.reset(call_token)
        trace = debug.trace_var.get()
        if trace is not None:
            await asyncio.sleep(0)  # let the query reports (fleetd/storage/query_log.py) run
            trace.mark("handler finished" if error is None else f"handler failed: {error!r}")
            if error is not None:
                trace.record_error(error)
            ctx.response_headers["x-debug"] = trace.header()
        principal_var.reset(principal_token)
        request_id_var.reset(request_token)
        debug.trace_var.reset(trace_token)
        if error is not None and answered is not None:
            _raise(error, answered)


REQ = TypeVar("REQ")
RES = TypeVar("RES")


class AuditStart:
    """connectrpc message interceptor, placed after :class:`AuthInterceptor`: writes a
    mutating call's ``STARTED`` entry just before its handler runs.

    connectrpc calls it once the request is decoded and checked (for a unary or a
    server-streaming call; a client stream's messages are checked as the handler reads
    them, after the start), so a malformed request is refused without a trace in the log
    and every ``STARTED`` entry gets its outcome from ``AuthInterceptor.on_end``.
    """

    async def intercept_unary(
        self,
        call_next: Callable[[REQ, RequestContext[Any, Any]], Awaitable[RES]],
        request: REQ,
        ctx: RequestContext[Any, Any],
    ) -> RES:
        await _audit_start()
        return await call_next(request, ctx)

    async def intercept_client_stream(
        self,
        call_next: Callable[[AsyncIterator[REQ], RequestContext[Any, Any]], Awaitable[RES]],
        request: AsyncIterator[REQ],
        ctx: RequestContext[Any, Any],
    ) -> RES:
        await _audit_start()
        return await call_next(request, ctx)

    async def intercept_server_stream(
        self,
        call_next: Callable[[REQ, RequestContext[Any, Any]], AsyncIterator[RES]],
        request: REQ,
        ctx: RequestContext[Any, Any],
    ) -> AsyncIterator[RES]:
        await _audit_start()
        responses = call_next(request, ctx)
        try:
            async for response in responses:
                yield response
        finally:
            await _aclose(responses)

    async def intercept_bidi_stream(
        self,
        call_next: Callable[[AsyncIterator[REQ], RequestContext[Any, Any]], AsyncIterator[RES]],
        request: AsyncIterator[REQ],
        ctx: RequestContext[Any, Any],
    ) -> AsyncIterator[RES]:
        await _audit_start()
        responses = call_next(request, ctx)
        try:
            async for response in responses:
                yield response
        finally:
            await _aclose(responses)


async def _aclose(responses: AsyncIterator[Any]) -> None:
    """Close the handler's response stream with the one wrapping it (a generator that
    wraps another does not close it, which would leave its cleanup to the collector)."""
    aclose = getattr(responses, "aclose", None)
    if aclose is not None:
        await aclose()
