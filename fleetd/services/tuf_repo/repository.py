"""The online repository: what the control API does with TUF (add targets, keep the
timestamp fresh, serve metadata).

Every write runs in one PostgreSQL transaction under the repository's writer lock
(``tuf_metadata.locked``): read the newest versions, compute the next ones (``edits``, pure),
insert them. Replicas therefore never fork a role's history, and a failed write publishes
nothing. Signing uses the online keys only (``keys.KeyDirs.online``); the offline roles
are changed by ``fleetd.services.tuf_repo.admin``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuf.api.metadata import TargetFile

from fleetd.domain.signed_target import TargetCustom
from fleetd.services.tuf_repo import edits, published
from fleetd.services.tuf_repo.keys import KeyDirs, signers_for
from fleetd.services.tuf_repo.roles import (
    ALL_ROLES,
    ARTIFACTS,
    ONLINE_ROLES,
    ROOT,
    SNAPSHOT,
    TIMESTAMP,
    resign_due,
    utcnow,
)
from fleetd.storage import tuf_metadata
from fleetd.storage.types import Pool, Queryable

log = logging.getLogger(__name__)

MAX_TARGETS_METADATA = 4_000_000
"""Largest ``artifacts`` metadata this repository signs, in bytes: below python-tuf's
default client limit for targets metadata (5,000,000), so every client can fetch it."""

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSIONED = re.compile(r"^([1-9][0-9]{0,9})\.([a-z][a-z0-9-]{0,63})\.json$")
MAX_TARGET_PATH = 512


class RepositoryMissing(RuntimeError):
    """No repository has been created: run ``fleetd init``."""


class TargetConflict(ValueError):
    """The target path is already signed with other content; publish under a new path."""


class RepositoryFull(ValueError):
    """The delegated role's metadata would exceed MAX_TARGETS_METADATA."""


def check_target_path(path: str) -> str:
    """``path`` if it is a safe TUF target path: ``/``-separated segments of letters,
    digits and ``. _ + -``, not starting with ``.``, at most MAX_TARGET_PATH long (it
    becomes part of URLs and, on devices, of file names).

    Raises:
        ValueError: naming what is wrong.
    """
    if len(path) > MAX_TARGET_PATH:
        raise ValueError(f"target path longer than {MAX_TARGET_PATH} characters")
    if not all(_SEGMENT.match(segment) for segment in path.split("/")):
        raise ValueError(
            f"target path {path[:80]!r}: use '/'-separated names of letters, digits, . _ + -"
            " (no leading '.', no empty segments)"
        )
    return path


def split_target_url(name: str) -> tuple[str, str] | None:
    """``dir/<sha256>.file`` (a consistent-snapshot target file name) -> (``dir/file``,
    sha256); None when ``name`` is not of that form."""
    directory, _, base = name.rpartition("/")
    digest, dot, rest = base.partition(".")
    if not dot or not _SHA256.match(digest) or not rest:
        return None
    path = f"{directory}/{rest}" if directory else rest
    try:
        check_target_path(path)
    except ValueError:
        return None
    return path, digest


@dataclass(frozen=True, slots=True)
class NewTarget:
    """A target to sign: its path, length, hashes (with ``sha256``) and custom metadata."""

    path: str
    length: int
    hashes: Mapping[str, str]
    custom: TargetCustom | Mapping[str, Any]


def _checked_target(item: NewTarget) -> tuple[TargetFile, TargetCustom]:
    check_target_path(item.path)
    custom = item.custom
    if isinstance(custom, Mapping):
        custom = TargetCustom.from_json(dict(custom))
    if not _SHA256.match(item.hashes.get("sha256", "")):
        raise ValueError("hashes must include sha256 as 64 lowercase hex digits")
    length = item.length
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length {length!r}: a whole number of bytes >= 0")
    target = TargetFile(length, dict(item.hashes), item.path, {"custom": custom.to_json()})
    return target, custom


def _same_content(a: TargetFile, b: TargetFile) -> bool:
    return a.hashes == b.hashes and a.length == b.length


