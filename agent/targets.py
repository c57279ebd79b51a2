"""What the converge loop needs from the TUF client: one verified target, copied nowhere.

``agent.tuf_client`` (python-tuf's ngclient against the pinned root) implements
:class:`TargetFetcher`; the converge loop depends only on this Protocol, so tests can
serve targets from a directory with the same checks (``tests/support/target_dir.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class VerifiedTarget:
    """A target whose metadata chain and content verified against the pinned root.

    ``path`` is inside the TUF cache: copy it, never apply it in place (python-tuf does
    not fsync, and the next download may overwrite it).
    """

    path: Path
    sha256: str
    length: int
    hardware: str
    release_counter: int
    kind: str
    name: str


class TargetRefused(Exception):
    """A permanent refusal; retrying cannot help. ``reason`` is machine-readable
    (WRONG_HARDWARE, RELEASE_COUNTER_ROLLBACK, DIGEST_MISMATCH, UNKNOWN_TARGET...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TargetUnavailable(Exception):
    """A transient failure (network, server, expired metadata being refreshed): retry."""


class TargetFetcher(Protocol):
    """Resolves, downloads and verifies one target (blocking; run it in a thread)."""

    def fetch(
        self,
        target_path: str,
        *,
        expected_sha256: str,
        expected_length: int,
        device_type: str,
        min_release_counter: int,
    ) -> VerifiedTarget: ...

    def evict(self, target: VerifiedTarget) -> None:
        """Drop ``target`` from the fetcher's cache once the caller has its own copy."""
