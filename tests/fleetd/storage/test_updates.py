"""The catalogue tables: release counters, templates, the one-transaction insert."""

from __future__ import annotations

import asyncpg
import pytest

from fleetd.device.v1 import agent_pb2
from fleetd.services.tuf_repo import TargetCustom
from fleetd.storage import updates
from fleetd.storage.tuf_metadata import insert_target
from fleetd.v1 import update_pb2


def _artifact(n: int, name: str, platform: str, counter: int) -> updates.NewArtifact:
    path = f"{name}/1.{n}/{platform or 'any'}/r{counter}/f"
    return updates.NewArtifact(
        artifact_id=f"artifact-{n}-{platform}",
        position=n,
        name=name,
        platform=platform,
        kind="file",
        version=f"1.{n}",
        spec=update_pb2.Artifact(name=name, platform=platform, tuf_target_path=path),
        assignment_template=agent_pb2.ArtifactAssignment(name=name, target_path=path),
        target_path=path,
        sha256="a" * 64,
        length=1,
        release_counter=counter,
    )


def _update(update_id: str, version: str) -> updates.NewUpdate:
    return updates.NewUpdate(
        update_id, "app", version, "", update_pb2.UpdateStrategy(), {"k": "v"}, "tester"
    )


async def test_counters_continue_above_stored_and_signed_targets(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await updates.lock_catalogue(conn)
        first = await updates.next_release_counters(conn, [("app", "pi", "pi"), ("app", "", "*")])
        assert first == {("app", "pi"): 1, ("app", ""): 1}
        await updates.insert_update(
            conn, _update("u1", "1"), [_artifact(0, "app", "pi", 1), _artifact(1, "app", "", 1)]
        )
    # A create that signed counter 2 for "pi" and then failed: its counter is skipped.
    await insert_target(pool, "app/x/pi/r2/f", "b" * 64, 1, TargetCustom("pi", 2, "file", "app"))
    async with pool.acquire() as conn, conn.transaction():
        nxt = await updates.next_release_counters(
            conn, [("app", "pi", "pi"), ("app", "", "*"), ("other", "pi", "pi")]
        )
    assert nxt == {("app", "pi"): 3, ("app", ""): 2, ("other", "pi"): 1}


async def test_a_counter_is_never_stored_twice_for_a_name_and_platform(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await updates.insert_update(conn, _update("u1", "1"), [_artifact(0, "app", "pi", 1)])
        with pytest.raises(asyncpg.UniqueViolationError):
            await updates.insert_update(conn, _update("u2", "2"), [_artifact(1, "app", "pi", 1)])


async def test_templates_come_in_artifact_order_and_unknown_updates_have_none(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await updates.insert_update(
            conn,
            _update("u1", "1"),
            [_artifact(0, "b", "pi", 1), _artifact(1, "a", "", 4), _artifact(2, "c", "x", 2)],
        )
    found = await updates.assignment_templates(pool, "u1")
    assert [(t.name, t.platform, t.release_counter) for t in found] == [
        ("b", "pi", 1),
        ("a", "", 4),
        ("c", "x", 2),
    ]
    assert found[1].template.target_path == "a/1.1/any/r4/f"
    assert await updates.assignment_templates(pool, "nope") == []
    update = await updates.get_update(pool, "u1")
    assert update is not None and [a.name for a in update.artifacts] == ["b", "a", "c"]
    assert update.metadata == {"k": "v"} and update.created_by == "tester"
