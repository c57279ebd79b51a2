"""Artifacts only to their devices (issue 14): who may read ``/tuf/`` on a real deployment.

Target files go to a device presenting its fleet certificate (verified by Envoy, standing
checked: registered, not revoked, not offboarded) for the targets its active assignments
name, and to operators with ``update:view``; metadata to the same callers; the root to
anyone. Everyone else is refused before anything is looked up, with the same answer for a
target that exists and one that does not. Each test is named after the attack it refuses
(or the access it keeps).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import grpc
import pytest
import urllib3
from cryptography.hazmat.primitives import serialization
from tuf.api.metadata import Metadata

from control_api.auth import ANONYMOUS, Principal
from control_api.permissions import ROLE_PERMISSIONS
from control_api.tuf_files import PERMISSION, Refusal, admit
from fleetd.device.v1 import agent_pb2
from fleetd.domain.rollout.rollback import rollback_spec
from fleetd.services import jwt
from fleetd.services.pki import CertificateAuthority
from fleetd.services.tuf_repo import KeyDirs, TufRepository
from fleetd.storage.assignments import create_assignments
from fleetd.storage.bearer_tokens import create_api_key
from fleetd.storage.blobs import FilesystemBlobStore
from fleetd.storage.devices import offboard_device
from fleetd.v1 import binary_pb2, binary_pb2_grpc
from tests.support.certs import make_device_cert, make_fleet_ca
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import DeviceCredentials, device_channel, enrol_device
from tests.support.http import connect_json


@dataclass(frozen=True, slots=True)
class Target:
    path: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def version(self) -> str:
        return self.path.split("/")[1]

    @property
    def url(self) -> str:
        directory, _, name = self.path.rpartition("/")
        return f"/tuf/targets/{directory}/{self.sha256}.{name}"


CURRENT = Target("app/2.0.0/raspberry-pi/r2/app.bin", b"app version two\n" * 200)
PREVIOUS = Target("app/1.0.0/raspberry-pi/r1/app.bin", b"app version one\n" * 150)
RESIGNED = Target("app/1.0.0/raspberry-pi/r3/app.bin", PREVIOUS.content)
"""PREVIOUS re-signed under a new release counter, as RollbackDeployment publishes it."""
OTHERS = Target("secret-config/1/any/r1/settings.toml", b'api_token = "hunter2"\n')
MISSING = Target("app/9.9.9/raspberry-pi/r9/app.bin", b"never published\n")
PUBLISHED = (CURRENT, PREVIOUS, RESIGNED, OTHERS)
SECRETS = (CURRENT.content[:16], PREVIOUS.content[:16], OTHERS.content)


@dataclass
class Fleet:
    """A deployment with signed targets: ``rpi-a`` is assigned CURRENT (replacing
    PREVIOUS), ``rpi-b`` is assigned OTHERS; RESIGNED is assigned to nobody yet."""

    dep: Deployment
    pool: asyncpg.Pool
    creds: dict[str, DeviceCredentials]
    identities: dict[str, tuple[Path, Path]]
    tmp: Path

    def _get(
        self,
        url: str,
        identity: tuple[Path, Path] | None,
        headers: dict[str, str] | None,
        method: str,
    ) -> urllib3.BaseHTTPResponse:
        http = urllib3.PoolManager(
            ca_certs=str(self.dep.settings.paths.ca_cert),
            cert_file=None if identity is None else str(identity[0]),
            key_file=None if identity is None else str(identity[1]),
            retries=False,
        )
        return http.request(method, f"{self.dep.api_endpoint}{url}", headers=headers)

    async def fetch(
        self,
        url: str,
        *,
        device: str | None = None,
        identity: tuple[Path, Path] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> urllib3.BaseHTTPResponse:
        """GET (or ``method``) ``url`` over HTTPS, presenting ``device``'s certificate (or
        ``identity``, a certificate and key file) when given, and nothing otherwise."""
        if device is not None:
            identity = self.identities[device]
        return await asyncio.to_thread(self._get, url, identity, headers, method)


def _assignment(target: Target, previous: Target | None) -> agent_pb2.ArtifactAssignment:
    spec = agent_pb2.ArtifactAssignment(
        deployment_id="dep-test",
        name=target.path.split("/")[0],
        version=target.version,
        kind=agent_pb2.ARTIFACT_KIND_FILE,
        target_path=target.path,
        sha256=target.sha256,
        length=len(target.content),
    )
    if previous is not None:
        spec.previous.CopyFrom(
            agent_pb2.PreviousVersion(
                version=previous.version, sha256=previous.sha256, target_path=previous.path
            )
        )
    return spec


def _write_identity(directory: Path, creds: DeviceCredentials) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "device.pem", directory / "device.key"
    cert.write_bytes(creds.cert_pem)
    key.write_bytes(creds.key_pem)
    return cert, key


def _leaks_nothing(answer: urllib3.BaseHTTPResponse) -> bool:
    return not any(secret in answer.data for secret in SECRETS)


@pytest.fixture
async def fleet(
    database_url: str, redis_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[Fleet]:
    async with running_deployment(database_url, redis_url) as dep:
        repo = TufRepository(pool, KeyDirs.under(dep.settings.paths.root))
        store = FilesystemBlobStore(dep.settings.paths.blobs)
        for counter, target in enumerate(PUBLISHED, start=1):
            name = target.path.split("/")[0]
            custom = {"hardware": "*", "release_counter": counter, "kind": "file", "name": name}
            await repo.add_target(
                target.path, len(target.content), {"sha256": target.sha256}, custom
            )
            async with store.writer(max_bytes=len(target.content)) as writer:
                await writer.write(target.content)
                await writer.commit()
        ca = CertificateAuthority.load(dep.settings.paths, "default")
        creds: dict[str, DeviceCredentials] = {}
        identities: dict[str, tuple[Path, Path]] = {}
        for device_id in ("rpi-a", "rpi-b"):
            creds[device_id] = await enrol_device(pool, ca, device_id)
            identities[device_id] = _write_identity(tmp_path / device_id, creds[device_id])
        async with pool.acquire() as conn:
            await create_assignments(conn, "rpi-a", [_assignment(CURRENT, PREVIOUS)])
            await create_assignments(conn, "rpi-b", [_assignment(OTHERS, None)])
        yield Fleet(dep, pool, creds, identities, tmp_path)


# -- Nobody: no certificate, no credentials ------------------------------------------------


async def test_target_download_without_device_certificate_is_refused(fleet: Fleet) -> None:
    for method in ("GET", "HEAD"):
        answer = await fleet.fetch(CURRENT.url, method=method)
        assert answer.status == 401, method
        assert _leaks_nothing(answer)
    answer = await fleet.fetch(CURRENT.url)
    assert b"authentication required" in answer.data


async def test_missing_and_existing_targets_get_the_same_refusal(fleet: Fleet) -> None:
    """A refused caller cannot probe which targets exist: the anonymous get 401 and a
    device asking beyond its assignments gets 403, with the same body and length whether
    the target is published or not."""
    for device in (None, "rpi-a"):
        existing = await fleet.fetch(OTHERS.url, device=device)
        missing = await fleet.fetch(MISSING.url, device=device)
        assert existing.status == missing.status == (401 if device is None else 403)
        assert existing.data == missing.data
        assert existing.headers["content-length"] == missing.headers["content-length"]
        assert _leaks_nothing(existing)
        for target in (OTHERS, MISSING):
            head = await fleet.fetch(target.url, device=device, method="HEAD")
            assert head.status == existing.status


async def test_metadata_without_credentials_is_refused(fleet: Fleet) -> None:
    """Metadata names every artifact with its length and hash: not for anyone."""
    for url in (
        "/tuf/metadata/timestamp.json",
        "/tuf/metadata/1.snapshot.json",
        "/tuf/metadata/1.artifacts.json",
        "/tuf/metadata/99.snapshot.json",  # and what does not exist is not revealed
    ):
        answer = await fleet.fetch(url)
        assert answer.status == 401, url
        assert b"secret-config" not in answer.data and OTHERS.sha256.encode() not in answer.data


async def test_root_json_is_public(fleet: Fleet) -> None:
    """The trust anchor carries keys only; an agent pins it at enrolment."""
    root = await fleet.fetch("/tuf/root.json")
    assert root.status == 200
    assert Metadata.from_bytes(root.data).signed.type == "root"


# -- Devices ------------------------------------------------------------------------------


async def test_device_gets_its_assigned_target(fleet: Fleet) -> None:
    answer = await fleet.fetch(CURRENT.url, device="rpi-a")
    assert answer.status == 200, answer.data
    assert answer.data == CURRENT.content
    assert "private" in answer.headers["cache-control"]  # never in a shared cache
    head = await fleet.fetch(CURRENT.url, device="rpi-a", method="HEAD")
    assert head.status == 200 and head.headers["content-length"] == str(len(CURRENT.content))
    # ...and the metadata it verifies the target with.
    stamp = await fleet.fetch("/tuf/metadata/timestamp.json", device="rpi-a")
    assert stamp.status == 200 and stamp.headers["cache-control"] == "no-cache"


async def test_device_may_fetch_the_previous_target_its_assignment_replaces(
    fleet: Fleet,
) -> None:
    """The version being replaced is the rollback source (re-fetched if the local copy
    is gone)."""
    answer = await fleet.fetch(PREVIOUS.url, device="rpi-a")
    assert answer.status == 200 and answer.data == PREVIOUS.content


async def test_rolled_back_device_gets_the_re_signed_previous_target(fleet: Fleet) -> None:
    """RollbackDeployment assigns the re-signed previous content; that target is granted
    from the moment the assignment exists, and not before."""
    before = await fleet.fetch(RESIGNED.url, device="rpi-a")
    assert before.status == 403
    back = rollback_spec(
        "dep-test",
        _assignment(PREVIOUS, None),
        _assignment(CURRENT, PREVIOUS),
        RESIGNED.path,
        "asg-rollback",
    )
    async with fleet.pool.acquire() as conn:
        await create_assignments(conn, "rpi-a", [back])
    after = await fleet.fetch(RESIGNED.url, device="rpi-a")
    assert after.status == 200 and after.data == PREVIOUS.content
    # The rollback's ``previous`` is the version it leaves: still fetchable, for a retry.
    left = await fleet.fetch(CURRENT.url, device="rpi-a")
    assert left.status == 200


async def test_device_cannot_download_a_target_assigned_to_another_device(
    fleet: Fleet,
) -> None:
    answer = await fleet.fetch(OTHERS.url, device="rpi-a")
    assert answer.status == 403
    assert b"not assigned" in answer.data and _leaks_nothing(answer)
    own = await fleet.fetch(OTHERS.url, device="rpi-b")
    assert own.status == 200 and own.data == OTHERS.content
    theirs = await fleet.fetch(CURRENT.url, device="rpi-b")
    assert theirs.status == 403


async def test_superseded_assignment_no_longer_grants_its_target(fleet: Fleet) -> None:
    """Newer versions of the same artifact supersede the assignment: once the old target
    is neither what to install nor the version being replaced, it is not the device's."""
    second = Target("secret-config/2/any/r8/settings.toml", b'api_token = "rotated"\n')
    third = Target("secret-config/3/any/r9/settings.toml", b'api_token = "again"\n')
    async with fleet.pool.acquire() as conn:
        await create_assignments(conn, "rpi-b", [_assignment(second, OTHERS)])
    still = await fleet.fetch(OTHERS.url, device="rpi-b")
    assert still.status == 200  # the version being replaced
    async with fleet.pool.acquire() as conn:
        await create_assignments(conn, "rpi-b", [_assignment(third, second)])
    answer = await fleet.fetch(OTHERS.url, device="rpi-b")
    assert answer.status == 403 and _leaks_nothing(answer)


