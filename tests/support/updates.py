"""Updates for deployment tests, inserted directly as CreateUpdate stores them: an
``updates`` row and one ``update_artifacts`` row per platform, each with the
``ArtifactAssignment`` template a device of that platform receives (no TUF needed on the
server side of a rollout)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

import asyncpg

from fleetd.device.v1 import agent_pb2
from fleetd.v1 import update_pb2


def template(name: str, version: str, platform: str = "") -> agent_pb2.ArtifactAssignment:
    """A MODEL artifact's assignment template (no assignment_id/deployment_id/previous)."""
    digest = hashlib.sha256(f"{name}/{version}/{platform}".encode()).hexdigest()
    return agent_pb2.ArtifactAssignment(
        name=name,
        version=version,
        kind=agent_pb2.ARTIFACT_KIND_MODEL,
        target_path=f"{name}/{version}/{platform or 'any'}/model.onnx",
        sha256=digest,
        length=1024 + len(version),
        config=agent_pb2.ConfigSpec(destination_path=f"/var/lib/models/{name}.onnx"),
    )


async def create_update(
    pool: asyncpg.Pool,
    *,
    name: str = "detector-model",
    version: str = "2.0.0",
    platforms: Sequence[str] = ("",),
    strategy: update_pb2.UpdateStrategy | None = None,
) -> str:
    """Insert an update with one artifact per platform ('' = every type); its id."""
    update_id = f"upd-{secrets.token_hex(4)}"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO updates (update_id, name, version, strategy)
               VALUES ($1, $2, $3, $4)""",
            update_id,
            name,
            version,
            (strategy or update_pb2.UpdateStrategy()).SerializeToString(),
        )
        for position, platform in enumerate(platforms):
            spec = template(name, version, platform)
            counter = await conn.fetchval(
                """SELECT coalesce(max(release_counter), 0) + 1 FROM update_artifacts
                   WHERE name = $1 AND platform = $2""",
                name,
                platform,
            )
            await conn.execute(
                """INSERT INTO update_artifacts
                       (artifact_id, update_id, position, name, platform, kind, version, spec,
                        assignment_template, target_path, sha256, length, release_counter)
                   VALUES ($1, $2, $3, $4, $5, 'model', $6, $7, $8, $9, $10, $11, $12)""",
                f"art-{secrets.token_hex(4)}",
                update_id,
                position,
                name,
                platform,
                version,
                update_pb2.Artifact(
                    name=name, platform=platform, version=version, kind=update_pb2.Artifact.MODEL
                ).SerializeToString(),
                spec.SerializeToString(),
                spec.target_path,
                spec.sha256,
                spec.length,
                counter,
            )
    return update_id
