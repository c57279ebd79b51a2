"""Creating the repository and changing its offline roles (``fleetd init``, ``fleetd tuf``).

These need the offline keys (root, top-level targets). Order matters for safety: new
keys are written to disk *before* the metadata naming them is published, and replaced
keys are retired (moved, not deleted) only *after* it is published, so an interrupted
rotation never leaves the repository signed by keys nobody holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from securesystemslib.signer import Key, Signer

from fleetd.services.tuf_repo import edits, published
from fleetd.services.tuf_repo.keys import KeyDirs, signers_for
from fleetd.services.tuf_repo.roles import (
    ALL_ROLES,
    ARTIFACTS,
    OFFLINE_ROLES,
    OFFLINE_WARNING,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    utcnow,
)
from fleetd.storage import tuf_metadata
from fleetd.storage.types import Pool, Queryable


def _keys_for(dirs: KeyDirs, role: str, count: int) -> list[Signer]:
    """``count`` keys of ``role``: those on disk first (an interrupted init), then new."""
    signers: list[Signer] = []
    signers.extend(dirs.load(role)[:count])
    while len(signers) < count:
        signers.append(dirs.generate(role))
    return signers


async def create_repository(
    pool: Pool,
    dirs: KeyDirs,
    *,
    root_keys: int = 1,
    root_threshold: int = 1,
    now: dt.datetime | None = None,
) -> bool:
    """Version 1 of every role, unless a repository exists (then nothing; False)."""
    if not 1 <= root_threshold <= root_keys:
        raise ValueError(f"root threshold {root_threshold} needs 1..{root_keys} root keys")
    if await published.load(pool) is not None:
        return False
    publication = edits.create(
        root_keys=_keys_for(dirs, ROOT, root_keys),
        root_threshold=root_threshold,
        targets_keys=_keys_for(dirs, TARGETS, 1),
        online=edits.OnlineSigners(
            _keys_for(dirs, ARTIFACTS, 1),
            _keys_for(dirs, SNAPSHOT, 1),
            _keys_for(dirs, TIMESTAMP, 1),
        ),
        now=now or utcnow(),
    )
    async with tuf_metadata.locked(pool) as conn:
        if await published.load(conn) is not None:  # another process won the race
            return False
        await published.insert(conn, publication)
    return True


async def _current(conn: Queryable) -> edits.Published:
    state = await published.load(conn)
    if state is None:
        raise RuntimeError("no TUF repository yet: run `fleetd init`")
    return state


def _role_signers(dirs: KeyDirs, state: edits.Published, role: str) -> list[Signer]:
    keyids, threshold = edits.roles_keyids(state)[role]
    return list(signers_for(dirs, role, keyids, threshold))


def _online(dirs: KeyDirs, state: edits.Published) -> edits.OnlineSigners:
    return edits.OnlineSigners(
        _role_signers(dirs, state, ARTIFACTS),
        _role_signers(dirs, state, SNAPSHOT),
        _role_signers(dirs, state, TIMESTAMP),
    )


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a rotation published and which key ids it retired."""

    published: list[tuple[str, int]]
    retired: list[tuple[str, str]]


async def rotate_root(
    pool: Pool,
    dirs: KeyDirs,
    *,
    keys: int | None = None,
    threshold: int | None = None,
    keep_keys: bool = False,
    online: bool = False,
    now: dt.datetime | None = None,
) -> Rotation:
    """Publish the next root: with ``keys`` new root keys (default: as many as now), or
    the same keys re-signed (``keep_keys``) with a fresh expiry; ``threshold`` changes
    the root threshold; ``online`` also replaces the snapshot and timestamp keys (then a
    new snapshot and timestamp signed by them follow).

    Raises:
        MissingKeys: fewer than a threshold of the current root's keys are at hand.
    """
    now = now or utcnow()
    async with tuf_metadata.locked(pool) as conn:
        state = await _current(conn)
        old_ids, _ = edits.roles_keyids(state)[ROOT]
        old_signers = _role_signers(dirs, state, ROOT)
        if keep_keys:
            if keys is not None:
                raise ValueError("--keys and --keep-keys exclude each other")
            new_signers = dirs.load(ROOT, old_ids)
        else:
            new_signers = [dirs.generate(ROOT) for _ in range(keys or len(old_ids))]
        replace: dict[str, Sequence[Key]] = {}
        retired: list[tuple[str, str]] = []
        if online:
            for role in (SNAPSHOT, TIMESTAMP):
                replace[role] = [dirs.generate(role).public_key]
                retired += [(role, k) for k in edits.roles_keyids(state)[role][0]]
        root = edits.new_root(
            state,
            old_root_signers=old_signers,
            new_root_signers=new_signers,
            root_threshold=threshold,
            replace_keys=replace,
            now=now,
        )
        publication: edits.Publication = [(ROOT, root)]
        if online:
            state = state.apply(publication)
            publication += edits.republish_snapshot(state, _online(dirs, state), now)
        await published.insert(conn, publication)
    if not keep_keys:
        retired += [(ROOT, k) for k in old_ids]
    for role, keyid in retired:
        dirs.retire(role, keyid)
    return Rotation([(r, md.signed.version) for r, md in publication], retired)