async def test_revoked_device_certificate_is_refused(fleet: Fleet) -> None:
    await fleet.pool.execute(
        "UPDATE device_certificates SET revoked_at = now() WHERE device_id = 'rpi-a'"
    )
    for url in (CURRENT.url, "/tuf/metadata/timestamp.json"):
        answer = await fleet.fetch(url, device="rpi-a")
        assert answer.status == 401, url
        assert b"revoked" in answer.data and _leaks_nothing(answer)


async def test_offboarded_device_is_refused(fleet: Fleet) -> None:
    key = await create_api_key(fleet.pool, "device", "rpi-b's key", device_id="rpi-b")
    async with fleet.pool.acquire() as conn, conn.transaction():
        assert await offboard_device(conn, "rpi-b", "stolen", force=True) is not None
    for url in (OTHERS.url, "/tuf/metadata/timestamp.json"):
        by_cert = await fleet.fetch(url, device="rpi-b")
        by_key = await fleet.fetch(url, headers={"X-API-Key": key.token})
        assert by_cert.status == by_key.status == 401, url
        assert _leaks_nothing(by_cert) and _leaks_nothing(by_key)


async def test_offboarded_device_with_an_unrevoked_certificate_is_refused(
    fleet: Fleet,
) -> None:
    """The standing checks the device as well as the certificate."""
    await fleet.pool.execute(
        "UPDATE devices SET offboarded_at = now(), status = 'offboarded' WHERE device_id = 'rpi-b'"
    )
    answer = await fleet.fetch(OTHERS.url, device="rpi-b")
    assert answer.status == 401 and _leaks_nothing(answer)


