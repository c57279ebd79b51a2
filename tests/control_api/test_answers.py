"""What the operator API answers for each kind of error: a store outage is UNAVAILABLE
(its driver's text kept out, a storage message shown), anything unexpected INTERNAL, and
every answer carries ErrorInfo with the request id."""

from __future__ import annotations

import asyncpg
import pytest
import redis.exceptions
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from control_api.auth import answer
from control_api.errors import STORE_UNAVAILABLE, invalid
from fleetd.storage.errors import StoreUnavailable

METHOD = "fleetd.v1.DeviceService/ListDevices"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("[Errno 111] Connect call failed ('10.0.0.7', 5432)"),
        TimeoutError(),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        redis.exceptions.ConnectionError("Error 111 connecting to 10.0.0.8:6379"),
    ],
)
def test_a_store_outage_is_unavailable_without_the_drivers_text(error: Exception) -> None:
    answered = answer(error, METHOD, "req-1", "alice")
    assert answered.code == Code.UNAVAILABLE
    assert answered.message == STORE_UNAVAILABLE
    assert answered.details


def test_storage_messages_are_shown() -> None:
    answered = answer(StoreUnavailable("the event stream was interrupted"), METHOD, "req-2")
    assert (answered.code, answered.message) == (
        Code.UNAVAILABLE,
        "the event stream was interrupted",
    )


def test_an_unexpected_error_is_internal_naming_the_request_id() -> None:
    answered = answer(ValueError("secret detail"), METHOD, "req-3")
    assert answered.code == Code.INTERNAL
    assert "req-3" in answered.message and "secret" not in answered.message


def test_a_connect_error_stands_with_error_info_added() -> None:
    refused = invalid("page_size must not be negative")
    answered = answer(refused, METHOD, "req-4")
    assert (answered.code, answered.message) == (refused.code, refused.message)
    assert answered.details
    assert answer(answered, METHOD, "req-4") is answered


def test_the_default_unimplemented_message_names_the_method() -> None:
    answered = answer(ConnectError(Code.UNIMPLEMENTED, "Not implemented"), METHOD, "req-5")
    assert answered.message == f"{METHOD} is not implemented by this server yet"
