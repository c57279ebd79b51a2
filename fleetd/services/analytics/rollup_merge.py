"""Merging rollup aggregates: count and sum add, min and max combine, sketches merge.

IO-free and order-independent (a DDSketch merge adds bin counts), so the compactor may
meet a minute's partials in any order, across any number of rounds, and write the same
row. The hour row of a minute is merged from the same partials, so it equals the merge
of its minute rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from core_ext import Sketch


@dataclass(slots=True)
class Aggregate:
    """A mutable aggregate of one metric of one group over one bucket."""

    count: int
    sum: float
    min: float
    max: float
    sketch: Sketch

    @classmethod
    def empty_like(cls, sketch: Sketch) -> Aggregate:
        """Nothing yet, with a sketch that ``sketch`` can merge into."""
        return cls(
            0,
            0.0,
            0.0,
            0.0,
            Sketch(relative_accuracy=sketch.relative_accuracy, max_bins=sketch.max_bins),
        )

    def add(self, count: int, total: float, low: float, high: float, sketch: Sketch) -> None:
        """Fold in another aggregate of the same bucket (``sketch`` is not changed)."""
        if count <= 0:
            return
        if self.count == 0:
            self.min, self.max = low, high
        else:
            self.min = min(self.min, low)
            self.max = max(self.max, high)
        self.count += count
        self.sum += total
        self.sketch.merge(sketch)
