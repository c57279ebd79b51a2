"""How a gateway call ends with a status: refusals, outages, bugs; and the guard that
applies this to every method.

Shared by every RPC module of the gateway (``gateway.service`` and the modules beside
it), so that each status means the same thing everywhere:

* a refusal's message names what was wrong and what to do (``abort``; or ``Refusal``,
  raised where the problem is found and answered by the RPC's handler or, failing that,
  by the guard);
* a storage outage (``fleetd.storage.errors.STORE_DOWN``: connection-level failures only)
  is answered by ``store_down``, the one place the gateway maps it to UNAVAILABLE
  (devices retry that, with backoff);
* a value the database refused (``DATA_ERRORS``) is INVALID_ARGUMENT: bad input is never
  reported as an outage, which an agent would retry for ever;
* anything else is INTERNAL, "internal error (request id X)": the exception, its class and
  any database text go to the server's log under that id, never to the device.

:func:`guarded_service` builds every method's handler from the service's descriptor: its
request deserializer decodes and checks each message (``fleetd.domain.message_rules``: a
message that does not parse, a string that is not UTF-8 or holds a NUL, NaN...) and the
handler refuses one that fails with INVALID_ARGUMENT before the method runs (a streamed
message, when the method reads it); the method's own exceptions are answered as above.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from fleetd.domain import message_rules
from fleetd.storage.errors import DATA_REFUSED, is_data_error, is_store_down

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

STORE_DOWN_MESSAGE = "storage unavailable; retry later"
"""UNAVAILABLE's default message: an outage's exception (class or text) is not shown, as
it may carry addresses or credentials of the store."""


class Refusal(Exception):
    """Ends the call with ``code``. Raised (not aborted) deep inside a call, so that what
    the call holds (a blob writer's temporary file) is released before the device hears
    the answer; the RPC's handler passes it to ``abort``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> Refusal:
    """INVALID_ARGUMENT: the request itself is wrong; ``message`` says how to fix it."""
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, message)


async def abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code`` and ``message`` (``context.abort`` raises)."""
    await context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


async def store_down(context: Context, exc: BaseException, message: str | None = None) -> NoReturn:
    """End the call with UNAVAILABLE for ``exc``, one of ``STORE_DOWN``.

    ``message`` tells the device what to retry; by default :data:`STORE_DOWN_MESSAGE`.
    """
    await abort(context, grpc.StatusCode.UNAVAILABLE, message or STORE_DOWN_MESSAGE)


async def offboarded(context: Context) -> NoReturn:
    """PERMISSION_DENIED for an offboarded device: what every call but its first heartbeat
    after the offboarding hears (that heartbeat is told ``offboarded`` instead)."""
    await abort(context, grpc.StatusCode.PERMISSION_DENIED, "device was offboarded")


async def answer(context: Context, exc: Exception, method: str) -> NoReturn:
    """End the call for ``exc``, which ``method`` raised, with the status it means."""
    if isinstance(exc, grpc.aio.AbortError):  # the status is set already
        raise exc
    if isinstance(exc, Refusal):
        await abort(context, exc.code, str(exc))
    if is_store_down(exc):
        log.warning("%s: storage unavailable: %r", method, exc)
        await store_down(context, exc)
    if is_data_error(exc):
        log.warning("%s: the database refused a value (validation missed it): %r", method, exc)
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, DATA_REFUSED)
    request_id = uuid.uuid4().hex[:16]
    log.error("internal error in %s (request id %s)", method, request_id, exc_info=exc)
    await abort(
        context,
        grpc.StatusCode.INTERNAL,
        f"internal error (request id {request_id}); quote it to the operator",
    )


class Malformed:
    """What a request deserializer hands on in place of a message it refused: grpc would
    answer an exception raised there UNKNOWN, with the exception's class and text."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


Deserializer = Callable[[bytes], Any]


def checked_deserializer(message_class: type[Message]) -> Deserializer:
    """Bytes to a message that follows ``message_rules``, or a :class:`Malformed`."""
    parse, name = message_rules.parse, message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | Malformed:
        try:
            return parse(message_class, data)
        except message_rules.Violation as violation:
            return Malformed(str(violation))
        except Exception:  # the parser failing otherwise: still the request's bytes
            log.exception("request deserializer for %s failed", name)
            return Malformed(f"the request is not a valid {name}")

    return deserialize


async def refuse_malformed(context: Context, request: object) -> None:
    """INVALID_ARGUMENT if ``request`` is a :class:`Malformed` in place of a message."""
    if type(request) is Malformed:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.reason)


async def _checked_stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
    """A request stream that ends the call at the first malformed message."""
    async for request in requests:
        if type(request) is Malformed:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        yield request


Behavior = Callable[..., Any]


def _guard(method: MethodDescriptor, behavior: Behavior) -> Behavior:
    """``behavior`` (a servicer's method) with malformed requests refused and its
    exceptions answered (:func:`answer`), in the shape grpc.aio expects for it (a
    coroutine function, or an async generator function for a response stream)."""
    name = method.full_name
    streamed_requests = method.client_streaming

    if inspect.isasyncgenfunction(behavior):

        async def generating(request: Any, context: Context) -> AsyncIterator[Any]:
            if streamed_requests:
                request = _checked_stream(request, context)
            else:
                await refuse_malformed(context, request)
            responses = behavior(request, context)
            try:
                async for response in responses:
                    yield response
            except Exception as exc:
                await answer(context, exc, name)
            finally:
                await responses.aclose()

        return generating

    async def calling(request: Any, context: Context) -> Any:
        if streamed_requests:
            request = _checked_stream(request, context)
        else:
            await refuse_malformed(context, request)
        try:
            return await behavior(request, context)
        except Exception as exc:
            await answer(context, exc, name)

    return calling


def guarded_service(service: ServiceDescriptor, servicer: object) -> dict[str, Any]:
    """Every method of ``service``, served by ``servicer``'s method of the same name, as
    grpc method handlers (by method name) with checked requests and honest statuses."""
    handlers: dict[str, Any] = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        message_rules.prepare(request_class)  # now, not at the first call
        response_class = message_factory.GetMessageClass(method.output_type)
        behavior = _guard(method, getattr(servicer, method.name))
        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            behavior,
            request_deserializer=checked_deserializer(request_class),
            response_serializer=response_class.SerializeToString,
        )
    return handlers


def serve_guarded(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Add ``servicer`` to ``server`` for ``service``, every method guarded (what the
    generated ``add_..._to_server`` does, with :func:`guarded_service`'s handlers)."""
    handlers = guarded_service(service, servicer)
    generic = grpc.method_handlers_generic_handler(service.full_name, handlers)
    server.add_generic_rpc_handlers((generic,))
    # Registered handlers skip grpc's lookup by path; absent from grpc.aio's type stubs.
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[attr-defined]
