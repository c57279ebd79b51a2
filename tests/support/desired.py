"""Desired state for tests: what a writer (the rollout engine) does to assign an artifact."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from fleetd.device.v1 import agent_pb2
from fleetd.storage.assignments import create_assignments
from fleetd.storage.desired import mark_changed


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
    """What a writer (the rollout engine) does: create the assignment (superseding one of
    the same name, revision bumped), then tell the gateways' cache; the new revision."""
    async with pool.acquire() as conn:
        created = await create_assignments(conn, device_id, [spec])
    assert await mark_changed(redis, created.revisions)
    return created.revisions[device_id]