async def rotate_targets(
    pool: Pool,
    dirs: KeyDirs,
    *,
    keep_keys: bool = False,
    artifacts: bool = False,
    now: dt.datetime | None = None,
) -> Rotation:
    """Publish the next top-level targets: signed by a new key (listed in a new root,
    which needs the root keys) or re-signed with the same key (``keep_keys``: no new
    root). ``artifacts`` also replaces the delegated online role's key."""
    now = now or utcnow()
    async with tuf_metadata.locked(pool) as conn:
        state = await _current(conn)
        old_targets = edits.roles_keyids(state)[TARGETS][0]
        old_artifacts = edits.roles_keyids(state)[ARTIFACTS][0]
        publication: edits.Publication = []
        if keep_keys:
            targets_signers = _role_signers(dirs, state, TARGETS)
        else:
            root_signers = _role_signers(dirs, state, ROOT)
            targets_signers = [dirs.generate(TARGETS)]
            root = edits.new_root(
                state,
                old_root_signers=root_signers,
                new_root_signers=root_signers,
                replace_keys={TARGETS: [s.public_key for s in targets_signers]},
                now=now,
            )
            publication.append((ROOT, root))
            state = state.apply(publication)
        online = _online(dirs, state)
        new_artifacts: list[Key] | None = None
        if artifacts:
            signer = dirs.generate(ARTIFACTS)
            new_artifacts = [signer.public_key]
            online = edits.OnlineSigners([signer], online.snapshot, online.timestamp)
        publication += edits.resign_targets(
            state, targets_signers, online, now, artifacts_keys=new_artifacts
        )
        await published.insert(conn, publication)
    retired: list[tuple[str, str]] = []
    if not keep_keys:
        retired += [(TARGETS, k) for k in old_targets]
    if artifacts:
        retired += [(ARTIFACTS, k) for k in old_artifacts]
    for role, keyid in retired:
        dirs.retire(role, keyid)
    return Rotation([(r, md.signed.version) for r, md in publication], retired)


@dataclass(frozen=True, slots=True)
class RoleStatus:
    role: str
    version: int
    expires: dt.datetime
    keyids: list[str]
    threshold: int
    keys_here: int
    """How many of the role's private keys this node holds."""
    warning: str


async def status(pool: Pool, dirs: KeyDirs, now: dt.datetime | None = None) -> list[RoleStatus]:
    """Every role's newest version, expiry, keys and a warning where action is needed."""
    now = now or utcnow()
    state = await _current(pool)
    current = state.by_role()
    out: list[RoleStatus] = []
    for role in ALL_ROLES:
        keyids, threshold = edits.roles_keyids(state)[role]
        expires = current[role].signed.expires
        here = len(dirs.load(role, keyids))
        warning = ""
        if expires <= now:
            warning = "EXPIRED"
        elif role in OFFLINE_ROLES and expires - now < OFFLINE_WARNING:
            command = "rotate-root" if role == ROOT else "rotate-targets"
            warning = f"expires soon: fleetd tuf {command} --keep-keys"
        elif role not in OFFLINE_ROLES and here < threshold:
            warning = "online key missing on this node: it cannot sign"
        out.append(
            RoleStatus(
                role, current[role].signed.version, expires, keyids, threshold, here, warning
            )
        )
    return out
