"""Rollup and census groups: which label combinations are stored, and which one answers.

A group is ``(fleet, device_type, version)``; ``None`` in a position means "every value"
(a grouping-set row, ``metric_groups`` keeps it as NULL). For every full group it sees,
the rollup compactor and the census also write the rows of each set in ``STORED_SETS``, so
that the common questions (the whole fleet, one fleet, one type...) read one row per
bucket instead of merging every full group. A question over another combination reads the
full groups and merges them.
"""

from __future__ import annotations

from typing import Final

LABELS: Final = ("fleet", "type", "version")
"""The group labels, in ``metric_groups`` column order (``type`` is ``device_type``)."""

FULL: Final = frozenset(LABELS)

STORED_SETS: Final[tuple[frozenset[str], ...]] = (
    frozenset(),
    frozenset({"fleet"}),
    frozenset({"type"}),
    frozenset({"fleet", "type"}),
    frozenset({"type", "version"}),
    FULL,
)
"""The label sets written as grouping-set rows, besides nothing else."""

Group = tuple[str | None, str | None, str | None]


def rows_for(fleet: str, device_type: str, version: str) -> list[Group]:
    """The group rows one full group contributes to: itself and each stored set."""
    values = {"fleet": fleet, "type": device_type, "version": version}
    return [
        tuple(values[label] if label in kept else None for label in LABELS)  # type: ignore[misc]
        for kept in STORED_SETS
    ]


def covering_set(labels: frozenset[str]) -> frozenset[str]:
    """The stored set to read for a question over ``labels`` (a subset of ``LABELS``):
    ``labels`` itself when stored, else the full groups (merged by the reader)."""
    if not labels <= FULL:
        raise ValueError(f"not group labels: {sorted(labels - FULL)}")
    return labels if labels in STORED_SETS else FULL
