"""Pure edits of the repository's metadata: no IO, no clock, no key files.

Each function takes the latest published version of every role (:class:`Published`) and
the signers it needs, and returns the new versions to publish as ``(role, Metadata)``
pairs, in the order a client must see them. Storage (``store``) and key handling
(``keys``) are the callers' business, so every rule here is testable on its own.

Invariants kept here:

- versions only grow by one per publication; a role's expiry is set from ``now``;
- whatever changes a targets role also publishes a new snapshot and timestamp listing it;
- a new root is signed by a threshold of the previous root's keys *and* of its own (TUF
  5.3.4), so clients pinned to any earlier root can walk to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Role,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from fleetd.services.tuf_repo.roles import (
    ARTIFACTS,
    ONLINE_ROLES,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    expiry,
    resign_due,
)

Publication = list[tuple[str, Metadata[Any]]]

ALL_PATHS = [f"{digit:x}" for digit in range(16)]
"""Every target path, as hash prefixes: TUF's path patterns match one directory level per
``*``, while the 16 one-digit prefixes cover every path hash (and are the first step of
hash-bin delegation, should one role's metadata grow too large)."""


@dataclass(frozen=True, slots=True)
class Published:
    """The newest version of each role."""

    root: Metadata[Root]
    targets: Metadata[Targets]
    artifacts: Metadata[Targets]
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]

    def by_role(self) -> dict[str, Metadata[Any]]:
        return {
            ROOT: self.root,
            TARGETS: self.targets,
            ARTIFACTS: self.artifacts,
            SNAPSHOT: self.snapshot,
            TIMESTAMP: self.timestamp,
        }

    def apply(self, publication: Publication) -> Published:
        """This state with ``publication``'s versions in place."""
        return replace(self, **dict(publication))


@dataclass(frozen=True, slots=True)
class OnlineSigners:
    artifacts: Sequence[Signer]
    snapshot: Sequence[Signer]
    timestamp: Sequence[Signer]


def _artifacts_delegation(targets: Targets) -> DelegatedRole:
    roles = targets.delegations.roles if targets.delegations is not None else None
    if roles is None or ARTIFACTS not in roles:
        raise ValueError(f"top-level targets does not delegate to {ARTIFACTS}")
    return roles[ARTIFACTS]


def sign(md: Metadata[Any], signers: Sequence[Signer]) -> Metadata[Any]:
    """Replace ``md``'s signatures with one from each signer (in place; returned)."""
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return md


def create(
    *,
    root_keys: Sequence[Signer],
    root_threshold: int,
    targets_keys: Sequence[Signer],
    online: OnlineSigners,
    now: dt.datetime,
) -> Publication:
    """Version 1 of every role: consistent snapshots on; ``targets`` delegates every path
    to ``artifacts`` (terminating; ALL_PATHS), whose key is online."""
    if not 1 <= root_threshold <= len(root_keys):
        raise ValueError(
            f"root threshold {root_threshold} needs between 1 and {len(root_keys)} root keys"
        )
    root = Root(expires=expiry(ROOT, now), consistent_snapshot=True)
    for signer in root_keys:
        root.add_key(signer.public_key, ROOT)
    root.roles[ROOT].threshold = root_threshold
    for role, signers in (
        (TARGETS, targets_keys),
        (SNAPSHOT, online.snapshot),
        (TIMESTAMP, online.timestamp),
    ):
        for signer in signers:
            root.add_key(signer.public_key, role)
    root_md = sign(Metadata(root), root_keys)

    targets = Targets(expires=expiry(TARGETS, now))
    targets.delegations = Delegations(
        keys={s.public_key.keyid: s.public_key for s in online.artifacts},
        roles={
            ARTIFACTS: DelegatedRole(
                ARTIFACTS,
                [s.public_key.keyid for s in online.artifacts],
                1,
                True,
                path_hash_prefixes=ALL_PATHS,
            )
        },
    )
    targets_md = sign(Metadata(targets), targets_keys)
    artifacts_md = sign(Metadata(Targets(expires=expiry(ARTIFACTS, now))), online.artifacts)
    snapshot = Snapshot(expires=expiry(SNAPSHOT, now))
    snapshot.meta = {f"{TARGETS}.json": MetaFile(1), f"{ARTIFACTS}.json": MetaFile(1)}
    snapshot_md = sign(Metadata(snapshot), online.snapshot)
    timestamp = Timestamp(expires=expiry(TIMESTAMP, now), snapshot_meta=MetaFile(1))
    timestamp_md = sign(Metadata(timestamp), online.timestamp)
    return [
        (ROOT, root_md),
        (TARGETS, targets_md),
        (ARTIFACTS, artifacts_md),
        (SNAPSHOT, snapshot_md),
        (TIMESTAMP, timestamp_md),
    ]


def _bump(md: Metadata[Any], role: str, now: dt.datetime) -> None:
    md.signed.version += 1
    md.signed.expires = expiry(role, now)


def _snapshot_and_timestamp(
    state: Published,
    changed: Publication,
    online: OnlineSigners,
    now: dt.datetime,
) -> Publication:
    """A new snapshot listing the ``changed`` targets roles' versions, and a new
    timestamp listing that snapshot."""
    snapshot = _copy(state.snapshot)
    for role, md in changed:
        snapshot.signed.meta[f"{role}.json"] = MetaFile(md.signed.version)
    _bump(snapshot, SNAPSHOT, now)
    sign(snapshot, online.snapshot)
    timestamp = _copy(state.timestamp)
    timestamp.signed.snapshot_meta = MetaFile(snapshot.signed.version)
    _bump(timestamp, TIMESTAMP, now)
    sign(timestamp, online.timestamp)
    return [(SNAPSHOT, snapshot), (TIMESTAMP, timestamp)]


