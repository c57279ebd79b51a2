"""A simulated TUF repository for client tests, built with python-tuf's Metadata API.

Shaped like fleetd's (``fleetd/services/tuf_repo``): ``root``; ``targets`` delegating every path
(all 16 one-digit path-hash prefixes, terminating) to ``artifacts``, which lists the
targets; ``snapshot``; ``timestamp``; consistent snapshots, so metadata is served as
``<version>.<role>.json`` (the timestamp also as ``timestamp.json``) and targets as
``<dir>/<sha256>.<name>``. Everything is kept in memory as the exact bytes that were
signed, under the path the server serves them at (relative to its base URL).

The repository is honest by default. Tests play the attacker through small, explicit
knobs: sign a role with another key, publish a version out of order, serve other bytes
(or an endless stream) at a URL through ``overrides``. ``tests/support/tuf_server.py``
serves it over real HTTP(S).
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field
from typing import Any

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROOT, TARGETS, SNAPSHOT, TIMESTAMP, ARTIFACTS = (
    "root",
    "targets",
    "snapshot",
    "timestamp",
    "artifacts",
)
ALL_PATHS = [f"{i:x}" for i in range(16)]
LIFETIME = {
    ROOT: datetime.timedelta(days=365),
    TARGETS: datetime.timedelta(days=365),
    ARTIFACTS: datetime.timedelta(days=30),
    SNAPSHOT: datetime.timedelta(days=7),
    TIMESTAMP: datetime.timedelta(days=1),
}


@dataclass(frozen=True, slots=True)
class Endless:
    """Served instead of a file: ``chunk`` repeated until the client hangs up."""

    chunk: bytes = b"\0" * 65536


def custom(
    hardware: str = "raspberry-pi", release_counter: int = 12, kind: str = "file", name: str = "app"
) -> dict[str, Any]:
    """A fleetd target's custom metadata."""
    return {"hardware": hardware, "release_counter": release_counter, "kind": kind, "name": name}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


