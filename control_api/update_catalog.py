"""The update catalogue: CreateUpdate, GetUpdate, ListUpdates."""

from __future__ import annotations


class CatalogMethods:
    """UpdateService methods about updates themselves (mixed into UpdateServiceImpl)."""
