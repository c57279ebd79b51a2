"""The control API keeps the timestamp fresh by itself: a repository whose online roles
were signed days ago is re-signed by the refresher that the API's start-up runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path

import asyncpg

from control_api import tuf_files
from control_api.resources import close_resources, open_resources
from fleetd.services.tuf_repo import KeyDirs, admin, refresher
from fleetd.services.tuf_repo.roles import utcnow
from tests.support.deployment import running_deployment


async def test_refresher_resigns_a_stale_timestamp_and_snapshot(
    database_url: str, redis_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    keys = KeyDirs.under(tmp_path / "signer")
    four_days_ago = utcnow() - dt.timedelta(days=4)
    assert await admin.create_repository(pool, keys, now=four_days_ago)
    async with running_deployment(database_url, redis_url, with_api=False) as dep:
        # This node holds the online keys the repository was made with.
        target = dep.settings.paths.root / "tuf" / "online"
        await asyncio.to_thread(shutil.copytree, keys.online, target, dirs_exist_ok=True)
        await open_resources(dep.settings)
        refresher.start(tuf_files.repository(), interval=0.05)
        try:
            for _ in range(100):
                rows = await pool.fetch(
                    "SELECT role, max(version) AS v, max(expires_at) AS e FROM tuf_metadata"
                    " GROUP BY role"
                )
                latest = {r["role"]: (r["v"], r["e"]) for r in rows}
                if latest["timestamp"][0] > 1:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # several more rounds: once fresh, nothing is published
            published = await pool.fetchval("SELECT count(*) FROM tuf_metadata")
        finally:
            await refresher.stop()
            await close_resources()
    # The timestamp was past its life, the snapshot past half of it; artifacts was not.
    assert latest["timestamp"][0] == 2 and latest["snapshot"][0] == 2
    assert latest["artifacts"][0] == 1
    assert latest["timestamp"][1] > utcnow() + dt.timedelta(hours=23)
    assert published == 7
