"""The update catalogue in PostgreSQL: ``updates`` and ``update_artifacts`` (0007).

Invariants (relied on by the rollout engine):

- An update and its artifacts are written in one transaction and never changed.
- ``update_artifacts.spec`` is the serialized fleetd.v1.Artifact as GetUpdate returns it;
  ``assignment_template`` the serialized fleetd.device.v1.ArtifactAssignment a device of
  the artifact's platform receives, without assignment_id, deployment_id and previous.
- Every artifact's ``target_path`` is a signed TUF target with that ``sha256`` and
  ``length`` before the row is committed.
- ``release_counter`` is strictly increasing per (name, platform) across updates; it is
  allocated under CATALOGUE_LOCK, above both the stored counters and the counters of
  signed targets (a create that signed and then failed leaves a signed target behind,
  whose counter is then skipped rather than reused).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fleetd.device.v1 import agent_pb2
from fleetd.storage.ordering import Ordering
from fleetd.storage.types import Connection, Queryable
from fleetd.storage.update_listing import SqlFilter
from fleetd.v1 import update_pb2

CATALOGUE_LOCK = 0x666C656574640043  # "fleetd" + "C": serialises CreateUpdate's commits


@dataclass(frozen=True, slots=True)
class NewArtifact:
    artifact_id: str
    position: int
    name: str
    platform: str
    kind: str
    version: str
    spec: update_pb2.Artifact
    assignment_template: agent_pb2.ArtifactAssignment
    target_path: str
    sha256: str
    length: int
    release_counter: int


@dataclass(frozen=True, slots=True)
class NewUpdate:
    update_id: str
    name: str
    version: str
    description: str
    strategy: update_pb2.UpdateStrategy
    metadata: dict[str, str]
    created_by: str


@dataclass(frozen=True, slots=True)
class ArtifactTemplate:
    """What a device of ``platform`` ('' = every type) is to be told about one artifact
    of an update: ``template`` is the ArtifactAssignment without assignment_id,
    deployment_id and previous."""

    artifact_id: str
    name: str
    platform: str
    version: str
    release_counter: int
    template: agent_pb2.ArtifactAssignment


@dataclass(frozen=True, slots=True)
class BinaryContent:
    """What CreateUpdate needs of an uploaded binary."""

    binary_id: str
    sha256: str
    size_bytes: int
    name: str


async def lock_catalogue(conn: Connection) -> None:
    """Serialise catalogue writes until the end of the current transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CATALOGUE_LOCK)


async def update_exists(conn: Queryable, name: str, version: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM updates WHERE name = $1 AND version = $2)",
            name,
            version,
        )
    )


async def binary_content(conn: Queryable, binary_id: str) -> BinaryContent | None:
    row = await conn.fetchrow(
        "SELECT binary_id, sha256, size_bytes, name FROM binaries WHERE binary_id = $1",
        binary_id,
    )
    if row is None:
        return None
    return BinaryContent(row["binary_id"], row["sha256"], row["size_bytes"], row["name"])


async def next_release_counters(
    conn: Connection, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str], int]:
    """For each (name, platform, tuf hardware): one more than the highest counter stored
    for (name, platform) or signed for (name, hardware). Call under lock_catalogue."""
    counters: dict[tuple[str, str], int] = {}
    for name, platform, hardware in keys:
        highest = await conn.fetchval(
            """SELECT GREATEST(
                   (SELECT max(release_counter) FROM update_artifacts
                     WHERE name = $1 AND platform = $2),
                   (SELECT max((custom->>'release_counter')::bigint) FROM tuf_targets
                     WHERE custom->>'name' = $1 AND custom->>'hardware' = $3))""",
            name,
            platform,
            hardware,
        )
        counters[(name, platform)] = int(highest or 0) + 1
    return counters


