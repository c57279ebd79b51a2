"""Which targets a device may download (``fleetd.storage.target_access``), on PostgreSQL:
what its active assignments name, as the version to install or the one it replaces."""

from __future__ import annotations

import asyncpg
import pytest

from fleetd.device.v1 import agent_pb2
from fleetd.storage.assignments import cancel_assignment, create_assignments
from fleetd.storage.devices import NewDevice, insert_device
from fleetd.storage.target_access import device_may_fetch, names_target

V1 = "app/1.0.0/raspberry-pi/r1/app.bin"
V2 = "app/2.0.0/raspberry-pi/r2/app.bin"
V3 = "app/3.0.0/raspberry-pi/r3/app.bin"
CONFIG = "settings/1/any/r1/settings.toml"


def _spec(
    target_path: str, previous: str | None = None, *, name: str = "app", assignment_id: str = ""
) -> agent_pb2.ArtifactAssignment:
    spec = agent_pb2.ArtifactAssignment(
        assignment_id=assignment_id,
        deployment_id="dep-1",
        name=name,
        version=target_path.split("/")[1],
        kind=agent_pb2.ARTIFACT_KIND_FILE,
        target_path=target_path,
        sha256="ab" * 32,
        length=10,
    )
    if previous is not None:
        spec.previous.CopyFrom(
            agent_pb2.PreviousVersion(
                version=previous.split("/")[1], sha256="cd" * 32, target_path=previous
            )
        )
    return spec


@pytest.fixture
async def devices(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for device_id in ("rpi-a", "rpi-b"):
            await insert_device(
                conn, NewDevice(device_id, "default", device_id, "raspberry-pi", "1.0", {}, {})
            )


def test_an_assignment_names_its_target_and_the_one_it_replaces() -> None:
    spec = _spec(V2, V1)
    assert names_target(spec, V2) and names_target(spec, V1)
    assert not names_target(spec, V3)
    assert not names_target(_spec(V2), "")  # no previous: the empty path is not named


@pytest.mark.usefixtures("devices")
async def test_a_device_may_fetch_what_its_active_assignments_name(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await create_assignments(conn, "rpi-a", [_spec(V2, V1), _spec(CONFIG, name="settings")])
        await create_assignments(conn, "rpi-b", [_spec(V3, V2)])
    assert [await device_may_fetch(pool, "rpi-a", p) for p in (V1, V2, CONFIG, V3)] == [
        True,
        True,
        True,
        False,
    ]
    assert [await device_may_fetch(pool, "rpi-b", p) for p in (V1, V2, CONFIG, V3)] == [
        False,
        True,
        False,
        True,
    ]
    assert not await device_may_fetch(pool, "rpi-unknown", V2)


@pytest.mark.usefixtures("devices")
async def test_superseded_and_cancelled_assignments_grant_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await create_assignments(conn, "rpi-a", [_spec(V1)])
        await create_assignments(conn, "rpi-a", [_spec(V2, V1)])
        await create_assignments(conn, "rpi-a", [_spec(V3, V2, assignment_id="as-v3")])
    assert not await device_may_fetch(pool, "rpi-a", V1)
    assert await device_may_fetch(pool, "rpi-a", V2)
    async with pool.acquire() as conn:
        assert await cancel_assignment(conn, "as-v3")
    for path in (V1, V2, V3):
        assert not await device_may_fetch(pool, "rpi-a", path), path
