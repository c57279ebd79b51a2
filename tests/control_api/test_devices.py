"""DeviceService over real HTTPS (Connect JSON, gRPC via grpcio and grpcurl) on pyvoy."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import asyncpg
import grpc
import pytest
from cryptography import x509
from google.rpc import error_details_pb2, status_pb2

import core_ext
from agent.credentials import generate_key_and_csr
from fleetd.storage.bearer_tokens import create_api_key
from fleetd.v1 import device_pb2, device_pb2_grpc
from tests.support.deployment import Deployment, running_deployment
from tests.support.http import connect_json, raw_post

LIST = "fleetd.v1.DeviceService/ListDevices"
REGISTER = "fleetd.v1.DeviceService/RegisterDevice"


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


async def _register(dep: Deployment, device_id: str) -> None:
    response = await connect_json(
        dep.api_endpoint,
        REGISTER,
        {"device_id": device_id, "device_name": device_id, "device_type": "raspberry-pi"},
        ca_pem=dep.ca_pem,
        api_key=dep.admin_api_key,
    )
    assert response.status == 200, response.body


async def _token(dep: Deployment, uses: int = 1) -> str:
    response = await connect_json(
        dep.api_endpoint,
        "fleetd.v1.DeviceService/CreateEnrollmentToken",
        {"ttl": "600s", "max_uses": uses},
        ca_pem=dep.ca_pem,
        api_key=dep.admin_api_key,
    )
    assert response.status == 200, response.body
    secret: str = response.body["secret"]
    return secret


async def test_enrolment_with_token_and_csr_binds_identity_in_certificate(
    deployment: Deployment,
) -> None:
    _, csr = generate_key_and_csr("rpi-001")
    response = await connect_json(
        deployment.api_endpoint,
        REGISTER,
        {
            "device_id": "rpi-001",
            "device_type": "raspberry-pi",
            "csr": csr.decode(),
            "enrollment_token": await _token(deployment),
        },
        ca_pem=deployment.ca_pem,
    )
    assert response.status == 200, response.body
    body = response.body
    assert body["deviceId"] == "rpi-001"
    assert body["apiKey"].startswith("fk_")
    assert body["registeredAt"]
    assert body["gatewayEndpoint"] == deployment.settings.gateway_endpoint
    identity = core_ext.extract_identity(body["certificate"].encode())
    assert (identity.device_id, identity.fleet) == ("rpi-001", "default")
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(deployment.ca_pem))


async def test_used_up_enrollment_token_is_refused(deployment: Deployment) -> None:
    token = await _token(deployment, uses=1)
    for device_id, expected in (("d1", 200), ("d2", 401)):
        _, csr = generate_key_and_csr(device_id)
        response = await connect_json(
            deployment.api_endpoint,
            REGISTER,
            {"device_id": device_id, "csr": csr.decode(), "enrollment_token": token},
            ca_pem=deployment.ca_pem,
        )
        assert response.status == expected, response.body
    assert response.body["code"] == "unauthenticated"
    assert "no uses left" in response.body["message"]


async def test_register_without_credentials_is_unauthenticated(deployment: Deployment) -> None:
    response = await connect_json(
        deployment.api_endpoint, REGISTER, {"device_id": "rpi-001"}, ca_pem=deployment.ca_pem
    )
    assert response.status == 401
    assert response.body["code"] == "unauthenticated"


async def test_duplicate_device_is_already_exists(deployment: Deployment) -> None:
    await _register(deployment, "rpi-001")
    response = await connect_json(
        deployment.api_endpoint,
        REGISTER,
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert response.status == 409
    assert response.body["code"] == "already_exists"


@pytest.mark.parametrize("device_id", ["-leading-dash", "has space", "x" * 129, "semi;colon"])
async def test_malformed_device_id_is_invalid_argument(
    deployment: Deployment, device_id: str
) -> None:
    response = await connect_json(
        deployment.api_endpoint,
        REGISTER,
        {"device_id": device_id},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert response.status == 400
    assert response.body["code"] == "invalid_argument"


async def test_viewer_may_list_but_not_register(deployment: Deployment, pool: asyncpg.Pool) -> None:
    viewer = await create_api_key(pool, "viewer", "read-only")
    listed = await connect_json(
        deployment.api_endpoint, LIST, {}, ca_pem=deployment.ca_pem, api_key=viewer.token
    )
    assert listed.status == 200
    denied = await connect_json(
        deployment.api_endpoint,
        REGISTER,
        {"device_id": "x"},
        ca_pem=deployment.ca_pem,
        api_key=viewer.token,
    )
    assert denied.status == 403
    assert "device:register" in denied.body["message"]
    (detail,) = denied.body["details"]
    assert detail["type"] == "google.rpc.ErrorInfo"
    info = error_details_pb2.ErrorInfo.FromString(base64.b64decode(detail["value"] + "=="))
    assert info.reason == "PERMISSION_DENIED"
    assert info.metadata["request_id"] == denied.headers["x-request-id"]
    assert info.metadata["user_id"] == viewer.id
    assert info.metadata["permission"] == "device:register"


async def test_client_request_id_is_echoed_and_carried_in_errors(deployment: Deployment) -> None:
    response = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "nope"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
        headers={"x-request-id": "abc123"},
    )
    assert response.status == 404
    assert response.headers["x-request-id"] == "abc123"
    info = error_details_pb2.ErrorInfo.FromString(
        base64.b64decode(response.body["details"][0]["value"] + "==")
    )
    assert info.metadata["request_id"] == "abc123"


async def test_grpc_errors_carry_error_info_in_status_details(deployment: Deployment) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds) as channel:
        stub = device_pb2_grpc.DeviceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListDevices(device_pb2.ListDevicesRequest(), timeout=10)
    metadata = cast("list[tuple[str, str | bytes]]", list(err.value.trailing_metadata() or ()))
    details = [
        value
        for key, value in metadata
        if key == "grpc-status-details-bin" and isinstance(value, bytes)
    ]
    status = status_pb2.Status.FromString(details[0])
    assert status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.domain == "fleetd.v1"
    assert info.metadata["request_id"]


async def test_wrong_api_key_is_unauthenticated(deployment: Deployment) -> None:
    response = await connect_json(
        deployment.api_endpoint,
        LIST,
        {},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key[:-2] + "xx",
    )
    assert response.status == 401


async def test_pages_cover_every_device_once_with_total_count(deployment: Deployment) -> None:
    for i in range(7):
        await _register(deployment, f"dev-{i}")
    seen: list[str] = []
    token = ""
    while True:
        response = await connect_json(
            deployment.api_endpoint,
            LIST,
            {"page_size": 3, "page_token": token},
            ca_pem=deployment.ca_pem,
            api_key=deployment.admin_api_key,
        )
        assert response.status == 200, response.body
        assert response.body["totalCount"] == 7
        seen += [d["id"] for d in response.body["devices"]]
        token = response.body.get("nextPageToken", "")
        if not token:
            break
    assert seen == [f"dev-{i}" for i in range(7)]


async def test_total_count_past_the_exact_limit_is_flagged_as_an_estimate(
    database_url: str, redis_url: str, pool: asyncpg.Pool
) -> None:
    async with running_deployment(database_url, redis_url, exact_count_limit=3) as dep:
        for i in range(5):
            await _register(dep, f"dev-{i}")
        await pool.execute("ANALYZE devices")
        estimated = await connect_json(
            dep.api_endpoint, LIST, {"page_size": 2}, ca_pem=dep.ca_pem, api_key=dep.admin_api_key
        )
        assert estimated.status == 200, estimated.body
        assert estimated.body["totalCountEstimated"] is True
        assert estimated.body["totalCount"] >= 4
        exact = await connect_json(
            dep.api_endpoint,
            LIST,
            {"filter": "id:dev-1,dev-2"},
            ca_pem=dep.ca_pem,
            api_key=dep.admin_api_key,
        )
        assert exact.body["totalCount"] == 2
        assert "totalCountEstimated" not in exact.body  # false: exact


async def test_tampered_page_token_is_invalid_argument(deployment: Deployment) -> None:
    for i in range(3):
        await _register(deployment, f"dev-{i}")
    first = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"page_size": 1},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    token = first.body["nextPageToken"]
    forged = ("A" if token[0] != "A" else "B") + token[1:]
    response = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"page_size": 1, "page_token": forged},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert response.status == 400
    assert "page_token" in response.body["message"]


async def test_get_device_and_unknown_device(deployment: Deployment) -> None:
    await _register(deployment, "rpi-001")
    found = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert found.status == 200
    assert found.body["device"]["id"] == "rpi-001"
    missing = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "nope"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert missing.status == 404


async def test_list_devices_over_grpc_with_generated_stubs(deployment: Deployment) -> None:
    await _register(deployment, "rpi-001")
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds) as channel:
        stub = device_pb2_grpc.DeviceServiceStub(channel)
        response = await stub.ListDevices(
            device_pb2.ListDevicesRequest(page_size=20),
            metadata=(("x-api-key", deployment.admin_api_key),),
            timeout=10,
        )
        assert [d.id for d in response.devices] == ["rpi-001"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListDevices(device_pb2.ListDevicesRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _grpcurl() -> str:
    return shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))


async def test_grpcurl_lists_devices_through_reflection(deployment: Deployment) -> None:
    await _register(deployment, "rpi-001")
    ca_file = deployment.settings.paths.ca_cert
    target = f"127.0.0.1:{deployment.api_port}"

    def run(*args: str) -> str:
        return subprocess.run(
            [_grpcurl(), "-cacert", str(ca_file), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout

    services = await asyncio.to_thread(run, target, "list")
    assert "fleetd.v1.DeviceService" in services.split()
    out = await asyncio.to_thread(
        run,
        "-H",
        f"X-API-Key: {deployment.admin_api_key}",
        "-d",
        '{"page_size": 20}',
        target,
        "fleetd.v1.DeviceService/ListDevices",
    )
    assert [d["id"] for d in json.loads(out)["devices"]] == ["rpi-001"]
    health = await asyncio.to_thread(run, target, "grpc.health.v1.Health/Check")
    assert json.loads(health) == {"status": "SERVING"}


async def test_enrollment_tokens_list_and_revoke(deployment: Deployment) -> None:
    secret = await _token(deployment, uses=2)
    listed = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/ListEnrollmentTokens",
        {},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert listed.status == 200, listed.body
    (token,) = listed.body["tokens"]
    assert token["maxUses"] == 2
    assert secret not in json.dumps(listed.body)  # secrets are shown once, at creation
    revoked = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/RevokeEnrollmentToken",
        {"token_id": token["id"]},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert revoked.status == 200
    assert revoked.body["token"]["revokedAt"]
    active = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/ListEnrollmentTokens",
        {},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert active.body.get("tokens", []) == []
    _, csr = generate_key_and_csr("late")
    refused = await connect_json(
        deployment.api_endpoint,
        REGISTER,
        {"device_id": "late", "csr": csr.decode(), "enrollment_token": secret},
        ca_pem=deployment.ca_pem,
    )
    assert refused.status == 401
    assert "revoked" in refused.body["message"]


def _grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


async def test_list_devices_over_grpc_web(deployment: Deployment) -> None:
    await _register(deployment, "rpi-001")
    body = _grpc_web_frame(device_pb2.ListDevicesRequest(page_size=5).SerializeToString())
    raw = await raw_post(
        f"{deployment.api_endpoint}/fleetd.v1.DeviceService/ListDevices",
        body,
        {
            "content-type": "application/grpc-web+proto",
            "x-api-key": deployment.admin_api_key,
        },
        deployment.ca_pem,
    )
    assert raw.status == 200
    # First frame: the response message; then a trailer frame (flag 0x80) with grpc-status.
    assert raw.body[0] == 0
    length = int.from_bytes(raw.body[1:5], "big")
    response = device_pb2.ListDevicesResponse.FromString(raw.body[5 : 5 + length])
    assert [d.id for d in response.devices] == ["rpi-001"]
    trailer = raw.body[5 + length :]
    assert trailer[0] == 0x80
    assert b"grpc-status:0" in trailer.replace(b" ", b"")


async def test_unknown_api_version_names_the_served_versions(deployment: Deployment) -> None:
    response = await connect_json(
        deployment.api_endpoint,
        "fleetd.v2.DeviceService/ListDevices",
        {},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert response.status == 501
    assert response.body["code"] == "unimplemented"
    assert "fleetd.v1" in response.body["message"]
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds) as channel:
        call = channel.unary_unary("/fleetd.v2.DeviceService/ListDevices", lambda b: b, lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "fleetd.v2 is not served" in (err.value.details() or "")


async def test_x_debug_gives_admins_the_timeline_and_sql(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    await _register(deployment, "rpi-001")
    response = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
        headers={"x-debug": "true"},
    )
    assert response.status == 200
    trace = json.loads(response.headers["x-debug"])
    assert trace["request_id"] == response.headers["x-request-id"]
    assert any("FROM devices" in q["query"] for q in trace["sql"])
    assert trace["timeline"][-1][1] == "handler finished"
    viewer = await create_api_key(pool, "viewer", "v")
    plain = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-001"},
        ca_pem=deployment.ca_pem,
        api_key=viewer.token,
        headers={"x-debug": "true"},
    )
    assert plain.status == 200
    assert "x-debug" not in plain.headers


async def test_get_device_with_metrics_and_health(deployment: Deployment) -> None:
    await _register(deployment, "rpi-001")
    response = await connect_json(
        deployment.api_endpoint,
        "fleetd.v1.DeviceService/GetDevice",
        {"device_id": "rpi-001", "include_metrics": True, "include_health": True},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert response.status == 200
    assert response.body["metrics"]["deviceId"] == "rpi-001"
    health = response.body["health"]
    assert health["status"] == "UNREACHABLE"  # registered, never heartbeated
    assert {c["name"] for c in health["checks"]} >= {"heartbeat", "certificate"}


async def test_order_by_sorts_and_page_tokens_are_tied_to_their_ordering(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    for i in range(5):
        await _register(deployment, f"dev-{i}")
    await pool.execute(
        "UPDATE devices SET cpu_usage = (substr(device_id, 5)::int * 10) % 30, "
        "last_seen = now() - make_interval(secs => substr(device_id, 5)::int)"
    )
    listed = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"page_size": 2, "order_by": "cpu_usage DESC, last_seen DESC"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert listed.status == 200, listed.body
    assert [d["id"] for d in listed.body["devices"]] == ["dev-2", "dev-1"]
    token = listed.body["nextPageToken"]
    rest = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"page_size": 10, "order_by": "cpu_usage DESC, last_seen DESC", "page_token": token},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert [d["id"] for d in rest.body["devices"]] == ["dev-4", "dev-0", "dev-3"]
    other = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"page_size": 10, "order_by": "name ASC", "page_token": token},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert other.status == 400
    bad = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"order_by": "secret DESC"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert bad.status == 400
    assert "unknown field" in bad.body["message"]


async def test_filter_selects_devices_and_bad_filters_name_the_position(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    for i in range(4):
        await _register(deployment, f"dev-{i}")
    await pool.execute(
        "UPDATE devices SET device_type = CASE WHEN device_id IN ('dev-0', 'dev-1') "
        "THEN 'raspberry-pi' ELSE 'esp32' END, status = 'online', cpu_usage = 85 "
        "WHERE device_id <> 'dev-3'"
    )
    listed = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"page_size": 20, "filter": "type:raspberry-pi AND status:online AND cpu_usage:>80"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert listed.status == 200, listed.body
    assert [d["id"] for d in listed.body["devices"]] == ["dev-0", "dev-1"]
    assert listed.body["totalCount"] == 2
    negated = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"filter": "NOT status:online"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert [d["id"] for d in negated.body["devices"]] == ["dev-3"]
    bad = await connect_json(
        deployment.api_endpoint,
        LIST,
        {"filter": "status:online AND colour:red"},
        ca_pem=deployment.ca_pem,
        api_key=deployment.admin_api_key,
    )
    assert bad.status == 400
    assert "character 18" in bad.body["message"]
