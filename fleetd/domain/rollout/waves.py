"""How many devices each wave of a deployment holds.

Wave *i* ends at rank ``ceil(p_i % of the eligible devices)`` (``p_i`` its cumulative
percentage) and the last wave at all of them. DeployUpdate cuts the waves in SQL
(``fleetd.storage.deployments.create_deployment``, numeric arithmetic on each percentage's
decimal text); this is the same rule in Python, computed on decimals rather than floats
for the same reason, so the counters written beside the rows always agree with them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal


def wave_ends(percentages: Sequence[float], eligible: int) -> list[int]:
    """Cumulative device counts per wave for ``eligible`` devices: ceil(p% of them), the
    last always all of them (an empty list for no waves)."""
    if not percentages:
        return []
    # str(p): the decimal an operator wrote (10.1 is 10.1, not 10.0999...), as SQL sees it.
    cuts = [math.ceil(Decimal(str(p)) * eligible / 100) for p in percentages[:-1]]
    return [*cuts, eligible]


def wave_sizes(percentages: Sequence[float], eligible: int) -> list[int]:
    """Devices per wave (the differences of :func:`wave_ends`); one wave of every device
    when no percentage is given."""
    ends = wave_ends(percentages, eligible) or [eligible]
    return [end - start for start, end in zip([0, *ends[:-1]], ends, strict=True)]
