"""Revisions verified current in Redis, trusted until a change notice: no lookup per beat.

A heartbeat holding the revision its device was last verified at needs no Redis lookup
as long as nothing changed since, and every change is announced: writers publish the
changed device ids (``fleetd.storage.desired.mark_changed``) and the push hub hears them
while it is subscribed. So an entry is trusted when it was verified after the current
subscription started, no notice for the device came since (a notice leaves a tombstone
newer than any lookup begun before it), and it is younger than ``max_age`` (a bound for
the unexpected). A lookup that began before a notice never overwrites it.

Per process, bounded by ``max_entries`` (the oldest entries go first: a lost entry only
costs one lookup).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

SubscribedAt = Callable[[], float | None]

_TOMBSTONE = -1
"""A revision no device holds (revisions are unsigned)."""


class VerifiedRevisions:
    def __init__(
        self,
        subscribed_at: SubscribedAt,
        *,
        max_age: float = 600.0,
        max_entries: int = 500_000,
    ) -> None:
        self._subscribed_at = subscribed_at
        self._max_age = max_age
        self._max_entries = max_entries
        self._entries: dict[str, tuple[int, float]] = {}
        self.trusted = 0

    def current(self, device_id: str, held: int, now: float) -> bool:
        """Whether ``held`` is known current for the device without asking Redis."""
        entry = self._entries.get(device_id)
        if entry is None or entry[0] != held:
            return False
        since = self._subscribed_at()
        if since is None or entry[1] <= since or now - entry[1] >= self._max_age:
            return False
        self.trusted += 1
        return True

    def verified(self, device_id: str, revision: int, lookup_started: float) -> None:
        """Redis said ``revision`` is current, in a lookup begun at ``lookup_started``."""
        entry = self._entries.get(device_id)
        if entry is not None and entry[1] >= lookup_started:
            return  # a notice (or a later lookup) since this one began
        if entry is None and len(self._entries) >= self._max_entries:
            for key in list(itertools.islice(self._entries, self._max_entries // 10 or 1)):
                del self._entries[key]
        self._entries[device_id] = (revision, lookup_started)

    def invalidate(self, device_ids: Iterable[str]) -> None:
        """A change notice: these devices' revisions must be asked for again."""
        now = time.monotonic()
        for device_id in device_ids:
            self._entries[device_id] = (_TOMBSTONE, now)

    def __len__(self) -> int:
        return len(self._entries)
