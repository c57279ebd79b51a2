"""Rollback targets re-signed for a deployment (table ``rollback_targets``, migration
0008), and the signed targets they copy (``tuf_targets``).

A rollback assigns a device's previous content under a new TUF target path with a current
release counter (``fleetd.services.rollout.rollback_targets`` decides and signs); this
module remembers, per (deployment, previous path), the path signed for it, so every batch
of one rollback, and a restarted engine, reuse it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetd.storage.types import Connection, Queryable


@dataclass(frozen=True, slots=True)
class SignedTarget:
    """A target in the TUF repository: its content's digest and length, its custom part."""

    path: str
    sha256: str
    length: int
    custom: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resigned:
    """``from_path`` signed again as ``to_path`` with ``release_counter``."""

    from_path: str
    to_path: str
    release_counter: int


async def resigned_paths(
    conn: Queryable, deployment_id: str, from_paths: Sequence[str]
) -> dict[str, str]:
    """previous path -> re-signed path, for those of ``from_paths`` signed already."""
    rows = await conn.fetch(
        """SELECT from_path, to_path FROM rollback_targets
           WHERE deployment_id = $1 AND from_path = ANY($2::text[])""",
        deployment_id,
        list(from_paths),
    )
    return {r["from_path"]: r["to_path"] for r in rows}


async def signed_targets(conn: Queryable, paths: Sequence[str]) -> dict[str, SignedTarget]:
    """The TUF repository's targets among ``paths``, by path."""
    rows = await conn.fetch(
        "SELECT path, sha256, length, custom FROM tuf_targets WHERE path = ANY($1::text[])",
        list(paths),
    )
    return {
        r["path"]: SignedTarget(r["path"], r["sha256"], r["length"], _json(r["custom"]))
        for r in rows
    }


async def record_resigned(
    conn: Connection, deployment_id: str, resigned: Sequence[Resigned]
) -> None:
    """Remember re-signed paths (the first writer wins: a concurrent batch's are kept)."""
    await conn.executemany(
        """INSERT INTO rollback_targets (deployment_id, from_path, to_path, release_counter)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        [(deployment_id, r.from_path, r.to_path, r.release_counter) for r in resigned],
    )


def _json(value: Any) -> dict[str, Any]:
    """A jsonb value, decoded or not (pools without the jsonb codec give text)."""
    return dict(json.loads(value) if isinstance(value, str) else value)
