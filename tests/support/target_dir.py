"""A typed test double of the agent's TUF fetcher (agent.targets.TargetFetcher).

Targets are files under ``root`` (at their target path) described in ``root/targets.json``
(``{target_path: {"hardware", "release_counter", "kind", "name"}}``), standing in for
signed targets metadata. ``fetch`` applies the checks the real TUF client does (unknown
target, hardware, release counter, digest and length) and, like python-tuf, returns a
path in a cache directory that the agent must copy from. The real TUF path is tested with
agent.tuf_client.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.targets import TargetRefused, TargetUnavailable, VerifiedTarget

MANIFEST = "targets.json"


@dataclass(frozen=True, slots=True)
class Published:
    target_path: str
    sha256: str
    length: int


def publish(
    root: Path,
    target_path: str,
    content: bytes,
    *,
    name: str,
    kind: str = "model",
    hardware: str = "*",
    release_counter: int = 1,
) -> Published:
    """Put a target in the directory and describe it in the manifest."""
    path = root / target_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    manifest_path = root / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[target_path] = {
        "hardware": hardware,
        "release_counter": release_counter,
        "kind": kind,
        "name": name,
    }
    manifest_path.write_text(json.dumps(manifest))
    return Published(target_path, hashlib.sha256(content).hexdigest(), len(content))


class DirectoryFetcher:
    """Serves published targets; ``failures`` transient errors first, then the target."""

    def __init__(self, root: Path, cache: Path, failures: int = 0) -> None:
        self.root = root
        self.cache = cache
        self.failures = failures
        self.fetched: list[str] = []

    def fetch(
        self,
        target_path: str,
        *,
        expected_sha256: str,
        expected_length: int,
        device_type: str,
        min_release_counter: int,
    ) -> VerifiedTarget:
        if self.failures > 0:
            self.failures -= 1
            raise TargetUnavailable("repository unreachable (simulated)")
        manifest = json.loads((self.root / MANIFEST).read_text())
        info = manifest.get(target_path)
        source = self.root / target_path
        if info is None or not source.is_file():
            raise TargetRefused("UNKNOWN_TARGET", f"{target_path} is not in the targets metadata")
        if info["hardware"] not in ("*", device_type):
            raise TargetRefused("WRONG_HARDWARE", f"{target_path} is for {info['hardware']}")
        if info["release_counter"] < min_release_counter:
            raise TargetRefused("RELEASE_COUNTER_ROLLBACK", f"{target_path} is older")
        content = source.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if digest != expected_sha256 or len(content) != expected_length:
            raise TargetRefused("DIGEST_MISMATCH", f"{target_path} does not match")
        self.cache.mkdir(parents=True, exist_ok=True)
        cached = self.cache / target_path.replace("/", "%2F")
        shutil.copyfile(source, cached)
        self.fetched.append(target_path)
        return VerifiedTarget(
            path=cached,
            sha256=digest,
            length=len(content),
            hardware=info["hardware"],
            release_counter=info["release_counter"],
            kind=info["kind"],
            name=info["name"],
        )

    def evict(self, target: VerifiedTarget) -> None:
        target.path.unlink(missing_ok=True)
