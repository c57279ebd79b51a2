"""Rollback targets: a device's previous version, re-signed so its agent accepts it.

Agents refuse a target whose signed release counter is below the one installed for the
same artifact (anti-rollback, agent/tuf_policy.py). A rollback assignment that pointed at
the previous version's original target would therefore be refused. Instead, the first
time a rollback needs a previous target, the same content (same SHA-256 and length) is
signed again under a new path with the next release counter for its (name, platform):
the operator's rollback becomes a signed, deliberate "roll forward to the old bits", and
the counter keeps its meaning (nothing older than what is installed is ever accepted
unless someone with the online key signed it again, on purpose).

``fleetd.storage.rollout_resigned_targets`` remembers the new path per (deployment,
previous path), so every batch of one rollback shares one re-signed target and a restarted
engine reuses it.
Called inside the rollback batch's transaction: the catalogue lock (the same one
CreateUpdate takes for counters) is held until its end, then TUF's lock is taken, the
same order CreateUpdate uses. A batch that rolls back after signing leaves a signed target
nothing points at, which is harmless (as for CreateUpdate).

A previous target the repository does not know (a deployment whose update did not come
through CreateUpdate) keeps its path.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from typing import Any, Protocol

from fleetd.device.v1 import agent_pb2
from fleetd.domain.catalog.spec import RESERVED_PLATFORM
from fleetd.domain.catalog.targets import platform_of
from fleetd.services.tuf_repo import NewTarget, RepositoryMissing, TargetCustom
from fleetd.storage import rollout_resigned_targets as resigned_store
from fleetd.storage import updates as update_store
from fleetd.storage.rollout_resigned_targets import Resigned
from fleetd.storage.types import Connection

log = logging.getLogger(__name__)


class Signer(Protocol):
    """What re-signing needs from the TUF repository (fleetd.services.tuf_repo.TufRepository)."""

    async def add_targets(self, new: Sequence[NewTarget]) -> list[Any]: ...


def rollback_path(previous_path: str, name: str, version: str, hardware: str, counter: int) -> str:
    """The re-signed target's path, in CreateUpdate's scheme
    (``<name>/<version>/<platform or any>/r<counter>/<file>``)."""
    platform = platform_of(hardware) or RESERVED_PLATFORM
    return f"{name}/{version}/{platform}/r{counter}/{posixpath.basename(previous_path)}"


class RollbackTargets:
    """Maps previous target paths to re-signed ones, signing on first need."""

    def __init__(self, signer: Signer | None) -> None:
        self._signer = signer

    async def paths_for(
        self,
        conn: Connection,
        deployment_id: str,
        previous: Sequence[agent_pb2.ArtifactAssignment],
    ) -> dict[str, str]:
        """previous target path -> path to assign, for each of ``previous`` (call in the
        rollback batch's transaction)."""
        wanted = sorted({spec.target_path for spec in previous if spec.target_path})
        if not wanted:
            return {}
        paths = await resigned_store.resigned_paths(conn, deployment_id, wanted)
        missing = [p for p in wanted if p not in paths]
        if missing and self._signer is not None:
            paths.update(await self._resign(conn, deployment_id, missing, previous))
        return paths

    async def _resign(
        self,
        conn: Connection,
        deployment_id: str,
        missing: list[str],
        previous: Sequence[agent_pb2.ArtifactAssignment],
    ) -> dict[str, str]:
        assert self._signer is not None
        signed = await resigned_store.signed_targets(conn, missing)
        versions = {spec.target_path: spec.version for spec in previous}
        unknown = [p for p in missing if p not in signed]
        if unknown:
            log.warning(
                "rollback of %s: %d previous targets are not in the TUF repository; "
                "assigned as they were",
                deployment_id,
                len(unknown),
            )
        known = [p for p in missing if p in signed]
        if not known:
            return {}
        customs = {p: TargetCustom.from_json(signed[p].custom) for p in known}
        await update_store.lock_catalogue(conn)
        counters = await update_store.next_release_counters(
            conn, sorted({(c.name, platform_of(c.hardware), c.hardware) for c in customs.values()})
        )
        new: list[NewTarget] = []
        resigned: list[Resigned] = []
        for path in known:
            custom = customs[path]
            platform = platform_of(custom.hardware)
            counter = counters[(custom.name, platform)]
            to = rollback_path(path, custom.name, versions[path], custom.hardware, counter)
            new_custom = TargetCustom(
                custom.hardware,
                counter,
                custom.kind,
                custom.name,
                {**custom.extra, "rollback_of": path},
            )
            new.append(
                NewTarget(to, signed[path].length, {"sha256": signed[path].sha256}, new_custom)
            )
            resigned.append(Resigned(path, to, counter))
            # Two previous targets of one (name, platform) get successive counters.
            counters[(custom.name, platform)] = counter + 1
        try:
            await self._signer.add_targets(new)
        except RepositoryMissing:
            log.warning(
                "rollback of %s: no TUF repository; previous targets assigned as they were",
                deployment_id,
            )
            return {}
        await resigned_store.record_resigned(conn, deployment_id, resigned)
        log.info("rollback of %s: re-signed %d previous targets", deployment_id, len(resigned))
        return {r.from_path: r.to_path for r in resigned}
