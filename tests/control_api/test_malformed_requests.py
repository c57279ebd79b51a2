"""Malformed requests to the operator API (issue #14): refused INVALID_ARGUMENT naming the
field before any store or the audit log sees them, and errors answered honestly (a value
the database refuses is the request's fault; anything unexpected is INTERNAL with a
request id and nothing of the exception). Real HTTPS (Connect JSON) and gRPC against a
running deployment."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

from fleetd.storage import audit
from fleetd.storage.errors import DATA_REFUSED
from fleetd.storage.postgres import connect
from fleetd.v1 import binary_pb2, device_pb2
from tests.support.deployment import Deployment, running_deployment
from tests.support.http import Response, connect_json, raw_post
from tests.support.storage import StorageServers, drop_database, fresh_database

DEVICES = "fleetd.v1.DeviceService"
UPDATES = "fleetd.v1.UpdateService"
BINARIES = "fleetd.v1.BinaryService"
INTERNALS = re.compile(
    r"[A-Z]\w*(?:Error|Exception)\b|asyncpg|Traceback|SELECT|INSERT|relation|object is not"
)
"""What no answer may show: an exception's class, a driver, SQL, Python's own words."""


@dataclass(frozen=True, slots=True)
class Api:
    deployment: Deployment
    pool: asyncpg.Pool

    async def call(self, method: str, body: dict[str, Any]) -> Response:
        return await connect_json(
            self.deployment.api_endpoint,
            method,
            body,
            ca_pem=self.deployment.ca_pem,
            api_key=self.deployment.admin_api_key,
        )

    async def post(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        reply = await raw_post(
            f"{self.deployment.api_endpoint}/{method}",
            body,
            {"content-type": "application/json", "x-api-key": self.deployment.admin_api_key},
            self.deployment.ca_pem,
        )
        parsed: dict[str, Any] = json.loads(reply.body)
        return reply.status, parsed

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            f"127.0.0.1:{self.deployment.api_port}",
            grpc.ssl_channel_credentials(root_certificates=self.deployment.ca_pem),
        )

    async def grpc_raw(self, method: str, body: bytes) -> grpc.aio.AioRpcError:
        """Send ``body`` as the request message's bytes; the error it was answered with."""
        async with self.channel() as channel:
            call = channel.unary_unary(
                f"/{method}",
                request_serializer=lambda data: data,
                response_deserializer=lambda data: data,
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(
                    body, metadata=(("x-api-key", self.deployment.admin_api_key),), timeout=10
                )
        return refused.value


@pytest.fixture(scope="module")
async def api(servers: StorageServers) -> AsyncIterator[Api]:
    url = await fresh_database(servers)
    try:
        async with running_deployment(url, servers.redis_url) as dep:
            pool = await connect(url, run_migrations=False)
            try:
                yield Api(dep, pool)
            finally:
                await pool.close()
    finally:
        await drop_database(servers, url)


def _invalid(response: Response, field: str) -> str:
    """The refusal's message, after checking it is INVALID_ARGUMENT naming ``field``."""
    assert response.status == 400, response.body
    assert response.body["code"] == "invalid_argument", response.body
    message: str = response.body["message"]
    assert field in message, message
    assert not INTERNALS.search(message), message
    return message


async def _unfinished(pool: asyncpg.Pool) -> tuple[audit.Record, ...]:
    async with pool.acquire() as conn:
        verdict = await audit.verify(conn)
    assert verdict.first_bad_seq is None, verdict.problem
    return verdict.unfinished


# --- NUL characters ---------------------------------------------------------------------


async def test_nul_in_device_id_is_invalid_argument_not_internal(api: Api) -> None:
    refused = await api.call(f"{DEVICES}/GetDevice", {"device_id": "a\u0000b"})
    assert _invalid(refused, "device_id") == "device_id must not contain NUL characters"


def _register_strings() -> list[str]:
    """Every string field RegisterDevice takes, as a path into its JSON body."""
    request = device_pb2.RegisterDeviceRequest.DESCRIPTOR
    paths = [
        f.name
        for f in request.fields
        if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
    ]
    paths += [
        f"system_info.{f.name}"
        for f in device_pb2.SystemInfo.DESCRIPTOR.fields
        if f.type == FieldDescriptor.TYPE_STRING
    ]
    return paths


@pytest.mark.parametrize("path", _register_strings())
async def test_nul_in_register_device_fields_is_invalid_argument(api: Api, path: str) -> None:
    body: dict[str, Any] = {"device_id": "nul-probe", "device_name": "probe"}
    outer, _, inner = path.partition(".")
    if inner:
        body[outer] = {inner: "x\u0000y"}
    else:
        body[outer] = "x\u0000y"
    _invalid(await api.call(f"{DEVICES}/RegisterDevice", body), path)
    assert await api.pool.fetchval("SELECT count(*) FROM devices") == 0


async def test_nul_in_register_device_metadata_key_and_value_is_invalid_argument(
    api: Api,
) -> None:
    key = {"device_id": "nul-probe", "metadata": {"rack\u0000": "4"}}
    _invalid(await api.call(f"{DEVICES}/RegisterDevice", key), "metadata key")
    value = {"device_id": "nul-probe", "metadata": {"rack": "4\u0000"}}
    _invalid(await api.call(f"{DEVICES}/RegisterDevice", value), "metadata['rack']")


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        (f"{DEVICES}/DeleteDevice", {"device_id": "a\u0000"}, "device_id"),
        (f"{DEVICES}/Heartbeat", {"device_id": "a\u0000"}, "device_id"),
        (f"{DEVICES}/CreateEnrollmentToken", {"description": "a\u0000"}, "description"),
        (f"{DEVICES}/CreateEnrollmentToken", {"tags": ["a\u0000"]}, "tags[0]"),
        (f"{DEVICES}/RevokeEnrollmentToken", {"token_id": "a\u0000"}, "token_id"),
        (f"{UPDATES}/GetUpdate", {"update_id": "a\u0000"}, "update_id"),
        (f"{UPDATES}/ListDeployments", {"update_id": "a\u0000"}, "update_id"),
        (f"{UPDATES}/ListDeployments", {"filter": "state = 'a\u0000'"}, "filter"),
        (f"{UPDATES}/ListUpdates", {"filter": "name = 'a\u0000'"}, "filter"),
        (f"{DEVICES}/ListDevices", {"order_by": "name\u0000"}, "order_by"),
    ],
)
async def test_nul_elsewhere_is_invalid_argument_naming_the_field(
    api: Api, method: str, body: dict[str, Any], field: str
) -> None:
    _invalid(await api.call(method, body), field)


