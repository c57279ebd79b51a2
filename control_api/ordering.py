"""``order_by`` and keyset pagination: moved to fleetd/storage/ordering.py (it writes SQL).

These names stay importable from here for code not yet moved over; import them from
``fleetd.storage.ordering`` in new code.
"""

from __future__ import annotations

from fleetd.storage.ordering import (
    MAX_SORT_KEYS,
    SORTABLE,
    InvalidOrderBy,
    Ordering,
    SortKey,
    parse,
)

__all__ = ["MAX_SORT_KEYS", "SORTABLE", "InvalidOrderBy", "Ordering", "SortKey", "parse"]
