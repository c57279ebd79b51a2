"""CreateUpdate, GetUpdate and ListUpdates against a real deployment (pyvoy, PostgreSQL,
Redis, TLS) over gRPC; every artifact kind, content by binary and by URL, container tags
resolved against a registry double; the signed targets checked by python-tuf's ngclient
from the root a device pins; and every refusal leaves nothing behind."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import json_format

from agent.tuf_fetcher import AgentFetcher
from fleetd.device.v1 import agent_pb2
from fleetd.storage.updates import assignment_templates
from fleetd.v1 import update_pb2, update_pb2_grpc
from tests.support.binaries import store_binary
from tests.support.deployment import Deployment, running_deployment
from tests.support.file_server import FileServer, file_server
from tests.support.oci_registry import Registry, oci_registry
from tests.support.tuf_client import updater
from tests.support.waiting import free_port

FIRMWARE = b"\x7fELF firmware 2.0.0 for the raspberry pi\n" * 500
MODEL = b"ONNX detector weights\n" * 300


@pytest.fixture
def registry() -> Iterator[Registry]:
    with oci_registry() as reg:
        yield reg


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        yield server


@pytest.fixture
async def deployment(
    database_url: str, redis_url: str, registry: Registry, files: FileServer
) -> AsyncIterator[Deployment]:
    # Both servers are on loopback, which server-side fetches refuse unless the operator
    # allowlists it (tests/control_api/test_outbound_refusals.py): named here explicitly.
    async with running_deployment(
        database_url,
        redis_url,
        insecure_registries=(registry.host,),
        outbound_allow=(registry.host, files.host),
    ) as dep:
        yield dep


class Api:
    """UpdateService over a real gRPC channel (grpcio), as the admin."""

    def __init__(self, dep: Deployment, channel: grpc.aio.Channel) -> None:
        self.dep = dep
        self.stub = update_pb2_grpc.UpdateServiceStub(channel)
        self.metadata = (("x-api-key", dep.admin_api_key),)

    async def create(self, body: dict[str, Any]) -> update_pb2.CreateUpdateResponse:
        request = json_format.ParseDict(body, update_pb2.CreateUpdateRequest())
        response: update_pb2.CreateUpdateResponse = await self.stub.CreateUpdate(
            request, metadata=self.metadata
        )
        return response

    async def refused(self, body: dict[str, Any]) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.create(body)
        return err.value.code(), err.value.details() or ""


@pytest.fixture
async def api(deployment: Deployment) -> AsyncIterator[Api]:
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
    async with grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds) as channel:
        yield Api(deployment, channel)


def _sha(content: bytes) -> str:
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def _verified_download(dep: Deployment, workdir: Path, path: str) -> tuple[bytes, dict[str, Any]]:
    """What a device does: pin the served root, refresh, download and verify ``path``."""
    # Read as an operator (update:view): the repository is not public (docs/tuf.md).
    fetcher = AgentFetcher(dep.settings.paths.ca_cert, headers={"X-API-Key": dep.admin_api_key})
    root = b"".join(fetcher.fetch(f"{dep.api_endpoint}/tuf/root.json"))
    client = updater(workdir, root, fetcher, f"{dep.api_endpoint}/tuf")
    client.refresh()
    info = client.get_targetinfo(path)
    assert info is not None, f"{path} is not a signed target"
    custom: dict[str, Any] = info.custom
    return Path(client.download_target(info)).read_bytes(), custom


async def _stored(pool: asyncpg.Pool) -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM updates"),
        await pool.fetchval("SELECT count(*) FROM update_artifacts"),
        await pool.fetchval("SELECT count(*) FROM tuf_targets"),
    )


def _blob_files(dep: Deployment) -> set[str]:
    root = dep.settings.paths.blobs
    return {p.name for p in root.glob("??/*")} if root.exists() else set()


async def test_file_artifact_from_a_binary_is_a_signed_target_a_device_verifies(
    api: Api, deployment: Deployment, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    binary = await store_binary(
        pool, deployment.settings.paths.blobs, FIRMWARE, name="firmware-2.0.0.bin"
    )
    created = await api.create(
        {
            "name": "Firmware Update v2.0",
            "version": "2.0.0",
            "description": "Security patches",
            "artifacts": [
                {
                    "platform": "raspberry-pi",
                    "binary_id": binary.binary_id,
                    "kind": "FILE",
                    "checksum": _sha(FIRMWARE),
                    "size_bytes": len(FIRMWARE),
                }
            ],
            "strategy": {"type": "ROLLING", "max_parallel": 10, "max_failure_percentage": 5},
            "metadata": {"channel": "stable"},
        }
    )
    update = created.update
    assert created.update_id == update.id and update.id.startswith("update-")
    assert created.created_at == update.created_at and update.created_by
    (artifact,) = update.artifacts
    assert artifact.name == "Firmware-Update-v2.0" and artifact.version == "2.0.0"
    assert artifact.kind == update_pb2.Artifact.FILE and artifact.id
    assert artifact.tuf_target_path == (
        "Firmware-Update-v2.0/2.0.0/raspberry-pi/r1/firmware-2.0.0.bin"
    )
    assert artifact.checksum == _sha(FIRMWARE) and artifact.size_bytes == len(FIRMWARE)
    assert update.strategy.max_parallel == 10 and update.metadata == {"channel": "stable"}

    content, custom = await asyncio.to_thread(
        _verified_download, deployment, tmp_path, artifact.tuf_target_path
    )
    assert content == FIRMWARE
    assert custom == {
        "hardware": "raspberry-pi",
        "release_counter": 1,
        "kind": "file",
        "name": "Firmware-Update-v2.0",
    }
    audited = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE method = $1 AND target = $2 AND outcome = 'OK'",
        "fleetd.v1.UpdateService/CreateUpdate",
        update.id,
    )
    assert audited == 1


async def test_url_artifact_is_fetched_once_and_signed_for_every_platform(
    api: Api, deployment: Deployment, files: FileServer, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    url = files.serve("/models/detector%20v3.onnx", MODEL)
    created = await api.create(
        {
            "name": "detector",
            "version": "3.1.0",
            "artifacts": [
                {
                    "url": url,
                    "checksum": _sha(MODEL),
                    "size_bytes": len(MODEL),
                    "kind": "MODEL",
                    "name": "detector-model",
                    "config": {"destination_path": "/var/lib/models/d.onnx"},
                }
            ],
        }
    )
    (artifact,) = created.update.artifacts
    assert files.requests == ["/models/detector%20v3.onnx"]
    assert artifact.tuf_target_path == "detector-model/3.1.0/any/r1/detector-v3.onnx"
    assert artifact.url == url and artifact.config.file_mode == 0o644
    content, custom = await asyncio.to_thread(
        _verified_download, deployment, tmp_path, artifact.tuf_target_path
    )
    assert content == MODEL
    assert custom["hardware"] == "*" and custom["kind"] == "model"
    blob = deployment.settings.paths.blobs / hashlib.sha256(MODEL).hexdigest()[:2]
    assert (blob / hashlib.sha256(MODEL).hexdigest()).read_bytes() == MODEL


async def test_config_artifact_stores_the_device_assignment_template_with_defaults(
    api: Api, deployment: Deployment, pool: asyncpg.Pool
) -> None:
    config = b"threshold = 0.8\n"
    binary = await store_binary(pool, deployment.settings.paths.blobs, config, name="d.toml")
    created = await api.create(
        {
            "name": "detector-config",
            "version": "7",
            "artifacts": [
                {
                    "binary_id": binary.binary_id,
                    "kind": "CONFIG",
                    "platform": "jetson-nano",
                    "config": {
                        "destination_path": "/etc/detector/d.toml",
                        "file_mode": 0o640,
                        "reload_action": "SYSTEMD_RESTART",
                        "systemd_unit": "detector.service",
                    },
                    "health_probe": {"http": {"url": "http://127.0.0.1:8080/healthz"}},
                },
                {
                    "binary_id": binary.binary_id,
                    "kind": "CONFIG",
                    "platform": "raspberry-pi",
                    "config": {
                        "destination_path": "/etc/detector/d.toml",
                        "reload_action": "COMMAND",
                        "reload_command": {"path": "/usr/bin/detector-reload", "args": ["--soft"]},
                    },
                    "health_probe": {
                        "exec": {"path": "/usr/bin/detector-check"},
                        "timeout": "30s",
                        "attempts": 5,
                        "initial_delay": "2s",
                    },
                },
            ],
        }
    )
    first, second = created.update.artifacts
    assert first.config.file_mode == 0o640
    assert second.config.file_mode == 0o644
    assert first.health_probe.timeout.seconds == 10 and first.health_probe.attempts == 3
    assert first.health_probe.interval.seconds == 5
    templates = await assignment_templates(pool, created.update_id)
    assert [(t.platform, t.name, t.version, t.release_counter) for t in templates] == [
        ("jetson-nano", "detector-config", "7", 1),
        ("raspberry-pi", "detector-config", "7", 1),
    ]
    template = templates[0].template
    assert not template.assignment_id and not template.deployment_id
    assert not template.HasField("previous")
    assert template.kind == agent_pb2.ARTIFACT_KIND_CONFIG
    assert template.target_path == first.tuf_target_path
    assert template.sha256 == binary.sha256 and template.length == len(config)
    assert template.config.reload_action == agent_pb2.RELOAD_ACTION_SYSTEMD_RESTART
    assert template.config.systemd_unit == "detector.service"
    assert template.config.file_mode == 0o640
    assert template.health_probe.http.url == "http://127.0.0.1:8080/healthz"
    probe = templates[1].template.health_probe
    assert probe.exec.path == "/usr/bin/detector-check"
    assert (probe.timeout.seconds, probe.attempts, probe.initial_delay.seconds) == (30, 5, 2)
    assert templates[1].template.config.reload_command.args == ["--soft"]


async def test_container_tag_is_resolved_to_its_digest_and_the_pin_is_a_signed_target(
    api: Api, deployment: Deployment, registry: Registry, tmp_path: Path
) -> None:
    registry.require_token = True
    digest = registry.push("vision/detector", "2.0.0")
    image = f"{registry.host}/vision/detector:2.0.0"
    created = await api.create(
        {
            "name": "detector-container",
            "version": "2.0.0",
            "artifacts": [
                {
                    "container": {"image": image},
                    "health_probe": {"file": {"path": "/run/detector/ready"}},
                }
            ],
        }
    )
    (artifact,) = created.update.artifacts
    assert artifact.kind == update_pb2.Artifact.CONTAINER
    assert artifact.container.digest == digest
    assert artifact.container.container_name == "detector-container"
    assert artifact.tuf_target_path.endswith("/any/r1/image.json")
    heads = [s for s in registry.seen if s.method == "HEAD"]
    assert heads[-1].authorization.startswith("Bearer ")
    assert "application/vnd.oci.image.index.v1+json" in heads[-1].accept
    assert "application/vnd.docker.distribution.manifest.v2+json" in heads[-1].accept
    content, custom = await asyncio.to_thread(
        _verified_download, deployment, tmp_path, artifact.tuf_target_path
    )
    assert json.loads(content) == {"image": image, "digest": digest}
    assert content == json.dumps({"digest": digest, "image": image}, separators=(",", ":")).encode()
    assert custom["kind"] == "container"


async def test_container_digest_from_get_when_head_has_no_digest_header(
    api: Api, registry: Registry
) -> None:
    registry.digest_on_head = False
    digest = registry.push("edge/app", "latest")
    created = await api.create(
        {
            "name": "edge-app",
            "version": "1.0.0",
            "artifacts": [
                {"kind": "CONTAINER", "container": {"image": f"{registry.host}/edge/app"}}
            ],
        }
    )
    assert created.update.artifacts[0].container.digest == digest
    assert [s.method for s in registry.seen] == ["HEAD", "GET"]


async def test_container_with_a_given_digest_asks_no_registry(api: Api, registry: Registry) -> None:
    digest = "sha256:" + "ab" * 32
    created = await api.create(
        {
            "name": "pinned",
            "version": "1.0.0",
            "artifacts": [{"container": {"image": "registry.invalid/x/y:1", "digest": digest}}],
        }
    )
    assert created.update.artifacts[0].container.digest == digest
    assert registry.seen == []


async def test_release_counters_increase_per_name_and_platform_across_updates(
    api: Api, deployment: Deployment, pool: asyncpg.Pool
) -> None:
    binary = await store_binary(pool, deployment.settings.paths.blobs, FIRMWARE)

    def body(version: str, *platforms: str) -> dict[str, Any]:
        return {
            "name": "fw",
            "version": version,
            "artifacts": [{"binary_id": binary.binary_id, "platform": p} for p in platforms],
        }

    one = await api.create(body("1.0.0", "raspberry-pi", "jetson-nano"))
    two = await api.create(body("1.1.0", "raspberry-pi"))
    # Concurrent creates still get distinct, increasing counters.
    three, four = await asyncio.gather(
        api.create(body("1.2.0", "raspberry-pi")), api.create(body("1.3.0", "raspberry-pi"))
    )
    counters = {
        (r["version"], r["platform"]): r["release_counter"]
        for r in await pool.fetch("SELECT version, platform, release_counter FROM update_artifacts")
    }
    assert counters[("1.0.0", "raspberry-pi")] == 1 and counters[("1.0.0", "jetson-nano")] == 1
    assert counters[("1.1.0", "raspberry-pi")] == 2
    assert {counters[("1.2.0", "raspberry-pi")], counters[("1.3.0", "raspberry-pi")]} == {3, 4}
    signed = {
        r["path"]: json.loads(r["custom"]) if isinstance(r["custom"], str) else r["custom"]
        for r in await pool.fetch("SELECT path, custom FROM tuf_targets")
    }
    for created in (one, two, three, four):
        for artifact in created.update.artifacts:
            counter = signed[artifact.tuf_target_path]["release_counter"]
            assert artifact.tuf_target_path.split("/")[3] == f"r{counter}"


async def test_get_update_returns_what_create_returned_and_unknown_is_not_found(
    api: Api, deployment: Deployment, pool: asyncpg.Pool
) -> None:
    binary = await store_binary(pool, deployment.settings.paths.blobs, FIRMWARE)
    created = await api.create(
        {"name": "fw", "version": "1.0.0", "artifacts": [{"binary_id": binary.binary_id}]}
    )
    got = await api.stub.GetUpdate(
        update_pb2.GetUpdateRequest(update_id=created.update_id), metadata=api.metadata
    )
    assert got.update == created.update
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.GetUpdate(
            update_pb2.GetUpdateRequest(update_id="update-nope"), metadata=api.metadata
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_updates_pages_orders_and_filters(
    api: Api, deployment: Deployment, pool: asyncpg.Pool
) -> None:
    binary = await store_binary(pool, deployment.settings.paths.blobs, FIRMWARE)
    for name, version, channel in [
        ("alpha", "1.0.0", "stable"),
        ("beta", "1.0.0", "beta"),
        ("gamma", "2.0.0", "stable"),
        ("delta", "2.1.0", "stable"),
        ("epsilon", "3.0.0", "beta"),
    ]:
        await api.create(
            {
                "name": name,
                "version": version,
                "metadata": {"channel": channel},
                "artifacts": [{"binary_id": binary.binary_id}],
            }
        )

    async def names(**request: Any) -> tuple[list[str], str, int]:
        page = await api.stub.ListUpdates(
            update_pb2.ListUpdatesRequest(**request), metadata=api.metadata
        )
        return [u.name for u in page.updates], page.next_page_token, page.total_count

    newest, _, total = await names()
    assert newest == ["epsilon", "delta", "gamma", "beta", "alpha"] and total == 5
    seen: list[str] = []
    token = ""
    while True:
        page, token, total = await names(page_size=2, order_by="name ASC", page_token=token)
        seen += page
        if not token:
            break
    assert seen == ["alpha", "beta", "delta", "epsilon", "gamma"]
    assert (await names(filter="metadata.channel:stable AND version:2*"))[0] == ["delta", "gamma"]
    assert (await names(filter="NOT name:alpha,beta", order_by="version DESC"))[0] == [
        "epsilon",
        "delta",
        "gamma",
    ]
    assert (await names(filter="created_at:>-1h AND name:*ta"))[0] == ["delta", "beta"]
    assert (await names(filter="created_at:<2000-01-01"))[0] == []
    for bad in (
        {"filter": "status:online"},
        {"filter": "name:a OR name:b"},
        {"order_by": "cpu_usage"},
        {"page_token": "forged.token"},
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await names(**bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _refusals(binary_id: str, sha: str, size: int, files: FileServer) -> list[Any]:
    """(request, expected code, text the message must hold)."""
    good: dict[str, Any] = {"binary_id": binary_id}
    INVALID, FAILED = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION

    def update(*artifacts: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return {"name": "refused", "version": "1.0.0", "artifacts": list(artifacts), **fields}

    wrong = files.serve("/wrong.bin", b"x" * size)
    longer = files.serve("/longer.bin", FIRMWARE + b"!", declared_length=-1)
    shorter = files.serve("/shorter.bin", FIRMWARE[:-1])
    files.serve("/gone.bin", b"", status=404)
    files.serve("/broken.bin", b"", status=503)
    closed = f"http://127.0.0.1:{free_port()}/firmware.bin"
    return [
        (update(), INVALID, "artifacts: an update has 1 to 64 artifacts"),
        (update(*[good] * 65), INVALID, "artifacts: an update has 1 to 64"),
        (update(good, name=""), INVALID, "name must be 1 to 128"),
        (update(good, version="../2"), INVALID, "version must be"),
        (update(good, metadata={"bad key": "x"}), INVALID, "metadata["),
        (
            update(good, strategy={"max_failure_percentage": 101}),
            INVALID,
            "strategy.max_failure_percentage must be between 0 and 100",
        ),
        (update(good, strategy={"canary_percentage": -1}), INVALID, "strategy.canary_percentage"),
        (
            update(good, strategy={"validation_duration": "900000s"}),
            INVALID,
            "strategy.validation_duration must be between 0s and 604800s",
        ),
        (update(good, {"binary_id": binary_id}), INVALID, "artifacts[1].name: artifact 'refused'"),
        (update({"binary_id": binary_id, "platform": "any"}), INVALID, "artifacts[0].platform"),
        (update({"binary_id": binary_id, "name": "has space"}), INVALID, "artifacts[0].name"),
        (update({}), INVALID, "artifacts[0]: give the content, by binary_id or by url"),
        (
            update({"binary_id": binary_id, "url": wrong, "checksum": sha, "size_bytes": size}),
            INVALID,
            "give binary_id or url, not both",
        ),
        (
            update({"binary_id": "bin-unknown"}),
            grpc.StatusCode.NOT_FOUND,
            "artifacts[0].binary_id: binary bin-unknown not found",
        ),
        (
            update({"binary_id": binary_id, "checksum": "sha256:" + "0" * 64}),
            INVALID,
            "artifacts[0].checksum: binary",
        ),
        (
            update({"binary_id": binary_id, "size_bytes": size + 1}),
            INVALID,
            "artifacts[0].size_bytes: binary",
        ),
        (
            update({"url": "ftp://example.com/x", "checksum": sha, "size_bytes": size}),
            INVALID,
            "artifacts[0].url must be an http:// or https:// URL",
        ),
        (update({"url": wrong, "size_bytes": size}), INVALID, "artifacts[0].checksum is required"),
        (
            update({"url": wrong, "checksum": "sha256:abc123...", "size_bytes": size}),
            INVALID,
            "artifacts[0].checksum must be sha256:<64 hex digits>",
        ),
        (update({"url": wrong, "checksum": sha}), INVALID, "artifacts[0].size_bytes is required"),
        (
            update({"url": wrong, "checksum": sha, "size_bytes": size}),
            INVALID,
            "not the declared checksum",
        ),
        (
            update({"url": longer, "checksum": sha, "size_bytes": size}),
            INVALID,
            "serves more than size_bytes",
        ),
        (
            update({"url": shorter, "checksum": sha, "size_bytes": size}),
            INVALID,
            f"serves {size - 1} bytes, but size_bytes is {size}",
        ),
        (
            update({"url": files.url("/gone.bin"), "checksum": sha, "size_bytes": size}),
            FAILED,
            "HTTP 404",
        ),
        (
            update({"url": files.url("/broken.bin"), "checksum": sha, "size_bytes": size}),
            grpc.StatusCode.UNAVAILABLE,
            "HTTP 503",
        ),
        (
            update({"url": closed, "checksum": sha, "size_bytes": size}),
            grpc.StatusCode.UNAVAILABLE,
            "artifacts[0].url",
        ),
        (
            update({**good, "kind": "CONFIG"}),
            INVALID,
            "artifacts[0].config.destination_path is required for CONFIG",
        ),
        (
            update({**good, "config": {"destination_path": "etc/app.conf"}}),
            INVALID,
            "artifacts[0].config.destination_path must be an absolute path",
        ),
        (
            update({**good, "config": {"destination_path": "/etc/../shadow"}}),
            INVALID,
            "artifacts[0].config.destination_path must be a normalised file path",
        ),
        (
            update({**good, "config": {"destination_path": "/etc/" + "a" * 1100}}),
            INVALID,
            "artifacts[0].config.destination_path is longer than 1024 characters",
        ),
        (
            update({**good, "config": {"destination_path": "/etc/a", "file_mode": 0o10000}}),
            INVALID,
            "artifacts[0].config.file_mode must be at most 0o7777",
        ),
        (
            update(
                {
                    **good,
                    "config": {
                        "destination_path": "/etc/a",
                        "reload_action": "SYSTEMD_RESTART",
                        "systemd_unit": "rm -rf /",
                    },
                }
            ),
            INVALID,
            "artifacts[0].config.systemd_unit must be a systemd unit name",
        ),
        (
            update(
                {
                    **good,
                    "config": {
                        "destination_path": "/etc/a",
                        "reload_action": "COMMAND",
                        "reload_command": {"path": "reload.sh"},
                    },
                }
            ),
            INVALID,
            "artifacts[0].config.reload_command.path must be an absolute path",
        ),
        (
            update(
                {
                    **good,
                    "config": {
                        "destination_path": "/etc/a",
                        "reload_action": "COMMAND",
                        "reload_command": {"path": "/bin/r", "args": ["a"] * 33},
                    },
                }
            ),
            INVALID,
            "artifacts[0].config.reload_command.args: at most 32",
        ),
        (update({"kind": "CONTAINER"}), INVALID, "artifacts[0].container.image is required"),
        (
            update({"container": {"image": "Upper/Case:1"}}),
            INVALID,
            "artifacts[0].container.image: repository component",
        ),
        (
            update({"container": {"image": "a/b:1", "digest": "sha256:short"}}),
            INVALID,
            "artifacts[0].container.digest must be sha256:<64 lowercase hex>",
        ),
        (
            update({"container": {"image": "a/b:1"}, "binary_id": binary_id}),
            INVALID,
            "a CONTAINER artifact has no binary_id",
        ),
        (
            update({"container": {"image": "127.0.0.1:1/none/such:1"}}),
            grpc.StatusCode.UNAVAILABLE,
            "artifacts[0].container.image",
        ),
        (
            update({**good, "health_probe": {"timeout": "5s"}}),
            INVALID,
            "artifacts[0].health_probe needs exactly one of exec, http or file",
        ),
        (
            update(
                good,
                {
                    **good,
                    "platform": "jetson",
                    "health_probe": {"exec": {"path": "/bin/check"}, "timeout": "301s"},
                },
            ),
            INVALID,
            "artifacts[1].health_probe.timeout must be between 1s and 300s",
        ),
        (
            update({**good, "health_probe": {"exec": {"path": "/bin/c"}, "timeout": "0s"}}),
            INVALID,
            "artifacts[0].health_probe.timeout must be between 1s and 300s",
        ),
        (
            update({**good, "health_probe": {"exec": {"path": "/bin/c"}, "attempts": 11}}),
            INVALID,
            "artifacts[0].health_probe.attempts must be between 1 and 10",
        ),
        (
            update(
                {**good, "health_probe": {"exec": {"path": "/bin/c"}, "initial_delay": "3601s"}}
            ),
            INVALID,
            "artifacts[0].health_probe.initial_delay must be between 0s and 3600s",
        ),
        (
            update({**good, "health_probe": {"file": {"path": "/bin/c"}, "interval": "601s"}}),
            INVALID,
            "artifacts[0].health_probe.interval must be between 0s and 600s",
        ),
        (
            update({**good, "health_probe": {"exec": {"path": "bin/c"}}}),
            INVALID,
            "artifacts[0].health_probe.exec.path must be an absolute path",
        ),
        (
            update({**good, "health_probe": {"http": {"url": "file:///etc/passwd"}}}),
            INVALID,
            "artifacts[0].health_probe.http.url must be an http:// or https:// URL",
        ),
        (
            update({**good, "health_probe": {"file": {"path": "/run//ready"}}}),
            INVALID,
            "artifacts[0].health_probe.file.path must be a normalised file path",
        ),
    ]


async def test_every_refusal_names_the_field_and_stores_nothing(
    api: Api, deployment: Deployment, files: FileServer, pool: asyncpg.Pool
) -> None:
    binary = await store_binary(pool, deployment.settings.paths.blobs, FIRMWARE)
    blobs_before = _blob_files(deployment)
    for body, code, text in _refusals(binary.binary_id, _sha(FIRMWARE), len(FIRMWARE), files):
        got_code, message = await api.refused(body)
        assert (got_code, text in message) == (code, True), (body, got_code, message)
        assert await _stored(pool) == (0, 0, 0), body
        assert _blob_files(deployment) == blobs_before, body
    assert not list((deployment.settings.paths.blobs / "tmp").glob("*"))


async def test_a_second_update_with_the_same_name_and_version_already_exists(
    api: Api, deployment: Deployment, pool: asyncpg.Pool
) -> None:
    binary = await store_binary(pool, deployment.settings.paths.blobs, FIRMWARE)
    body = {"name": "fw", "version": "1.0.0", "artifacts": [{"binary_id": binary.binary_id}]}
    await api.create(body)
    code, message = await api.refused(body)
    assert code == grpc.StatusCode.ALREADY_EXISTS and "create a new version" in message
    assert await _stored(pool) == (1, 1, 1)


async def test_a_viewer_may_not_create_updates(
    api: Api, deployment: Deployment, pool: asyncpg.Pool
) -> None:
    from fleetd.storage.bearer_tokens import create_api_key

    viewer = await create_api_key(pool, "viewer", "read only")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.stub.CreateUpdate(
            update_pb2.CreateUpdateRequest(name="x", version="1"),
            metadata=(("x-api-key", viewer.token),),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


SEED_CREATE_UPDATE = """{
  "name": "Firmware Update v2.0",
  "version": "2.0.0",
  "description": "Security patches and performance improvements",
  "artifacts": [{
    "platform": "raspberry-pi",
    "url": "https://updates.fleetd.io/firmware-2.0.0-rpi.tar.gz",
    "checksum": "sha256:abc123...",
    "size_bytes": 104857600
  }],
  "strategy": {
    "type": "ROLLING",
    "max_parallel": 10,
    "max_failure_percentage": 5
  }
}"""


def _grpcurl(dep: Deployment, body: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    return subprocess.run(
        [
            tool,
            "-cacert",
            str(dep.settings.paths.ca_cert),
            "-H",
            f"X-API-Key: {dep.admin_api_key}",
            "-d",
            body,
            f"127.0.0.1:{dep.api_port}",
            "fleetd.v1.UpdateService/CreateUpdate",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_seed_create_update_example_over_grpcurl(
    deployment: Deployment, files: FileServer, pool: asyncpg.Pool
) -> None:
    # As written, the example's checksum is a placeholder no content can match: refused,
    # naming the field, before anything is fetched.
    refused = await asyncio.to_thread(_grpcurl, deployment, SEED_CREATE_UPDATE)
    assert refused.returncode != 0
    assert "InvalidArgument" in refused.stderr
    assert "artifacts[0].checksum must be sha256:<64 hex digits>" in refused.stderr
    # With the artifact host changed to a local (plain HTTP) server holding the 100 MiB
    # file, and its real checksum, the example works as written.
    content = hashlib.sha256(b"seed").digest() * (104857600 // 32)
    url = files.serve("/firmware-2.0.0-rpi.tar.gz", content)
    body = SEED_CREATE_UPDATE.replace(
        "https://updates.fleetd.io/firmware-2.0.0-rpi.tar.gz", url
    ).replace("sha256:abc123...", _sha(content))
    out = await asyncio.to_thread(_grpcurl, deployment, body)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # grpcurl prints proto field names
    update = result["update"]
    assert result["update_id"] == update["id"] and result["created_at"]
    assert update["name"] == "Firmware Update v2.0" and update["version"] == "2.0.0"
    assert update["strategy"] == {
        "type": "ROLLING",
        "max_parallel": 10,
        "max_failure_percentage": 5,
    }
    (artifact,) = update["artifacts"]
    assert artifact["platform"] == "raspberry-pi" and artifact["size_bytes"] == "104857600"
    assert artifact["tuf_target_path"] == (
        "Firmware-Update-v2.0/2.0.0/raspberry-pi/r1/firmware-2.0.0-rpi.tar.gz"
    )
    assert await _stored(pool) == (1, 1, 1)
