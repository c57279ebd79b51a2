"""The repository's published state in storage: rows of bytes in, python-tuf metadata out.

``fleetd.storage.tuf_metadata`` stores each role's versions as the bytes that were signed;
this module is where they become :class:`~fleetd.services.tuf_repo.edits.Published`
(the newest version of every role) and where a publication becomes rows again.
"""

from __future__ import annotations

from typing import Any

from tuf.api.metadata import Metadata

from fleetd.services.tuf_repo.edits import Publication, Published
from fleetd.services.tuf_repo.roles import ALL_ROLES, ARTIFACTS, ROOT, SNAPSHOT, TARGETS, TIMESTAMP
from fleetd.storage import tuf_metadata
from fleetd.storage.types import Queryable


async def load(conn: Queryable) -> Published | None:
    """The newest version of every role, or None before the repository exists.

    Raises:
        RuntimeError: some roles exist and others do not (a damaged database).
    """
    bodies = await tuf_metadata.newest_bodies(conn, ALL_ROLES)
    if not bodies:
        return None
    missing = set(ALL_ROLES) - set(bodies)
    if missing:
        raise RuntimeError(f"the TUF repository lacks {sorted(missing)}: restore the database")
    found: dict[str, Metadata[Any]] = {
        role: Metadata.from_bytes(body) for role, body in bodies.items()
    }
    return Published(
        root=found[ROOT],
        targets=found[TARGETS],
        artifacts=found[ARTIFACTS],
        snapshot=found[SNAPSHOT],
        timestamp=found[TIMESTAMP],
    )


async def insert(conn: Queryable, publication: Publication) -> None:
    """Store every version of ``publication`` (in the caller's locked transaction)."""
    await tuf_metadata.insert(
        conn,
        [
            tuf_metadata.NewVersion(role, md.signed.version, md.to_bytes(), md.signed.expires)
            for role, md in publication
        ],
    )
