"""Desired state for tests: what a writer (the rollout engine) does to assign an artifact."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2
from fleetd.storage.desired import bump_revisions, mark_changed


def model_assignment(name: str, version: str) -> agent_pb2.ArtifactAssignment:
    return agent_pb2.ArtifactAssignment(
        assignment_id=f"as-{name}-{version}",
        deployment_id="dep-1",
        name=name,
        version=version,
        kind=agent_pb2.ARTIFACT_KIND_MODEL,
        target_path=f"{name}/{version}/model.onnx",
        sha256="ab" * 32,
        length=1234,
    )


async def assign(
    pool: asyncpg.Pool, redis: aioredis.Redis, device_id: str, spec: agent_pb2.ArtifactAssignment
) -> int:
    """What a writer (the rollout engine) does: change, bump, commit, then mark_changed."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE assignments SET active = false WHERE device_id = $1 AND name = $2",
            device_id,
            spec.name,
        )
        await conn.execute(
            """INSERT INTO assignments
                   (assignment_id, device_id, deployment_id, name, version, spec)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            spec.assignment_id,
            device_id,
            spec.deployment_id,
            spec.name,
            spec.version,
            spec.SerializeToString(),
        )
        revisions = await bump_revisions(conn, [device_id])
    assert await mark_changed(redis, revisions)
    return revisions[device_id]
