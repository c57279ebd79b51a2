"""RBAC: every role against every served method, over real gRPC.

Allowed calls may still fail for other reasons (empty requests, UNIMPLEMENTED); what
matters is that no allowed call is denied and no denied call gets past authorisation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from control_api.permissions import (
    ALL_PERMISSIONS,
    METHOD_PERMISSIONS,
    ROLE_PERMISSIONS,
    TOKEN_AUTHENTICATED_METHODS,
)
from fleetd.storage.bearer_tokens import create_api_key
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.postgres import connect
from fleetd.v1 import analytics_pb2, binary_pb2, device_pb2, update_pb2
from tests.support.deployment import Deployment, running_deployment
from tests.support.storage import StorageServers, drop_database, fresh_database

AUTH_CODES = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
SEED_PERMISSIONS = {
    "device:register",
    "device:list",
    "device:view",
    "device:update",
    "device:delete",
    "device:heartbeat",
    "update:create",
    "update:deploy",
    "update:view",
    "update:rollback",
    "analytics:view",
    "analytics:export",
}


def _served_methods() -> dict[str, tuple[bool, bool]]:
    """Every method of the four fleetd.v1 services: (client streaming, server streaming)."""
    methods: dict[str, tuple[bool, bool]] = {}
    for module in (device_pb2, update_pb2, analytics_pb2, binary_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                methods[f"{service.full_name}/{m.name}"] = (
                    m.client_streaming,
                    m.server_streaming,
                )
    return methods


def test_permission_table_covers_every_served_method_exactly() -> None:
    assert set(METHOD_PERMISSIONS) == set(_served_methods())
    assert set(METHOD_PERMISSIONS.values()) <= ALL_PERMISSIONS
    assert SEED_PERMISSIONS <= ALL_PERMISSIONS
    for role, permissions in ROLE_PERMISSIONS.items():
        assert permissions <= ALL_PERMISSIONS, role


@pytest.fixture(scope="module")
async def keyed_deployment(
    servers: StorageServers,
) -> AsyncIterator[tuple[Deployment, dict[str, str]]]:
    url = await fresh_database(servers)
    async with running_deployment(url, servers.redis_url) as dep:
        pool = await connect(url, run_migrations=False)
        try:
            async with pool.acquire() as conn:
                await insert_device(
                    conn, NewDevice("dev-1", "default", "d", "raspberry-pi", "1", {}, {})
                )
            keys = {"admin": dep.admin_api_key}
            for role in ("operator", "viewer", "service"):
                keys[role] = (await create_api_key(pool, role, role)).token
            keys["device"] = (
                await create_api_key(pool, "device", "device", device_id="dev-1")
            ).token
        finally:
            await pool.close()
        yield dep, keys
    await drop_database(servers, url)


async def _call(
    channel: grpc.aio.Channel, method: str, streams: tuple[bool, bool], key: str | None
) -> grpc.StatusCode:
    metadata = (("x-api-key", key),) if key else ()
    path = f"/{method}"
    identity = (lambda b: b), (lambda b: b)
    try:
        client_streaming, server_streaming = streams
        if client_streaming:
            call = channel.stream_unary(path, *identity)

            async def nothing() -> AsyncIterator[bytes]:
                if False:  # an empty request stream
                    yield b""

            await call(nothing(), metadata=metadata, timeout=10)
        elif server_streaming:
            stream = channel.unary_stream(path, *identity)(b"", metadata=metadata, timeout=3)
            async for _ in stream:
                break
        else:
            await channel.unary_unary(path, *identity)(b"", metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("role", ["admin", "operator", "service", "viewer", "device", None])
async def test_every_role_against_every_method(
    keyed_deployment: tuple[Deployment, dict[str, str]], role: str | None
) -> None:
    dep, keys = keyed_deployment
    creds = grpc.ssl_channel_credentials(root_certificates=dep.ca_pem)
    unexpected: list[str] = []
    async with grpc.aio.secure_channel(f"127.0.0.1:{dep.api_port}", creds) as channel:
        for method, streams in sorted(_served_methods().items()):
            code = await _call(channel, method, streams, keys[role] if role else None)
            if role is None:
                expected_denied = True
                want = {grpc.StatusCode.UNAUTHENTICATED}
            else:
                expected_denied = METHOD_PERMISSIONS[method] not in ROLE_PERMISSIONS[role]
                want = {grpc.StatusCode.PERMISSION_DENIED}
            if expected_denied and code not in want:
                unexpected.append(f"{method}: expected denial, got {code.name}")
            if not expected_denied and code in AUTH_CODES:
                unexpected.append(f"{method}: expected allowed, got {code.name}")
    assert unexpected == []


def test_only_registration_admits_token_authenticated_callers() -> None:
    assert {"fleetd.v1.DeviceService/RegisterDevice"} == TOKEN_AUTHENTICATED_METHODS
