"""A bounded cache of device identities for the per-RPC path: the pure-Python reference.

Every RPC on the gateway presents the peer certificate again; parsing it each time costs
microseconds (compiled) to a hundred microseconds (reference). :class:`IdentityCache` keys
the :class:`DeviceIdentity` by the certificate's exact bytes, so a lookup is a hash of the
bytes and one comparison.

Invariants, shared with the compiled ``fleetd_native.IdentityCache``:

- At most ``capacity`` entries, evicted by CLOCK (second chance): a hit marks its entry;
  when the cache is full the hand sweeps the slots in insertion order, clearing marks, and
  replaces the first unmarked entry. New entries start unmarked.
- Only identities are cached, never refusals: a refused certificate is parsed again on
  every call (it raises :class:`IdentityError` each time and counts as a miss), so junk
  input cannot evict the devices that are really talking.
- Revocation and the device's standing are not this cache's concern: the caller checks
  the identity it gets against the fleet's revoked set on every call.
- ``hits`` + ``misses`` is the number of ``get`` calls that got past the type check;
  ``clear()`` empties the cache but the counters keep counting.
"""

from __future__ import annotations

import operator

from core_ext.reference.identity import DeviceIdentity, extract_identity

__all__ = ["MAX_CACHE_CAPACITY", "IdentityCache"]

MAX_CACHE_CAPACITY = 1 << 24
"""The largest capacity accepted (memory: each entry holds the certificate bytes, <= 16 KiB)."""


class _Slot:
    __slots__ = ("certificate", "identity", "referenced")

    def __init__(self, certificate: bytes, identity: DeviceIdentity) -> None:
        self.certificate = certificate
        self.identity = identity
        self.referenced = False


class IdentityCache:
    """At most ``capacity`` certificate → :class:`DeviceIdentity` entries, CLOCK eviction.

    Args:
        capacity: the number of entries kept, 1 to 16777216. Memory is bounded by about
            ``capacity`` * (certificate size + 300 bytes); nothing is allocated up front.

    Raises:
        ValueError: when ``capacity`` is out of range.
        TypeError: when ``capacity`` is not an integer.
    """

    __slots__ = ("_capacity", "_evictions", "_hand", "_hits", "_index", "_misses", "_slots")

    def __init__(self, capacity: int) -> None:
        value = operator.index(capacity)
        if not 1 <= value <= MAX_CACHE_CAPACITY:
            raise ValueError(f"capacity must be between 1 and {MAX_CACHE_CAPACITY}, not {value}")
        self._capacity = value
        # Slots in insertion order; the index maps a certificate to its slot's position.
        self._slots: list[_Slot] = []
        self._index: dict[bytes, int] = {}
        self._hand = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def get(self, data: bytes) -> DeviceIdentity:
        """The identity ``data`` establishes, from the cache or extracted and cached.

        Raises:
            IdentityError: when the certificate is refused (see ``extract_identity``);
                refusals are not cached.
            TypeError: when ``data`` is not ``bytes``.
        """
        if type(data) is not bytes:
            raise TypeError(f"IdentityCache.get() expects bytes, not {type(data).__name__}")
        position = self._index.get(data)
        if position is not None:
            slot = self._slots[position]
            slot.referenced = True
            self._hits += 1
            return slot.identity
        self._misses += 1
        identity = extract_identity(data)
        # Another thread may have cached the same certificate meanwhile: keep one entry.
        position = self._index.get(data)
        if position is not None:
            return self._slots[position].identity
        self._insert(data, identity)
        return identity

    def _insert(self, data: bytes, identity: DeviceIdentity) -> None:
        if len(self._slots) < self._capacity:
            self._index[data] = len(self._slots)
            self._slots.append(_Slot(data, identity))
            return
        while True:
            slot = self._slots[self._hand]
            if slot.referenced:
                slot.referenced = False
                self._hand = (self._hand + 1) % self._capacity
                continue
            del self._index[slot.certificate]
            self._evictions += 1
            self._slots[self._hand] = _Slot(data, identity)
            self._index[data] = self._hand
            self._hand = (self._hand + 1) % self._capacity
            return

    def clear(self) -> None:
        """Drop every entry; the counters keep their values."""
        self._slots.clear()
        self._index.clear()
        self._hand = 0

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def capacity(self) -> int:
        """The most entries the cache holds."""
        return self._capacity

    @property
    def hits(self) -> int:
        """Lookups answered from the cache."""
        return self._hits

    @property
    def misses(self) -> int:
        """Lookups that parsed the certificate (refusals included)."""
        return self._misses

    @property
    def evictions(self) -> int:
        """Entries dropped to make room for new ones (``clear()`` does not count)."""
        return self._evictions

    def __repr__(self) -> str:
        return (
            f"IdentityCache(capacity={self._capacity}, len={len(self._slots)}, "
            f"hits={self._hits}, misses={self._misses}, evictions={self._evictions})"
        )