class TufRepository:
    """The repository as seen by one control API process (any number may share it)."""

    def __init__(
        self, pool: Pool, keys: KeyDirs, *, clock: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self._pool = pool
        self._keys = keys
        self._clock = clock

    def _online(self, state: edits.Published) -> edits.OnlineSigners:
        roles = edits.roles_keyids(state)
        found = {
            role: signers_for(self._keys, role, *roles[role])
            for role in (ARTIFACTS, SNAPSHOT, TIMESTAMP)
        }
        return edits.OnlineSigners(found[ARTIFACTS], found[SNAPSHOT], found[TIMESTAMP])

    async def _state(self, conn: Queryable) -> edits.Published:
        state = await published.load(conn)
        if state is None:
            raise RepositoryMissing("no TUF repository yet: run `fleetd init`")
        return state

    async def add_target(
        self,
        path: str,
        length: int,
        hashes: Mapping[str, str],
        custom: TargetCustom | Mapping[str, Any],
    ) -> TargetFile:
        """Sign one target; see :meth:`add_targets`."""
        return (await self.add_targets([NewTarget(path, length, hashes, custom)]))[0]

    async def add_targets(self, new: Sequence[NewTarget]) -> list[TargetFile]:
        """Sign targets into the ``artifacts`` role and publish snapshot and timestamp:
        one new version of each, however many targets (an update's artifacts are
        published together, and clients download one metadata version for them).

        ``hashes`` must hold ``sha256`` (the blob store's key, 64 lowercase hex digits).
        A target whose path is signed already with the same content is returned as
        signed; when every target is, nothing is published.

        Raises:
            ValueError: a malformed path, length, hash or custom metadata, or one path
                twice with different content.
            TargetConflict: a path is signed already with other content.
            RepositoryFull: the artifacts metadata would grow past its size limit.
        """
        checked = [_checked_target(item) for item in new]
        by_path: dict[str, tuple[TargetFile, TargetCustom]] = {}
        for target, custom in checked:
            seen = by_path.get(target.path)
            if seen is not None and not _same_content(seen[0], target):
                raise ValueError(f"target {target.path} is given twice with different content")
            by_path[target.path] = (target, custom)
        async with tuf_metadata.locked(self._pool) as conn:
            state = await self._state(conn)
            signed = state.artifacts.signed.targets
            missing: list[tuple[TargetFile, TargetCustom]] = []
            for target, custom in by_path.values():
                existing = signed.get(target.path)
                if existing is None:
                    missing.append((target, custom))
                elif not _same_content(existing, target):
                    raise TargetConflict(
                        f"target {target.path} is already signed with other content"
                    )
            if missing:
                publication = edits.add_targets(
                    state, [t for t, _ in missing], self._online(state), self._clock()
                )
                size = len(publication[0][1].to_bytes())
                if size > MAX_TARGETS_METADATA:
                    raise RepositoryFull(
                        f"artifacts metadata would be {size} bytes (limit {MAX_TARGETS_METADATA})"
                    )
                await published.insert(conn, publication)
                for target, custom in missing:
                    await tuf_metadata.insert_target(
                        conn, target.path, target.hashes["sha256"], target.length, custom
                    )
        return [signed.get(t.path) or t for t, _ in checked]

    async def refresh_if_due(self) -> list[str]:
        """Re-sign the online roles past half their lifetime (and what lists them);
        returns the roles published, empty when nothing was due. Cheap when nothing is
        due: one small read (versions and expiries, no bodies), no lock."""
        current = await tuf_metadata.versions(self._pool)
        if not current:
            raise RepositoryMissing("no TUF repository yet: run `fleetd init`")
        now = self._clock()
        if not any(resign_due(r, current[r][1], now) for r in ONLINE_ROLES if r in current):
            return []
        async with tuf_metadata.locked(self._pool) as conn:
            state = await self._state(conn)  # another replica may have done it meanwhile
            publication = edits.refresh(state, self._online(state), self._clock())
            await published.insert(conn, publication)
        roles = [role for role, _ in publication]
        if roles:
            log.info("TUF: re-signed %s", ", ".join(roles))
        return roles

    async def metadata(self, name: str) -> bytes | None:
        """A metadata file by its served name: ``<version>.<role>.json`` for any role,
        ``timestamp.json`` and ``root.json`` (the newest); None for anything else."""
        if name == "timestamp.json":
            return await tuf_metadata.body(self._pool, TIMESTAMP, None)
        if name == "root.json":
            return await tuf_metadata.body(self._pool, ROOT, None)
        match = _VERSIONED.match(name)
        if match is None or match[2] not in ALL_ROLES:
            return None
        return await tuf_metadata.body(self._pool, match[2], int(match[1]))

    async def root(self) -> bytes | None:
        """The newest root, as clients should pin it at enrolment."""
        return await tuf_metadata.body(self._pool, ROOT, None)

    async def target_length(self, path: str, sha256: str) -> int | None:
        """The length of the signed target ``path`` if its content is ``sha256``."""
        return await tuf_metadata.target_blob(self._pool, path, sha256)
