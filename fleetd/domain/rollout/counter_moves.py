"""Counter deltas a batch collects while it decides, written in one go at its end.

A deployment's counters (``deployment_counters``: wave -> state -> devices) are written
last in every transaction that moves targets (the lock order of
``fleetd.storage.deployment_progress``), so a batch first collects what it moved here and
storage applies the deltas, wave by wave, after the target rows.
"""

from __future__ import annotations

from collections import defaultdict


class CounterMoves:
    """Per wave, the (state, +/-n) deltas to add to the deployment's counters."""

    def __init__(self) -> None:
        self.by_wave: dict[int, list[tuple[str, int]]] = defaultdict(list)

    def move(self, wave: int, old: str, new: str, n: int = 1) -> None:
        """``n`` targets of ``wave`` went from ``old`` to ``new`` (nothing when equal)."""
        if old != new:
            self.by_wave[wave] += [(old, -n), (new, n)]

    def add(self, wave: int, state: str, n: int) -> None:
        """Add ``n`` (possibly negative) to ``state`` in ``wave``."""
        self.by_wave[wave].append((state, n))