async def test_nul_in_list_updates_filter_is_invalid_argument(api: Api) -> None:
    refused = await api.call(f"{UPDATES}/ListUpdates", {"filter": "name = 'a\u0000b'"})
    assert _invalid(refused, "filter") == "filter must not contain NUL characters"


async def test_nul_in_download_binary_id_is_invalid_argument(api: Api) -> None:
    # A server stream: the refusal comes before any message, over gRPC.
    request = binary_pb2.DownloadBinaryRequest(binary_id="b\x00").SerializeToString()
    async with api.channel() as channel:
        call = channel.unary_stream(
            f"/{BINARIES}/DownloadBinary",
            request_serializer=lambda data: data,
            response_deserializer=lambda data: data,
        )
        stream = call(request, metadata=(("x-api-key", api.deployment.admin_api_key),))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stream:
                pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "binary_id must not contain NUL characters"


# --- numbers and sizes ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_in_system_info_are_refused(api: Api, value: str) -> None:
    body = {"device_id": "nan-probe", "system_info": {"disk_gb": value}}
    refused = await api.call(f"{DEVICES}/RegisterDevice", body)
    assert _invalid(refused, "system_info.disk_gb") == (
        "system_info.disk_gb must be a finite number"
    )


async def test_huge_disk_in_system_info_is_refused(api: Api) -> None:
    body = {"device_id": "big-probe", "system_info": {"disk_gb": 1e308}}
    _invalid(await api.call(f"{DEVICES}/RegisterDevice", body), "system_info.disk_gb")


async def test_negative_memory_in_system_info_is_refused(api: Api) -> None:
    body = {"device_id": "neg-probe", "system_info": {"memory_mb": -1, "cpu_cores": -2}}
    refused = await api.call(f"{DEVICES}/RegisterDevice", body)
    assert _invalid(refused, "must be between 0 and").startswith("system_info.")
    assert await api.pool.fetchval("SELECT count(*) FROM devices") == 0


async def test_megabyte_string_is_refused(api: Api) -> None:
    body = {"device_id": "mb-probe", "device_name": "x" * 1_000_000}
    refused = await api.call(f"{DEVICES}/RegisterDevice", body)
    assert _invalid(refused, "device_name") == "device_name is longer than 1024 characters"
    assert await api.pool.fetchval("SELECT count(*) FROM devices") == 0


# --- bodies that are not messages ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b"null", "not null"),
        (b"123", "not a number"),
        (b"true", "not a boolean"),
        (b'"device"', "not a string"),
        (b"[]", "not an array"),
    ],
)
async def test_null_body_is_invalid_argument_without_exception_names(
    api: Api, body: bytes, shown: str
) -> None:
    status, answer = await api.post(f"{DEVICES}/RegisterDevice", body)
    assert (status, answer["code"]) == (400, "invalid_argument"), answer
    assert answer["message"] == (
        f"the request body must be a JSON object (a fleetd.v1.RegisterDeviceRequest), {shown}"
    )


