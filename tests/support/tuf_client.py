"""python-tuf's ngclient against fleetd's repository: fetchers and an Updater factory.

``MemoryFetcher`` serves a fixed copy of the repository (taken from PostgreSQL with
``repository_files``) so that the synchronous ngclient can run inside async tests
without calling back into the event loop. Over HTTPS, tests use the agent's own fetcher
(``agent.tuf_fetcher.AgentFetcher``, trusting only the fleet CA), as devices do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

BASE = "https://tuf.test/tuf"


class MemoryFetcher(FetcherInterface):
    """URLs -> bytes, 404 for anything else; remembers what was asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requested: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.requested.append(url)
        if url not in self.files:
            raise DownloadHTTPError(f"not found: {url}", 404)
        return iter([self.files[url]])


async def repository_files(
    pool: Any, blobs: dict[str, bytes] | None = None, base: str = BASE
) -> dict[str, bytes]:
    """Everything the repository serves, by URL (the layout of control_api.tuf_files)."""
    files: dict[str, bytes] = {}
    rows = await pool.fetch("SELECT role, version, body FROM tuf_metadata ORDER BY version")
    for row in rows:
        body = bytes(row["body"])
        files[f"{base}/metadata/{row['version']}.{row['role']}.json"] = body
        if row["role"] == "timestamp":
            files[f"{base}/metadata/timestamp.json"] = body
    for row in await pool.fetch("SELECT path, sha256 FROM tuf_targets"):
        directory, _, name = str(row["path"]).rpartition("/")
        prefix = f"{directory}/" if directory else ""
        if blobs is not None and row["sha256"] in blobs:
            files[f"{base}/targets/{prefix}{row['sha256']}.{name}"] = blobs[row["sha256"]]
    return files


def updater(
    workdir: Path, trusted_root: bytes, fetcher: FetcherInterface, base: str = BASE
) -> Updater:
    """An Updater pinned to ``trusted_root``, caching under ``workdir``."""
    (workdir / "metadata").mkdir(parents=True, exist_ok=True)
    (workdir / "targets").mkdir(parents=True, exist_ok=True)
    return Updater(
        str(workdir / "metadata"),
        f"{base}/metadata/",
        str(workdir / "targets"),
        f"{base}/targets/",
        fetcher,
        bootstrap=trusted_root,
    )
