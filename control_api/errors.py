"""Errors as the seed describes them, carried as valid Connect/gRPC errors.

Every error that leaves the API carries a ``google.rpc.ErrorInfo`` detail (reason = the
code's name, domain ``fleetd.v1``) whose metadata holds ``request_id`` (also sent as the
``x-request-id`` header), ``user_id`` (the caller's key or subject id, when known) and,
for denials, ``permission``. Generated clients decode it like any gRPC error detail.

Methods raise ConnectErrors (``invalid()`` for bad input) and let storage errors pass:
the auth interceptor (control_api/auth.py) answers every error on the way out, turning
a store outage (``fleetd.storage.errors.STORE_DOWN``) into UNAVAILABLE with
:func:`store_unavailable` and a value the database refused (``DATA_ERRORS``) into
INVALID_ARGUMENT with :func:`data_refused`, here and nowhere else.
"""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from protobuf.wkt import Any as AnyPb

from fleetd.storage.errors import DATA_REFUSED, StoreUnavailable

DOMAIN = "fleetd.v1"

STORE_UNAVAILABLE = (
    "a store (PostgreSQL, Redis or the blob disk) is unavailable right now; retry shortly"
)
"""The UNAVAILABLE message for a store outage whose exception says nothing fit to show."""


def _detail(message: Message) -> ErrorDetail:
    # connectrpc's ErrorDetail takes protobuf-py messages; wrap ours as a packed Any.
    return ErrorDetail(
        AnyPb(
            type_url=f"type.googleapis.com/{message.DESCRIPTOR.full_name}",
            value=message.SerializeToString(),
        )
    )


def error_info(
    code: Code, *, request_id: str, user_id: str = "", permission: str = ""
) -> error_details_pb2.ErrorInfo:
    metadata = {"request_id": request_id}
    if user_id:
        metadata["user_id"] = user_id
    if permission:
        metadata["permission"] = permission
    return error_details_pb2.ErrorInfo(reason=code.name, domain=DOMAIN, metadata=metadata)


def api_error(
    code: Code,
    message: str,
    *,
    request_id: str,
    user_id: str = "",
    permission: str = "",
) -> ConnectError:
    """A ConnectError with the ErrorInfo detail described above."""
    info = error_info(code, request_id=request_id, user_id=user_id, permission=permission)
    return ConnectError(code, message, details=[_detail(info)])


def with_info(error: ConnectError, *, request_id: str, user_id: str = "") -> ConnectError:
    """``error`` again, with the ErrorInfo detail added unless it already has details."""
    if error.details:
        return error
    return api_error(error.code, error.message, request_id=request_id, user_id=user_id)


def invalid(message: str) -> ConnectError:
    """INVALID_ARGUMENT with ``message``: what was wrong and, where useful, what to send.

    The ErrorInfo detail is added on the way out (``with_info``, in the auth interceptor),
    so every refusal of bad input is built here and nowhere else.
    """
    return ConnectError(Code.INVALID_ARGUMENT, message)


def store_unavailable(error: BaseException, *, request_id: str, user_id: str = "") -> ConnectError:
    """UNAVAILABLE for a call that a store outage stopped (``error`` is in STORE_DOWN).

    A ``StoreUnavailable`` raised by storage carries a message written for the caller
    (say, where to resume a stream) and is shown; a driver's own exception is not (it
    names hosts and sockets), so the caller reads STORE_UNAVAILABLE instead.
    """
    message = str(error) if isinstance(error, StoreUnavailable) else ""
    return api_error(
        Code.UNAVAILABLE, message or STORE_UNAVAILABLE, request_id=request_id, user_id=user_id
    )


def data_refused(*, request_id: str, user_id: str = "") -> ConnectError:
    """INVALID_ARGUMENT for a value the database refused (one of ``DATA_ERRORS``): the
    request's fault, told without the database's text (which may quote SQL or rows)."""
    return api_error(Code.INVALID_ARGUMENT, DATA_REFUSED, request_id=request_id, user_id=user_id)