@dataclass
class SimulatedRepository:
    """An in-memory TUF repository; ``files`` is what an honest server serves."""

    signers: dict[str, Signer] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    overrides: dict[str, bytes | Endless] = field(default_factory=dict)
    """URL paths (relative to the base) served instead of ``files``: the attacker's."""

    def __post_init__(self) -> None:
        for role in (ROOT, TARGETS, SNAPSHOT, TIMESTAMP, ARTIFACTS):
            self.signers.setdefault(role, CryptoSigner.generate_ed25519())
        root = Root(expires=_now() + LIFETIME[ROOT], consistent_snapshot=True)
        for role in (ROOT, TARGETS, SNAPSHOT, TIMESTAMP):
            root.add_key(self.signers[role].public_key, role)
        artifacts_key = self.signers[ARTIFACTS].public_key
        targets = Targets(expires=_now() + LIFETIME[TARGETS])
        targets.delegations = Delegations(
            keys={artifacts_key.keyid: artifacts_key},
            roles={
                ARTIFACTS: DelegatedRole(
                    ARTIFACTS, [artifacts_key.keyid], 1, True, path_hash_prefixes=ALL_PATHS
                )
            },
        )
        self.root: Metadata[Root] = Metadata(root)
        self.targets: Metadata[Targets] = Metadata(targets)
        self.artifacts: Metadata[Targets] = Metadata(Targets(expires=_now() + LIFETIME[ARTIFACTS]))
        self.snapshot: Metadata[Snapshot] = Metadata(Snapshot(expires=_now() + LIFETIME[SNAPSHOT]))
        self.timestamp: Metadata[Timestamp] = Metadata(
            Timestamp(expires=_now() + LIFETIME[TIMESTAMP], snapshot_meta=MetaFile(1))
        )
        for role in (ROOT, TARGETS, ARTIFACTS):
            self.sign(role, bump=False)
        self.publish_snapshot(bump=False)

    def metadata(self, role: str) -> Metadata[Any]:
        roles: dict[str, Metadata[Any]] = {
            ROOT: self.root,
            TARGETS: self.targets,
            ARTIFACTS: self.artifacts,
            SNAPSHOT: self.snapshot,
            TIMESTAMP: self.timestamp,
        }
        return roles[role]

    def sign(
        self,
        role: str,
        *,
        bump: bool = True,
        signer: Signer | None = None,
        expires: datetime.datetime | None = None,
    ) -> bytes:
        """Re-sign ``role`` (next version unless ``bump=False``) with its key, or
        ``signer``; store and return the bytes. Nothing else changes: publishing the new
        version in the snapshot and timestamp is the caller's move."""
        md = self.metadata(role)
        if bump:
            md.signed.version += 1
        md.signed.expires = expires if expires is not None else _now() + LIFETIME[role]
        md.signatures.clear()
        md.sign(signer if signer is not None else self.signers[role])
        data = md.to_bytes(JSONSerializer())
        self.files[f"metadata/{md.signed.version}.{role}.json"] = data
        if role == TIMESTAMP:
            self.files["metadata/timestamp.json"] = data
        return data

    def publish_snapshot(
        self,
        *,
        bump: bool = True,
        versions: dict[str, int] | None = None,
        timestamp_expires: datetime.datetime | None = None,
    ) -> None:
        """A new snapshot of the current targets roles (or of ``versions``), then a new
        timestamp for it."""
        meta = {TARGETS: self.targets.signed.version, ARTIFACTS: self.artifacts.signed.version}
        meta.update(versions or {})
        self.snapshot.signed.meta = {f"{role}.json": MetaFile(v) for role, v in meta.items()}
        self.sign(SNAPSHOT, bump=bump)
        self.publish_timestamp(bump=bump, expires=timestamp_expires)

    def publish_timestamp(
        self,
        *,
        bump: bool = True,
        snapshot_version: int | None = None,
        expires: datetime.datetime | None = None,
    ) -> bytes:
        """A new timestamp naming the current snapshot (or ``snapshot_version``)."""
        version = snapshot_version if snapshot_version is not None else self.snapshot.signed.version
        self.timestamp.signed.snapshot_meta = MetaFile(version)
        return self.sign(TIMESTAMP, bump=bump, expires=expires)

    def add_target(
        self,
        path: str,
        content: bytes,
        custom_metadata: dict[str, Any] | None = None,
        *,
        signer: Signer | None = None,
    ) -> TargetFile:
        """Sign ``path`` into ``artifacts`` (with its key, or ``signer``), serve its
        content, and publish a new snapshot and timestamp."""
        target = TargetFile.from_data(path, content, ["sha256"])
        target.unrecognized_fields["custom"] = (
            custom() if custom_metadata is None else custom_metadata
        )
        self.artifacts.signed.targets[path] = target
        self.files[self.target_url_path(target)] = content
        self.sign(ARTIFACTS, signer=signer)
        self.publish_snapshot()
        return target

    def rotate_root(self) -> Signer:
        """A new root key replacing the old one: root version N+1 signed by both (TUF
        5.3.4), so a client pinned to an older root can walk to it. Returns the new key."""
        old = self.signers[ROOT]
        new = CryptoSigner.generate_ed25519()
        self.root.signed.revoke_key(old.public_key.keyid, ROOT)
        self.root.signed.add_key(new.public_key, ROOT)
        self.root.signed.version += 1
        self.root.signed.expires = _now() + LIFETIME[ROOT]
        self.root.signatures.clear()
        self.root.sign(old, append=True)
        self.root.sign(new, append=True)
        self.files[f"metadata/{self.root.signed.version}.root.json"] = self.root.to_bytes(
            JSONSerializer()
        )
        self.signers[ROOT] = new
        return new

    @staticmethod
    def target_url_path(target: TargetFile) -> str:
        """Where a target's content is served (consistent snapshots)."""
        directory, sep, name = target.path.rpartition("/")
        return f"targets/{directory}{sep}{target.hashes['sha256']}.{name}"

    @property
    def root_bytes(self) -> bytes:
        """The current root as published (what a device pins)."""
        return self.files[f"metadata/{self.root.signed.version}.root.json"]

    def serve(self, path: str) -> bytes | Endless | None:
        """What the server answers for ``path`` (relative to its base), None for 404."""
        if path in self.overrides:
            return self.overrides[path]
        return self.files.get(path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
