"""The blob collector as a background role of the control API.

Every ``Settings.blob_collect_interval`` seconds (default one hour, the first round at
start-up) each control API event loop tries the collector's PostgreSQL advisory lock; the
one that gets it runs a round of fleetd/services/blob_collection.py over the deployment's blob store
(``Settings.paths.blobs``) with ``Settings.blob_grace_period``, the others skip the round.
So however many replicas run, one collects at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from control_api.resources import resources
from fleetd.services.blob_collection import (
    CollectionPolicy,
    CollectionReport,
    PostgresBlobIndex,
    collect,
)
from fleetd.storage.blob_index import collector_lock
from fleetd.storage.blobs import FilesystemBlobStore

log = logging.getLogger(__name__)

_collectors: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


async def collect_once() -> CollectionReport | None:
    """One round on this loop's resources; None when another holder has the lock."""
    res = resources()
    policy = CollectionPolicy(grace_period=res.settings.blob_grace_period)
    async with collector_lock(res.pool) as held:
        if not held:
            return None
        report = await collect(
            FilesystemBlobStore(res.settings.paths.blobs),
            PostgresBlobIndex(res.pool),
            policy,
            now=time.time(),
        )
    if report.removed or report.index_rows_dropped or report.temporaries_removed:
        log.info(
            "blob collector: removed %d blobs, %d index rows without a file, "
            "%d stale temporaries; %d candidates were in use",
            len(report.removed),
            len(report.index_rows_dropped),
            report.temporaries_removed,
            len(report.kept),
        )
    return report


async def _collect_forever(interval: float) -> None:
    while True:
        try:
            await collect_once()
        except asyncio.CancelledError:
            raise
        except Exception:  # keep collecting; the next round may succeed
            log.exception("blob collection round failed")
        await asyncio.sleep(interval)


async def start_collector() -> None:
    """Start this event loop's collector (a lifespan start-up hook, after the resources)."""
    loop = asyncio.get_running_loop()
    if loop not in _collectors:
        interval = resources().settings.blob_collect_interval
        _collectors[loop] = loop.create_task(_collect_forever(interval))


async def stop_collector() -> None:
    task = _collectors.pop(asyncio.get_running_loop(), None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