async def insert_update(
    conn: Connection, update: NewUpdate, artifacts: Sequence[NewArtifact]
) -> dt.datetime:
    """Insert the update and its artifacts (call inside a transaction); returns
    created_at."""
    created_at: dt.datetime = await conn.fetchval(
        """INSERT INTO updates (update_id, name, version, description, strategy, metadata,
                                created_by)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) RETURNING created_at""",
        update.update_id,
        update.name,
        update.version,
        update.description,
        update.strategy.SerializeToString(deterministic=True),
        update.metadata,
        update.created_by,
    )
    await conn.executemany(
        """INSERT INTO update_artifacts (artifact_id, update_id, position, name, platform,
               kind, version, spec, assignment_template, target_path, sha256, length,
               release_counter)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
        [
            (
                a.artifact_id,
                update.update_id,
                a.position,
                a.name,
                a.platform,
                a.kind,
                a.version,
                a.spec.SerializeToString(deterministic=True),
                a.assignment_template.SerializeToString(deterministic=True),
                a.target_path,
                a.sha256,
                a.length,
                a.release_counter,
            )
            for a in artifacts
        ],
    )
    return created_at


UPDATE_COLUMNS = "update_id, name, version, description, strategy, metadata, created_by, created_at"


def update_message(row: Any, specs: Sequence[bytes]) -> update_pb2.Update:
    """An ``updates`` row (UPDATE_COLUMNS) and its artifacts' specs, in position order,
    as a fleetd.v1.Update."""
    update = update_pb2.Update(
        id=row["update_id"],
        name=row["name"],
        version=row["version"],
        description=row["description"],
        metadata=_metadata(row["metadata"]),
        created_by=row["created_by"],
    )
    update.strategy.ParseFromString(bytes(row["strategy"]))
    update.created_at.FromDatetime(row["created_at"])
    for spec in specs:
        update.artifacts.add().ParseFromString(bytes(spec))
    return update


def _metadata(value: Any) -> dict[str, str]:
    # The pool decodes jsonb (fleetd.storage.postgres); a bare connection may not.
    data = orjson.loads(value) if isinstance(value, str | bytes) else value
    return {str(k): str(v) for k, v in (data or {}).items()}


async def get_update(conn: Queryable, update_id: str) -> update_pb2.Update | None:
    row = await conn.fetchrow(
        f"SELECT {UPDATE_COLUMNS} FROM updates WHERE update_id = $1", update_id
    )
    if row is None:
        return None
    specs = await _specs(conn, [update_id])
    return update_message(row, specs.get(update_id, []))


async def _specs(conn: Queryable, update_ids: Sequence[str]) -> dict[str, list[bytes]]:
    rows = await conn.fetch(
        """SELECT update_id, spec FROM update_artifacts WHERE update_id = ANY($1::text[])
           ORDER BY update_id, position""",
        list(update_ids),
    )
    specs: dict[str, list[bytes]] = {}
    for r in rows:
        specs.setdefault(r["update_id"], []).append(bytes(r["spec"]))
    return specs


async def list_updates(
    conn: Queryable,
    *,
    where: SqlFilter,
    order: Ordering,
    after: list[Any] | None,
    limit: int,
) -> list[update_pb2.Update]:
    """Updates matching ``where``, in ``order``, strictly after the position ``after``
    (a page token's, already checked with ``order.check_position``; None: from the
    start), at most ``limit``."""
    clauses, params = [where.sql], list(where.params)
    if after is not None:
        sql, after_params = order.after_sql(after, len(params) + 1)
        clauses.append(sql)
        params.extend(after_params)
    condition = " AND ".join(f"({c})" for c in clauses)
    rows = await conn.fetch(
        f"SELECT {UPDATE_COLUMNS} FROM updates WHERE {condition}"
        f" ORDER BY {order.order_by_sql()} LIMIT {int(limit)}",
        *params,
    )
    specs = await _specs(conn, [r["update_id"] for r in rows])
    return [update_message(r, specs.get(r["update_id"], [])) for r in rows]


async def count_updates(conn: Queryable, where: SqlFilter) -> int:
    """How many updates match ``where``."""
    return int(
        await conn.fetchval(f"SELECT count(*) FROM updates WHERE {where.sql}", *where.params)
    )


async def assignment_templates(conn: Queryable, update_id: str) -> list[ArtifactTemplate]:
    """The device assignment templates of ``update_id``, one per artifact, in the order
    the update lists them (empty when there is no such update).

    For a device of type T the rollout engine takes, per artifact name, the template
    whose ``platform`` is T, else the one whose platform is '' (every type); a device
    for which neither exists gets nothing of that name. It fills in assignment_id,
    deployment_id and previous; everything else (target path, sha256, length, kind,
    config, container, probe) is final and signed into TUF as it stands.
    """
    rows = await conn.fetch(
        """SELECT artifact_id, name, platform, version, release_counter, assignment_template
           FROM update_artifacts WHERE update_id = $1 ORDER BY position""",
        update_id,
    )
    return [
        ArtifactTemplate(
            artifact_id=r["artifact_id"],
            name=r["name"],
            platform=r["platform"],
            version=r["version"],
            release_counter=r["release_counter"],
            template=agent_pb2.ArtifactAssignment.FromString(bytes(r["assignment_template"])),
        )
        for r in rows
    ]