async def test_a_string_where_a_message_belongs_is_invalid_argument(api: Api) -> None:
    refused = await api.call(
        f"{DEVICES}/RegisterDevice", {"device_id": "shape-probe", "system_info": "x"}
    )
    _invalid(refused, "system_info must be a JSON object")
    assert await api.pool.fetchval("SELECT count(*) FROM devices") == 0


@pytest.mark.parametrize(
    "body", [b"\xff\xfe{}", b"{bad", b'{"device_id": 5}', b'{"device_id": {}}']
)
async def test_undecodable_json_is_invalid_argument_in_plain_words(api: Api, body: bytes) -> None:
    status, answer = await api.post(f"{DEVICES}/GetDevice", body)
    assert (status, answer["code"]) == (400, "invalid_argument"), answer
    assert not INTERNALS.search(answer["message"]), answer


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\xff\xff", "its protobuf wire format is corrupt"),
        (b"\x0a\x02\xff\xfe", "a string in it is not valid UTF-8"),
    ],
)
async def test_undecodable_protobuf_over_grpc_is_invalid_argument(
    api: Api, body: bytes, words: str
) -> None:
    refused = await api.grpc_raw(f"{DEVICES}/GetDevice", body)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details() == f"the request is not a valid fleetd.v1.GetDeviceRequest: {words}"


# --- the audit log ----------------------------------------------------------------------


async def test_refused_call_leaves_no_audit_entry_without_outcome(api: Api) -> None:
    before = await api.pool.fetchval("SELECT count(*) FROM audit_log")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("RegisterDevice", {"device_id": "a\u0000b"}),
        ("DeleteDevice", {"device_id": "a\u0000b"}),
        ("RevokeEnrollmentToken", {"token_id": "a\u0000b"}),
        ("CreateEnrollmentToken", {"metadata": {"k\u0000": "v"}}),
    ]
    for method, body in calls:
        _invalid(await api.call(f"{DEVICES}/{method}", body), "must not contain NUL")
    # Refused while decoding, before the call started: nothing to record, nothing open.
    assert await api.pool.fetchval("SELECT count(*) FROM audit_log") == before
    assert await _unfinished(api.pool) == ()


async def test_a_call_that_started_always_gets_its_outcome(api: Api) -> None:
    # Refused by the handler (after its start was recorded): the outcome follows.
    refused = await api.call(f"{DEVICES}/DeleteDevice", {"device_id": "no-such-device"})
    assert refused.status == 404, refused.body
    rows = await api.pool.fetch(
        "SELECT outcome FROM audit_log WHERE request_id = $1 ORDER BY seq",
        refused.headers["x-request-id"],
    )
    assert [r["outcome"] for r in rows] == ["STARTED", "NOT_FOUND"]
    assert await _unfinished(api.pool) == ()


# --- errors the request did not cause ---------------------------------------------------


async def test_a_value_the_database_refuses_is_invalid_argument_without_its_text(
    api: Api,
) -> None:
    # A value that passes every edge rule but that PostgreSQL refuses (SQLSTATE 22023).
    await api.pool.execute(
        """CREATE FUNCTION devices_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'secret detail of devices_refuse'
                     USING ERRCODE = '22023'; END; $$;
           CREATE TRIGGER devices_refuse BEFORE INSERT ON devices
               FOR EACH ROW EXECUTE FUNCTION devices_refuse();"""
    )
    try:
        refused = await api.call(f"{DEVICES}/RegisterDevice", {"device_id": "data-probe"})
    finally:
        await api.pool.execute(
            "DROP TRIGGER devices_refuse ON devices; DROP FUNCTION devices_refuse()"
        )
    assert refused.status == 400, refused.body
    assert (refused.body["code"], refused.body["message"]) == ("invalid_argument", DATA_REFUSED)
    assert await _unfinished(api.pool) == ()


async def test_unexpected_error_is_internal_with_request_id_and_no_exception_text(
    api: Api,
) -> None:
    await api.pool.execute("ALTER TABLE devices RENAME TO devices_hidden")
    try:
        failed = await api.call(f"{DEVICES}/GetDevice", {"device_id": "rpi-001"})
    finally:
        await api.pool.execute("ALTER TABLE devices_hidden RENAME TO devices")
    assert failed.status == 500, failed.body
    request_id = failed.headers["x-request-id"]
    assert failed.body["code"] == "internal"
    assert failed.body["message"] == (
        f"internal error (request id {request_id}); quote it to the operator"
    )
    assert "devices_hidden" not in json.dumps(failed.body)


async def test_a_valid_call_still_works_after_the_refusals(api: Api) -> None:
    registered = await api.call(
        f"{DEVICES}/RegisterDevice",
        {"device_id": "rpi-ok", "device_name": "Küche", "system_info": {"disk_gb": 32.5}},
    )
    assert registered.status == 200, registered.body
    assert await _unfinished(api.pool) == ()
