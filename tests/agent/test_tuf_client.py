"""The agent's TUF client against a simulated repository served over real HTTPS, and
against a real fleetd deployment.

Attack tests are named after the attack (TUF's threat list) and each asserts that nothing
was returned and nothing is left in the target cache: a refusal based on signed metadata
is ``TargetRefused`` (permanent), every verification or transport failure is
``TargetUnavailable`` (transient: the same fetch succeeds once the attacker is gone)."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from tuf.api.exceptions import (
    BadVersionNumberError,
    DownloadError,
    DownloadLengthMismatchError,
    ExpiredMetadataError,
    LengthOrHashMismatchError,
    RepositoryError,
    UnsignedMetadataError,
)
from tuf.api.metadata import TargetFile

from agent.tuf_client import (
    DIGEST_MISMATCH,
    INVALID_CUSTOM,
    RELEASE_COUNTER_ROLLBACK,
    SNAPSHOT_MAX_LENGTH,
    TIMESTAMP_MAX_LENGTH,
    UNKNOWN_TARGET,
    WRONG_HARDWARE,
    TargetRefused,
    TargetUnavailable,
    TufClient,
    VerifiedTarget,
)
from fleetd.device.v1 import agent_pb2
from fleetd.services.pki import CertificateAuthority
from fleetd.services.tuf_repo import KeyDirs, TufRepository
from fleetd.storage.assignments import create_assignments
from fleetd.storage.blobs import FilesystemBlobStore
from tests.support.deployment import Deployment, running_deployment
from tests.support.devices import enrol_device
from tests.support.tuf_server import RepositoryServer, ServerTLS, make_server_tls, serve_repository
from tests.support.tuf_simulator import ARTIFACTS, Endless, SimulatedRepository, custom

PATH = "firmware/raspberry-pi/app-1.2.0.bin"
CONTENT = b"\x7fELF a real enough firmware image\n" * 300
DEVICE_TYPE = "raspberry-pi"


@pytest.fixture
def repo() -> SimulatedRepository:
    return SimulatedRepository()


@pytest.fixture
def tls(tmp_path: Path) -> ServerTLS:
    return make_server_tls(tmp_path / "tls")


@pytest.fixture
def server(repo: SimulatedRepository, tls: ServerTLS) -> Iterator[RepositoryServer]:
    with serve_repository(repo, tls) as running:
        yield running


def _client(
    tmp_path: Path, repo: SimulatedRepository, server: RepositoryServer, ca_file: Path | None
) -> TufClient:
    pinned = tmp_path / "tuf-root.json"
    if not pinned.exists():
        pinned.write_bytes(repo.root_bytes)
    return TufClient(
        metadata_dir=tmp_path / "tuf" / "metadata",
        targets_dir=tmp_path / "tuf" / "targets",
        metadata_url=server.metadata_url,
        targets_url=server.targets_url,
        ca_file=ca_file,
        pinned_root=pinned,
    )


@pytest.fixture
def client(
    tmp_path: Path, repo: SimulatedRepository, server: RepositoryServer, tls: ServerTLS
) -> TufClient:
    return _client(tmp_path, repo, server, tls.ca_file)


def fetch(
    client: TufClient,
    target: TargetFile,
    *,
    path: str | None = None,
    device_type: str = DEVICE_TYPE,
    min_release_counter: int = 0,
    sha256: str | None = None,
    length: int | None = None,
) -> VerifiedTarget:
    """Fetch ``target`` as an assignment naming it would."""
    return client.fetch(
        path if path is not None else target.path,
        expected_sha256=sha256 if sha256 is not None else target.hashes["sha256"],
        expected_length=length if length is not None else target.length,
        device_type=device_type,
        min_release_counter=min_release_counter,
    )


def assert_nothing_cached(client: TufClient) -> None:
    """Zero bytes in the target cache: no target, no partial download."""
    if client.targets_dir.exists():
        assert [p.name for p in client.targets_dir.iterdir()] == []


def refused(client: TufClient, target: TargetFile, reason: str, **kw: object) -> None:
    with pytest.raises(TargetRefused) as info:
        fetch(client, target, **kw)  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert_nothing_cached(client)


def unavailable(
    client: TufClient, target: TargetFile, cause: type[Exception], **kw: object
) -> TargetUnavailable:
    with pytest.raises(TargetUnavailable) as info:
        fetch(client, target, **kw)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, cause), repr(info.value.__cause__)
    assert_nothing_cached(client)
    return info.value


def past() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(hours=1)


# --- What an honest repository gives -------------------------------------------------


def test_fetch_returns_the_verified_target_with_its_signed_custom_metadata(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT, custom(release_counter=12))
    got = fetch(client, target, min_release_counter=12)
    assert got.path.read_bytes() == CONTENT
    assert got.path.parent == client.targets_dir
    assert (got.sha256, got.length) == (hashlib.sha256(CONTENT).hexdigest(), len(CONTENT))
    assert (got.hardware, got.release_counter, got.kind, got.name) == (
        "raspberry-pi",
        12,
        "file",
        "app",
    )
    assert [p.name for p in client.targets_dir.iterdir()] == [got.path.name]


def test_trusted_metadata_is_kept_under_unversioned_names(
    client: TufClient, repo: SimulatedRepository
) -> None:
    fetch(client, repo.add_target(PATH, CONTENT))
    names = {p.name for p in client.metadata_dir.iterdir()}
    assert {"root.json", "timestamp.json", "snapshot.json", "targets.json", "artifacts.json"} <= (
        names
    )


def test_a_cached_target_is_not_downloaded_again(
    client: TufClient, repo: SimulatedRepository, server: RepositoryServer
) -> None:
    target = repo.add_target(PATH, CONTENT)
    first = fetch(client, target)
    second = fetch(client, target)
    assert first == second
    assert len(server.fetched("targets/")) == 1


def test_a_cached_file_that_was_altered_is_downloaded_again(
    client: TufClient, repo: SimulatedRepository, server: RepositoryServer
) -> None:
    target = repo.add_target(PATH, CONTENT)
    first = fetch(client, target)
    first.path.write_bytes(b"tampered on the device")
    assert fetch(client, target).path.read_bytes() == CONTENT
    assert len(server.fetched("targets/")) == 2


def test_a_target_for_every_hardware_type_is_accepted(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT, custom(hardware="*"))
    assert fetch(client, target, device_type="jetson-orin").hardware == "*"


def test_a_rotated_root_is_followed_from_the_pinned_one(
    tmp_path: Path, repo: SimulatedRepository, server: RepositoryServer, tls: ServerTLS
) -> None:
    client = _client(tmp_path, repo, server, tls.ca_file)  # pins root version 1
    repo.rotate_root()
    repo.rotate_root()
    target = repo.add_target(PATH, CONTENT)
    assert fetch(client, target).path.read_bytes() == CONTENT
    assert {"metadata/2.root.json", "metadata/3.root.json"} <= set(server.requests)


def test_evict_removes_the_cached_copy(client: TufClient, repo: SimulatedRepository) -> None:
    got = fetch(client, repo.add_target(PATH, CONTENT))
    client.evict(got)
    assert_nothing_cached(client)


def test_partial_downloads_left_by_a_crash_are_removed_at_start(
    tmp_path: Path, repo: SimulatedRepository, server: RepositoryServer, tls: ServerTLS
) -> None:
    targets = tmp_path / "tuf" / "targets"
    targets.mkdir(parents=True)
    (targets / ".firmware%2Fapp.bin.part").write_bytes(b"half a download")
    client = _client(tmp_path, repo, server, tls.ca_file)
    assert_nothing_cached(client)


# --- Transport: only the fleet CA, failures are transient -----------------------------


def test_an_https_server_outside_the_given_ca_is_unavailable(
    tmp_path: Path, repo: SimulatedRepository, server: RepositoryServer
) -> None:
    other_ca = make_server_tls(tmp_path / "other").ca_file
    client = _client(tmp_path, repo, server, other_ca)
    unavailable(client, repo.add_target(PATH, CONTENT), DownloadError)


def test_a_repository_that_is_down_is_unavailable(
    tmp_path: Path, repo: SimulatedRepository, tls: ServerTLS
) -> None:
    target = repo.add_target(PATH, CONTENT)
    with serve_repository(repo, tls) as stopped:
        pass  # its port is closed from here on
    unavailable(_client(tmp_path, repo, stopped, tls.ca_file), target, DownloadError)


def test_a_server_error_is_unavailable(client: TufClient, repo: SimulatedRepository) -> None:
    target = repo.add_target(PATH, CONTENT)
    del repo.files[repo.target_url_path(target)]  # the blob is missing: 404
    unavailable(client, target, DownloadError)


# --- Arbitrary software ----------------------------------------------------------------


def test_arbitrary_software_signed_by_an_untrusted_key_is_not_downloaded(
    client: TufClient, repo: SimulatedRepository, server: RepositoryServer
) -> None:
    attacker = SimulatedRepository().signers[ARTIFACTS]
    target = repo.add_target(PATH, CONTENT, signer=attacker)
    unavailable(client, target, UnsignedMetadataError)
    assert server.fetched("targets/") == []


def test_arbitrary_software_not_in_the_metadata_is_refused(
    client: TufClient, repo: SimulatedRepository, server: RepositoryServer
) -> None:
    repo.add_target(PATH, CONTENT)
    unsigned = TargetFile.from_data("firmware/raspberry-pi/backdoor.bin", b"evil", ["sha256"])
    repo.files[repo.target_url_path(unsigned)] = b"evil"
    refused(client, unsigned, UNKNOWN_TARGET)
    assert server.fetched("targets/") == []


def test_arbitrary_software_swapped_on_the_server_is_not_kept(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    url_path = repo.target_url_path(target)
    repo.overrides[url_path] = CONTENT[:-1] + b"!"  # same length, other bytes
    unavailable(client, target, LengthOrHashMismatchError)
    repo.overrides[url_path] = CONTENT[: len(CONTENT) // 2]  # truncated
    unavailable(client, target, LengthOrHashMismatchError)
    del repo.overrides[url_path]  # the attacker is gone: the same fetch succeeds
    assert fetch(client, target).path.read_bytes() == CONTENT


def test_arbitrary_software_under_another_digest_than_assigned_is_refused(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    refused(client, target, DIGEST_MISMATCH, sha256=hashlib.sha256(b"other").hexdigest())
    refused(client, target, DIGEST_MISMATCH, length=len(CONTENT) + 1)
    refused(client, target, DIGEST_MISMATCH, sha256="not a digest")


def test_a_target_without_fleetd_custom_metadata_is_refused(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT, {"hardware": "raspberry-pi", "kind": "file"})
    refused(client, target, INVALID_CUSTOM)


# --- Rollback --------------------------------------------------------------------------


def test_rollback_to_an_older_timestamp_is_refused(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    old_timestamp = repo.files["metadata/timestamp.json"]
    client.evict(fetch(client, target))
    repo.add_target("firmware/raspberry-pi/app-1.3.0.bin", b"newer")  # the client sees it
    fetch(client, target)
    client.evict(fetch(client, target))
    repo.overrides["metadata/timestamp.json"] = old_timestamp
    unavailable(client, target, BadVersionNumberError)


def test_rollback_to_an_older_snapshot_is_refused(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    client.evict(fetch(client, target))
    trusted = repo.snapshot.signed.version
    # An attacker with the online timestamp key points a fresh timestamp at an old snapshot.
    repo.publish_timestamp(snapshot_version=trusted - 1)
    unavailable(client, target, BadVersionNumberError)


def test_rollback_to_older_targets_metadata_is_refused(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    client.evict(fetch(client, target))
    trusted = repo.artifacts.signed.version
    # A fresh snapshot (online key) that lists the artifacts role at an older version.
    repo.publish_snapshot(versions={ARTIFACTS: trusted - 1})
    unavailable(client, target, BadVersionNumberError)


def test_rollback_to_a_lower_release_counter_is_refused(
    client: TufClient, repo: SimulatedRepository, server: RepositoryServer
) -> None:
    old = repo.add_target(
        "firmware/raspberry-pi/app-1.1.0.bin", CONTENT, custom(release_counter=11)
    )
    refused(client, old, RELEASE_COUNTER_ROLLBACK, min_release_counter=12)
    assert server.fetched("targets/") == []


# --- Indefinite freeze -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "artifacts"])
def test_indefinite_freeze_with_expired_metadata_is_refused(
    client: TufClient, repo: SimulatedRepository, server: RepositoryServer, role: str
) -> None:
    target = repo.add_target(PATH, CONTENT)
    if role == "timestamp":
        repo.publish_timestamp(expires=past())
    elif role == "snapshot":
        repo.sign("snapshot", expires=past())
        repo.publish_timestamp()
    else:
        repo.sign(ARTIFACTS, expires=past())
        repo.publish_snapshot()
    unavailable(client, target, ExpiredMetadataError)
    assert server.fetched("targets/") == []


def test_a_frozen_repository_is_refused_even_after_an_earlier_success(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    client.evict(fetch(client, target))
    # The attacker keeps replaying, with the valid key, a timestamp that has now expired.
    repo.publish_timestamp(expires=past())
    unavailable(client, target, ExpiredMetadataError)


# --- Mix and match -----------------------------------------------------------------------


def test_mix_and_match_of_targets_versions_is_refused(
    client: TufClient, repo: SimulatedRepository
) -> None:
    repo.add_target("firmware/raspberry-pi/app-1.0.0.bin", b"old")
    old_artifacts = repo.files[f"metadata/{repo.artifacts.signed.version}.artifacts.json"]
    target = repo.add_target(PATH, CONTENT)
    # The snapshot names artifacts version N; the server answers with version N-1's bytes.
    repo.overrides[f"metadata/{repo.artifacts.signed.version}.artifacts.json"] = old_artifacts
    unavailable(client, target, BadVersionNumberError)


def test_mix_and_match_of_snapshot_versions_is_refused(
    client: TufClient, repo: SimulatedRepository
) -> None:
    old_snapshot = repo.files[f"metadata/{repo.snapshot.signed.version}.snapshot.json"]
    target = repo.add_target(PATH, CONTENT)
    repo.overrides[f"metadata/{repo.snapshot.signed.version}.snapshot.json"] = old_snapshot
    unavailable(client, target, BadVersionNumberError)


# --- Endless data ---------------------------------------------------------------------


def test_endless_data_for_a_target_stops_at_its_signed_length(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    repo.overrides[repo.target_url_path(target)] = Endless()
    started = time.monotonic()
    unavailable(client, target, DownloadLengthMismatchError)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("role", "cap"),
    [("timestamp", TIMESTAMP_MAX_LENGTH), ("snapshot", SNAPSHOT_MAX_LENGTH)],
)
def test_endless_metadata_stops_at_its_size_cap(
    client: TufClient, repo: SimulatedRepository, role: str, cap: int
) -> None:
    target = repo.add_target(PATH, CONTENT)
    url_path = (
        "metadata/timestamp.json"
        if role == "timestamp"
        else f"metadata/{repo.snapshot.signed.version}.snapshot.json"
    )
    repo.overrides[url_path] = Endless()
    error = unavailable(client, target, DownloadLengthMismatchError)
    assert str(cap) in str(error.__cause__)


def test_oversize_metadata_is_refused_even_when_it_ends(
    client: TufClient, repo: SimulatedRepository
) -> None:
    target = repo.add_target(PATH, CONTENT)
    repo.overrides["metadata/timestamp.json"] = b" " * (TIMESTAMP_MAX_LENGTH + 1)
    unavailable(client, target, DownloadLengthMismatchError)


# --- Wrong hardware ------------------------------------------------------------------


def test_a_target_for_another_hardware_type_is_refused(
    client: TufClient, repo: SimulatedRepository, server: RepositoryServer
) -> None:
    target = repo.add_target(PATH, CONTENT, custom(hardware="jetson-orin"))
    refused(client, target, WRONG_HARDWARE)
    assert server.fetched("targets/") == []


def test_every_repository_error_is_transient_and_every_refusal_permanent() -> None:
    """The two outcomes do not overlap: a caller can tell them apart by type alone."""
    assert not issubclass(TargetUnavailable, TargetRefused)
    assert not issubclass(TargetRefused, TargetUnavailable)
    assert not issubclass(TargetRefused, RepositoryError)


# --- The real fleetd repository ---------------------------------------------------------


async def test_a_target_published_by_fleetd_verifies_end_to_end_with_the_fleet_ca(
    database_url: str, redis_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """As the agent: trusting the fleet CA, presenting the certificate of a device the
    target is assigned to (fleetd serves its repository only to its devices)."""
    async with running_deployment(database_url, redis_url) as dep:
        root = await _publish(dep, pool)
        cert, key = await _device_assigned_the_target(dep, pool)
        pinned = tmp_path / "tuf-root.json"
        pinned.write_bytes(root)
        _write_identity(tmp_path, cert, key)
        client = TufClient(
            metadata_dir=tmp_path / "metadata",
            targets_dir=tmp_path / "targets",
            metadata_url=f"{dep.api_endpoint}/tuf/metadata/",
            targets_url=f"{dep.api_endpoint}/tuf/targets/",
            ca_file=dep.settings.paths.ca_cert,
            pinned_root=pinned,
            client_cert=tmp_path / "device.pem",
            client_key=tmp_path / "device.key",
        )
        got = await asyncio.to_thread(
            client.fetch,
            PATH,
            expected_sha256=hashlib.sha256(CONTENT).hexdigest(),
            expected_length=len(CONTENT),
            device_type=DEVICE_TYPE,
            min_release_counter=12,
        )
        assert got.path.read_bytes() == CONTENT
        assert (got.release_counter, got.kind, got.name) == (12, "file", "app")
        with pytest.raises(TargetRefused) as info:
            await asyncio.to_thread(
                client.fetch,
                PATH,
                expected_sha256=got.sha256,
                expected_length=got.length,
                device_type="jetson-orin",
                min_release_counter=0,
            )
        assert info.value.reason == WRONG_HARDWARE


async def _device_assigned_the_target(dep: Deployment, pool: asyncpg.Pool) -> tuple[bytes, bytes]:
    """Enrol a device assigned PATH; its certificate and key (PEM)."""
    ca = CertificateAuthority.load(dep.settings.paths, "default")
    creds = await enrol_device(pool, ca, "rpi-tuf")
    spec = agent_pb2.ArtifactAssignment(
        deployment_id="dep-1",
        name="app",
        version="1.2.0",
        kind=agent_pb2.ARTIFACT_KIND_FILE,
        target_path=PATH,
        sha256=hashlib.sha256(CONTENT).hexdigest(),
        length=len(CONTENT),
    )
    async with pool.acquire() as conn:
        await create_assignments(conn, "rpi-tuf", [spec])
    return creds.cert_pem, creds.key_pem


def _write_identity(directory: Path, cert: bytes, key: bytes) -> None:
    (directory / "device.pem").write_bytes(cert)
    (directory / "device.key").write_bytes(key)


async def _publish(dep: Deployment, pool: asyncpg.Pool) -> bytes:
    """Sign PATH into the deployment's repository, store its blob; returns the root."""
    repo = TufRepository(pool, KeyDirs.under(dep.settings.paths.root))
    await repo.add_target(
        PATH,
        len(CONTENT),
        {"sha256": hashlib.sha256(CONTENT).hexdigest()},
        custom(release_counter=12),
    )
    store = FilesystemBlobStore(dep.settings.paths.blobs)
    async with store.writer(max_bytes=len(CONTENT)) as writer:
        await writer.write(CONTENT)
        await writer.commit()
    root: bytes = await pool.fetchval(
        "SELECT body FROM tuf_metadata WHERE role = 'root' ORDER BY version DESC LIMIT 1"
    )
    return bytes(root)