async def test_certificate_fleetd_never_issued_is_refused(fleet: Fleet) -> None:
    """Signed by the fleet CA but never recorded (a forged enrolment): refused like a
    revoked one."""
    ca = CertificateAuthority.load(fleet.dep.settings.paths, "default")
    unrecorded = await enrol_device(fleet.pool, ca, "rpi-a", register=False)
    identity = _write_identity(fleet.tmp / "unrecorded", unrecorded)
    answer = await fleet.fetch(CURRENT.url, identity=identity)
    assert answer.status == 401 and _leaks_nothing(answer)


async def test_certificate_from_another_ca_fails_the_handshake(fleet: Fleet) -> None:
    stranger_ca = make_fleet_ca("default")
    now = dt.datetime.now(dt.UTC)
    stranger = make_device_cert(
        stranger_ca,
        "rpi-a",
        "default",
        not_before=now - dt.timedelta(hours=1),
        not_after=now + dt.timedelta(days=1),
    )
    key_pem = stranger.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    identity = _write_identity(
        fleet.tmp / "stranger", DeviceCredentials("rpi-a", key_pem, stranger.pem)
    )
    with pytest.raises(
        (urllib3.exceptions.SSLError, urllib3.exceptions.ProtocolError, ssl.SSLError)
    ):
        await fleet.fetch(CURRENT.url, identity=identity)


