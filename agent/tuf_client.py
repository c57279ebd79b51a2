"""The agent's TUF client: resolve, check and download one target, verified, or nothing.

Every artifact the agent installs comes through ``TufClient.fetch``: python-tuf's ngclient
refreshes the trusted metadata from the root the agent pinned at enrolment (root ->
timestamp -> snapshot -> targets, with every signature, threshold, version and expiry
check of the TUF client workflow), resolves the target path through the delegations,
``agent.tuf_policy`` checks the signed custom metadata against the device and the
assignment, and the content is streamed from the repository into the target cache,
bounded by the signed length and checked against the signed hashes before it gets its
name there. A file in the cache under a target's name has always been verified.

The download is the agent's rather than ``Updater.download_target``: ngclient spools a
target into an anonymous temporary file (``/tmp``, often a small tmpfs on a device, for a
model of several GB) and then copies it non-atomically to its final name. Here the bytes go
to a hidden ``.part`` file beside the final one, which is fsynced, verified with python-tuf's
``TargetFile.verify_length_and_hashes``, and renamed into place (directory fsynced). The
URL is ngclient's (consistent snapshots: ``<dir>/<sha256>.<name>``).

Errors: ``TargetRefused`` (``agent.tuf_policy``) is permanent for the assignment: signed,
verified metadata says this target is not for this device or not the assignment's.
Everything else is ``TargetUnavailable``, transient and retried: network and server errors,
and every python-tuf ``RepositoryError`` -- bad signatures, expired metadata (a freeze),
version rollbacks, mix-and-match, content that does not match its signed hashes or is
longer than signed. Those are attacks or faults of the repository or the path to it, not
properties of the target: once the attacker or the fault is gone, a later refresh
succeeds. Nothing unverified is ever returned or left under a target's name.

Concurrency: ngclient does not support two Updaters on one metadata directory at once, so
``fetch`` holds a lock; callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from urllib import parse

from tuf.api.exceptions import DownloadError, DownloadLengthMismatchError, RepositoryError
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

from agent.targets import TargetRefused, TargetUnavailable, VerifiedTarget
from agent.tuf_fetcher import AgentFetcher, close_stream
from agent.tuf_policy import (
    DIGEST_MISMATCH,
    INVALID_CUSTOM,
    RELEASE_COUNTER_ROLLBACK,
    UNKNOWN_TARGET,
    WRONG_HARDWARE,
    check_target,
)

__all__ = [
    "DIGEST_MISMATCH",
    "INVALID_CUSTOM",
    "RELEASE_COUNTER_ROLLBACK",
    "UNKNOWN_TARGET",
    "WRONG_HARDWARE",
    "TargetRefused",
    "TargetUnavailable",
    "TufClient",
    "VerifiedTarget",
    "consistent_snapshot",
    "download_verified",
    "find_verified",
    "open_updater",
    "remove_partials",
    "target_file",
    "target_url",
    "updater_config",
]

# Metadata size caps. The timestamp and snapshot are small whatever the fleet size (the
# snapshot lists one entry per targets role); fleetd's repository caps its `artifacts` role
# at 4 MB, so 5 MB (ngclient's default) leaves room without inviting endless data.
ROOT_MAX_LENGTH = 512_000
TIMESTAMP_MAX_LENGTH = 16_384
SNAPSHOT_MAX_LENGTH = 1_000_000
TARGETS_MAX_LENGTH = 5_000_000
MAX_ROOT_ROTATIONS = 256
MAX_DELEGATIONS = 32
_COPY_CHUNK = 1 << 20


def updater_config() -> UpdaterConfig:
    """The agent's ngclient configuration (also the conformance CLI's)."""
    return UpdaterConfig(
        max_root_rotations=MAX_ROOT_ROTATIONS,
        max_delegations=MAX_DELEGATIONS,
        root_max_length=ROOT_MAX_LENGTH,
        timestamp_max_length=TIMESTAMP_MAX_LENGTH,
        snapshot_max_length=SNAPSHOT_MAX_LENGTH,
        targets_max_length=TARGETS_MAX_LENGTH,
        prefix_targets_with_hash=True,
    )


def open_updater(
    metadata_dir: Path, metadata_url: str, fetcher: FetcherInterface, bootstrap: bytes | None
) -> Updater:
    """An ngclient Updater over ``metadata_dir`` (created 0700 if missing).

    ``bootstrap`` is the trust anchor; None trusts the ``root.json`` already in
    ``metadata_dir`` (the conformance CLI after ``init``)."""
    metadata_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Updater(
        str(metadata_dir),
        metadata_url,
        fetcher=fetcher,
        config=updater_config(),
        bootstrap=bootstrap,
    )


def target_file(targets_dir: Path, info: TargetFile) -> Path:
    """Where target ``info.path`` lives in ``targets_dir``: always the same name for the
    same path, one file name (the path URL-quoted, ``/`` included), so no escape."""
    return targets_dir / parse.quote(info.path, safe="")


def _verified(info: TargetFile, path: Path) -> bool:
    try:
        with path.open("rb") as f:
            info.verify_length_and_hashes(f)
    except (OSError, RepositoryError):
        return False
    return True


def find_verified(targets_dir: Path, info: TargetFile) -> Path | None:
    """The cached file of ``info`` if it is there and matches the signed length and hashes."""
    path = target_file(targets_dir, info)
    return path if _verified(info, path) else None


def target_url(target_base_url: str, info: TargetFile, consistent_snapshot: bool) -> str:
    """ngclient's URL of a target: ``<dir>/<first hash>.<name>`` under consistent snapshots."""
    base = target_base_url if target_base_url.endswith("/") else f"{target_base_url}/"
    path = info.path
    if consistent_snapshot:
        directory, sep, name = path.rpartition("/")
        path = f"{directory}{sep}{next(iter(info.hashes.values()))}.{name}"
    return f"{base}{path}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def download_verified(
    fetcher: FetcherInterface,
    info: TargetFile,
    url: str,
    targets_dir: Path,
) -> Path:
    """Stream ``url`` into ``targets_dir``, verify it against ``info``, name it.

    At most ``info.length`` bytes are accepted (DownloadLengthMismatchError past that);
    the ``.part`` file is removed on any failure, so the target's name only ever holds
    verified content. Raises python-tuf's DownloadError/RepositoryError or OSError."""
    targets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = target_file(targets_dir, info)
    part = final.with_name(f".{final.name}.part")
    try:
        with part.open("wb") as out:
            chunks = fetcher.fetch(url)
            try:
                received = 0
                for chunk in chunks:
                    received += len(chunk)
                    if received > info.length:
                        raise DownloadLengthMismatchError(
                            f"{url}: more than the signed {info.length} bytes"
                        )
                    out.write(chunk)
            finally:
                close_stream(chunks)  # an abandoned stream is closed now, not at GC
            out.flush()
            os.fsync(out.fileno())
        with part.open("rb") as f:
            info.verify_length_and_hashes(f)
        part.replace(final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    _fsync_dir(targets_dir)
    return final


def remove_partials(targets_dir: Path) -> None:
    """Remove the ``.part`` files a crash or kill left in ``targets_dir``."""
    if targets_dir.is_dir():
        for leftover in targets_dir.glob(".*.part"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def consistent_snapshot(metadata_dir: Path) -> bool:
    """Whether the trusted root (``root.json`` after a refresh) uses consistent snapshots.

    Only the download URL depends on it; what is accepted is decided by the hashes."""
    root = Metadata[Root].from_file(str(metadata_dir / "root.json")).signed
    return bool(root.consistent_snapshot)


class TufClient:
    """Fetches verified targets for the agent, from the pinned root (see module doc)."""

    def __init__(
        self,
        *,
        metadata_dir: Path,
        targets_dir: Path,
        metadata_url: str,
        targets_url: str,
        ca_file: Path | None,
        pinned_root: Path,
        fetcher: FetcherInterface | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
    ) -> None:
        """``client_cert`` / ``client_key``: the device's certificate and key, presented
        on every HTTPS request (fleetd serves targets only to the device they are
        assigned to); read when a connection opens, so they may arrive with enrolment
        and change with a renewal. Unused when ``fetcher`` is given."""
        self.metadata_dir = metadata_dir
        self.targets_dir = targets_dir
        self.metadata_url = metadata_url
        self.targets_url = targets_url
        self.pinned_root = pinned_root
        self._fetcher = (
            fetcher
            if fetcher is not None
            else AgentFetcher(ca_file, client_cert=client_cert, client_key=client_key)
        )
        self._lock = threading.Lock()
        remove_partials(targets_dir)

    def evict(self, target: VerifiedTarget) -> None:
        """Drop ``target`` from the cache once the caller has its own copy (disk space on
        a device is short); a later fetch downloads it again."""
        with self._lock, contextlib.suppress(FileNotFoundError):
            if target.path.parent == self.targets_dir:
                target.path.unlink()

    def fetch(
        self,
        target_path: str,
        *,
        expected_sha256: str,
        expected_length: int,
        device_type: str,
        min_release_counter: int,
    ) -> VerifiedTarget:
        """Refresh, resolve, check and download ``target_path``; synchronous.

        Raises TargetRefused (permanent, with ``.reason``) or TargetUnavailable
        (transient)."""
        with self._lock:
            try:
                return self._fetch(
                    target_path,
                    expected_sha256=expected_sha256,
                    expected_length=expected_length,
                    device_type=device_type,
                    min_release_counter=min_release_counter,
                )
            except TargetRefused:
                raise
            except (RepositoryError, DownloadError, OSError, ValueError) as e:
                raise TargetUnavailable(f"{target_path}: {type(e).__name__}: {e}") from e

    def _fetch(
        self,
        target_path: str,
        *,
        expected_sha256: str,
        expected_length: int,
        device_type: str,
        min_release_counter: int,
    ) -> VerifiedTarget:
        bootstrap = self.pinned_root.read_bytes()
        # A new Updater per fetch: ngclient refreshes once per instance. The pinned root is
        # the anchor every time; newer roots come from root_history/ (verified again) or
        # the repository.
        updater = open_updater(self.metadata_dir, self.metadata_url, self._fetcher, bootstrap)
        updater.refresh()
        info = updater.get_targetinfo(target_path)
        if info is None:
            raise TargetRefused(UNKNOWN_TARGET, f"{target_path}: no trusted role lists it")
        fields = check_target(
            target_path,
            custom=info.custom,
            sha256=info.hashes.get("sha256"),
            length=info.length,
            expected_sha256=expected_sha256,
            expected_length=expected_length,
            device_type=device_type,
            min_release_counter=min_release_counter,
        )
        path = find_verified(self.targets_dir, info)
        if path is None:
            url = target_url(self.targets_url, info, consistent_snapshot(self.metadata_dir))
            path = download_verified(self._fetcher, info, url, self.targets_dir)
        return VerifiedTarget(
            path=path,
            sha256=info.hashes["sha256"].lower(),
            length=info.length,
            hardware=fields.hardware,
            release_counter=fields.release_counter,
            kind=fields.kind,
            name=fields.name,
        )