def _copy(md: Metadata[Any]) -> Metadata[Any]:
    """A deep copy, so callers' ``Published`` values are never changed under them."""
    return Metadata.from_bytes(md.to_bytes())


def add_targets(
    state: Published, new: Sequence[TargetFile], online: OnlineSigners, now: dt.datetime
) -> Publication:
    """``new`` signed into ``artifacts`` (one new version for all of them), then a new
    snapshot and timestamp."""
    artifacts = _copy(state.artifacts)
    for target in new:
        artifacts.signed.targets[target.path] = target
    _bump(artifacts, ARTIFACTS, now)
    sign(artifacts, online.artifacts)
    changed: Publication = [(ARTIFACTS, artifacts)]
    return changed + _snapshot_and_timestamp(state, changed, online, now)


def due_roles(state: Published, now: dt.datetime) -> list[str]:
    """The online roles whose signatures are past half their lifetime."""
    current: dict[str, Metadata[Any]] = {
        ARTIFACTS: state.artifacts,
        SNAPSHOT: state.snapshot,
        TIMESTAMP: state.timestamp,
    }
    return [r for r in ONLINE_ROLES if resign_due(r, current[r].signed.expires, now)]


def refresh(state: Published, online: OnlineSigners, now: dt.datetime) -> Publication:
    """New versions of the online roles that are due, and of those that list them: a
    re-signed ``artifacts`` needs a new snapshot, a new snapshot a new timestamp.
    Empty when nothing is due."""
    due = due_roles(state, now)
    if ARTIFACTS in due:
        artifacts = _copy(state.artifacts)
        _bump(artifacts, ARTIFACTS, now)
        sign(artifacts, online.artifacts)
        changed: Publication = [(ARTIFACTS, artifacts)]
        return changed + _snapshot_and_timestamp(state, changed, online, now)
    if SNAPSHOT in due:
        return _snapshot_and_timestamp(state, [], online, now)
    if TIMESTAMP in due:
        timestamp = _copy(state.timestamp)
        _bump(timestamp, TIMESTAMP, now)
        sign(timestamp, online.timestamp)
        return [(TIMESTAMP, timestamp)]
    return []


def new_root(
    state: Published,
    *,
    old_root_signers: Sequence[Signer],
    new_root_signers: Sequence[Signer],
    root_threshold: int | None = None,
    replace_keys: dict[str, Sequence[Key]] | None = None,
    now: dt.datetime,
) -> Metadata[Root]:
    """The next root version: the same roles and keys except ``replace_keys`` (top-level
    role -> its new public keys; the root role's own new keys are ``new_root_signers``'),
    ``root_threshold`` if given, a fresh expiry; signed by the old keys and the new ones.

    Raises:
        ValueError: a threshold the role's keys cannot reach, or too few signers of the
            old or the new root (checked with python-tuf's own verification).
    """
    root_md = _copy(state.root)
    root: Root = root_md.signed
    changes = dict(replace_keys or {})
    changes[ROOT] = [s.public_key for s in new_root_signers]
    for role, keys in changes.items():
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        for key in keys:
            root.add_key(key, role)
    if root_threshold is not None:
        root.roles[ROOT].threshold = root_threshold
    for role, spec in root.roles.items():
        if not 1 <= spec.threshold <= len(spec.keyids):
            raise ValueError(f"{role}: threshold {spec.threshold} with {len(spec.keyids)} key(s)")
    _bump(root_md, ROOT, now)
    signers = {s.public_key.keyid: s for s in [*old_root_signers, *new_root_signers]}
    sign(root_md, list(signers.values()))
    state.root.signed.verify_delegate(ROOT, root_md.signed_bytes, root_md.signatures)
    root.verify_delegate(ROOT, root_md.signed_bytes, root_md.signatures)
    return root_md


def resign_targets(
    state: Published,
    targets_signers: Sequence[Signer],
    online: OnlineSigners,
    now: dt.datetime,
    *,
    artifacts_keys: Sequence[Key] | None = None,
) -> Publication:
    """A new top-level targets version (fresh expiry; the artifacts delegation's keys
    replaced by ``artifacts_keys`` if given, then ``artifacts`` re-signed by ``online``),
    with the snapshot and timestamp that list it."""
    targets = _copy(state.targets)
    if artifacts_keys is not None:
        delegated = _artifacts_delegation(targets.signed)
        for keyid in list(delegated.keyids):
            targets.signed.revoke_key(keyid, ARTIFACTS)
        for key in artifacts_keys:
            targets.signed.add_key(key, ARTIFACTS)
    _bump(targets, TARGETS, now)
    sign(targets, targets_signers)
    changed: Publication = [(TARGETS, targets)]
    if artifacts_keys is not None:
        artifacts = _copy(state.artifacts)
        _bump(artifacts, ARTIFACTS, now)
        sign(artifacts, online.artifacts)
        changed.append((ARTIFACTS, artifacts))
    return changed + _snapshot_and_timestamp(state, changed, online, now)


def roles_keyids(state: Published) -> dict[str, tuple[list[str], int]]:
    """Key ids and threshold of every role, the delegated one included."""
    root: Root = state.root.signed
    out: dict[str, tuple[list[str], int]] = {
        name: (list(spec.keyids), spec.threshold) for name, spec in root.roles.items()
    }
    delegated: Role = _artifacts_delegation(state.targets.signed)
    out[ARTIFACTS] = (list(delegated.keyids), delegated.threshold)
    return out


def republish_snapshot(state: Published, online: OnlineSigners, now: dt.datetime) -> Publication:
    """A new snapshot and timestamp with nothing else changed: after their keys changed
    in a new root, so that what clients fetch next is signed by the new keys."""
    return _snapshot_and_timestamp(state, [], online, now)