async def test_device_api_key_gets_only_its_devices_targets(fleet: Fleet) -> None:
    key = await create_api_key(fleet.pool, "device", "rpi-a's key", device_id="rpi-a")
    own = await fleet.fetch(CURRENT.url, headers={"X-API-Key": key.token})
    assert own.status == 200 and own.data == CURRENT.content
    other = await fleet.fetch(OTHERS.url, headers={"X-API-Key": key.token})
    assert other.status == 403 and _leaks_nothing(other)


async def test_forged_x_forwarded_client_cert_header_is_ignored(fleet: Fleet) -> None:
    """A client cannot claim a device by sending Envoy's header itself: Envoy removes it
    and sets its own only for a certificate it verified (SANITIZE_SET)."""
    forged = {
        device: f'Hash=00;Cert="{quote(fleet.identities[device][0].read_text())}";'
        f"URI=spiffe://default/device/{device}"
        for device in ("rpi-a", "rpi-b")
    }
    # Without a TLS client certificate the caller stays anonymous...
    answer = await fleet.fetch(CURRENT.url, headers={"x-forwarded-client-cert": forged["rpi-a"]})
    assert answer.status == 401 and _leaks_nothing(answer)
    # ...and with one it stays itself: rpi-a cannot pass for rpi-b.
    answer = await fleet.fetch(
        OTHERS.url, device="rpi-a", headers={"x-forwarded-client-cert": forged["rpi-b"]}
    )
    assert answer.status == 403 and _leaks_nothing(answer)


async def test_device_cannot_download_artifacts_over_the_operator_api(fleet: Fleet) -> None:
    """DownloadBinary and GetUpdate need update:view, which the device role does not hold:
    otherwise a device certificate would reach every artifact's content there."""
    for method in ("UpdateService/ListUpdates", "UpdateService/GetUpdate"):
        answer = await connect_json(
            fleet.dep.api_endpoint,
            f"fleetd.v1.{method}",
            {},
            ca_pem=fleet.dep.ca_pem,
            client_cert=fleet.identities["rpi-a"],
        )
        assert answer.status == 403, (method, answer.body)
        assert answer.body["code"] == "permission_denied"
    channel = device_channel(
        f"127.0.0.1:{fleet.dep.api_port}", fleet.dep.ca_pem, fleet.creds["rpi-a"]
    )
    async with channel:
        stub = binary_pb2_grpc.BinaryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stub.DownloadBinary(
                binary_pb2.DownloadBinaryRequest(binary_id="bin_any"), timeout=10
            ):
                pass
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


# -- Operators ----------------------------------------------------------------------------


async def test_operator_with_update_view_gets_any_target(fleet: Fleet) -> None:
    viewer = await create_api_key(fleet.pool, "viewer", "read only")
    token = jwt.issue(
        jwt.load_signing_key(fleet.dep.settings.paths.root),
        fleet="default",
        subject="alice",
        role="viewer",
        ttl_seconds=60,
    )
    for headers in (
        {"X-API-Key": fleet.dep.admin_api_key},
        {"X-API-Key": viewer.token},
        {"Authorization": f"Bearer {token}"},
    ):
        for target in PUBLISHED:
            answer = await fleet.fetch(target.url, headers=headers)
            assert answer.status == 200, (headers, answer.data)
            assert answer.data == target.content
        stamp = await fleet.fetch("/tuf/metadata/timestamp.json", headers=headers)
        assert stamp.status == 200
        missing = await fleet.fetch(MISSING.url, headers=headers)
        assert missing.status == 404  # an operator may know what is published


WITHOUT_UPDATE_VIEW = [
    *sorted(role for role, held in ROLE_PERMISSIONS.items() if PERMISSION not in held),
    "auditor",  # a role the table does not know
]


@pytest.mark.parametrize("role", WITHOUT_UPDATE_VIEW)
def test_operator_without_update_view_is_refused(role: str) -> None:
    """No role that may sign in today lacks update:view except ``device`` (whose keys and
    certificates always name their device), so the rule is checked directly: a caller
    that is not a device needs the permission, whatever its role (an unknown one too)."""
    for kind in ("api_key", "jwt"):
        with pytest.raises(Refusal) as refused:
            admit(Principal(kind, "someone", role))
        assert refused.value.status == 403
        assert PERMISSION in refused.value.reason


def test_admission_follows_the_permission_table() -> None:
    with pytest.raises(Refusal) as anonymous:
        admit(ANONYMOUS)
    assert anonymous.value.status == 401
    for role, held in ROLE_PERMISSIONS.items():
        if PERMISSION in held:
            assert admit(Principal("api_key", "k", role)).role == role
    assert admit(Principal("mtls", "rpi-a", "device", "rpi-a")).device_id == "rpi-a"


async def test_invalid_operator_credentials_are_refused(fleet: Fleet) -> None:
    for bad in (
        {"X-API-Key": "fk_not-a-key"},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
    ):
        answer = await fleet.fetch(CURRENT.url, headers=bad)
        assert answer.status == 401, bad
        assert _leaks_nothing(answer)
