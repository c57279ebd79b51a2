"""IdentityCache: the compiled and the reference implementation, the same cases.

Every test taking ``core`` runs twice (see conftest.py). The eviction order is part of the
contract (CLOCK, new entries unmarked), so the tests can say exactly what is still cached;
one test drives both implementations through the same random operations side by side.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Protocol

import fleetd_native
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core_ext.compiled
import core_ext.reference
from core_ext.reference.identity_cache import MAX_CACHE_CAPACITY
from tests.support import certs

FLEET = certs.DEFAULT_FLEET


@pytest.fixture(scope="module")
def devices() -> list[bytes]:
    """Twelve distinct device certificates (PEM, as grpc hands them over)."""
    ca = certs.make_fleet_ca()
    return [certs.make_device_cert(ca, f"dev-{i:02}").pem for i in range(12)]


class Cache(Protocol):
    """What the tests need of either implementation's IdentityCache."""

    @property
    def hits(self) -> int: ...
    def get(self, data: bytes) -> object: ...


def is_cached(cache: Cache, data: bytes) -> bool:
    """Whether ``data`` is cached, by looking it up (a miss caches it as a side effect)."""
    hits = cache.hits
    cache.get(data)
    return cache.hits > hits


def test_lookup_gives_the_extracted_identity(core: ModuleType, devices: list[bytes]) -> None:
    cache = core.IdentityCache(4)
    identity = cache.get(devices[0])
    assert isinstance(identity, core.DeviceIdentity)
    assert identity == core.extract_identity(devices[0])
    assert identity.device_id == "dev-00"


def test_second_lookup_is_a_hit_returning_the_same_object(
    core: ModuleType, devices: list[bytes]
) -> None:
    cache = core.IdentityCache(4)
    first = cache.get(devices[0])
    # A distinct bytes object with the same content, as every RPC brings.
    again = cache.get(bytes(bytearray(devices[0])))
    assert again is first
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_pem_and_der_of_one_certificate_are_two_entries(core: ModuleType) -> None:
    device = certs.make_device_cert(certs.make_fleet_ca(), "dev-1")
    cache = core.IdentityCache(4)
    assert cache.get(device.pem) == cache.get(device.der)
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 2)


def test_refusals_are_not_cached(core: ModuleType, devices: list[bytes]) -> None:
    cache = core.IdentityCache(4)
    cache.get(devices[0])
    for _ in range(3):
        with pytest.raises(core.IdentityError, match=r"^malformed certificate"):
            cache.get(b"\x30\x03\x02\x01\x01")
    assert (cache.hits, cache.misses, len(cache)) == (0, 4, 1)
    assert is_cached(cache, devices[0])


def test_a_ca_certificate_is_refused_every_time(core: ModuleType) -> None:
    ca = certs.make_fleet_ca()
    cache = core.IdentityCache(2)
    for _ in range(2):
        with pytest.raises(core.IdentityError, match=r"^CA certificate used as a device"):
            cache.get(ca.pem)
    assert len(cache) == 0


@pytest.mark.parametrize("data", ["-----BEGIN CERTIFICATE-----", bytearray(b"0"), None, 42])
def test_non_bytes_lookup_is_a_type_error(core: ModuleType, data: object) -> None:
    cache = core.IdentityCache(2)
    with pytest.raises(TypeError):
        cache.get(data)
    assert (cache.hits, cache.misses) == (0, 0)


@pytest.mark.parametrize("capacity", [0, -1, MAX_CACHE_CAPACITY + 1, 2**70])
def test_capacity_out_of_range_is_refused(core: ModuleType, capacity: int) -> None:
    with pytest.raises(ValueError, match=r"^capacity must be between 1 and 16777216"):
        core.IdentityCache(capacity)


@pytest.mark.parametrize("capacity", [1.0, "3", None])
def test_capacity_must_be_an_integer(core: ModuleType, capacity: object) -> None:
    with pytest.raises(TypeError):
        core.IdentityCache(capacity)


def test_capacity_bounds_the_entries(core: ModuleType, devices: list[bytes]) -> None:
    cache = core.IdentityCache(5)
    assert cache.capacity == 5
    for data in devices:
        cache.get(data)
    assert len(cache) == 5
    assert (cache.misses, cache.evictions) == (12, 7)


def test_both_implementations_have_the_same_capacity_limit() -> None:
    assert fleetd_native.MAX_CACHE_CAPACITY == MAX_CACHE_CAPACITY == 1 << 24


def test_unmarked_entries_are_evicted_in_insertion_order(
    core: ModuleType, devices: list[bytes]
) -> None:
    a, b, c, d = devices[:4]
    cache = core.IdentityCache(3)
    for data in (a, b, c, d):  # d evicts a, the oldest
        cache.get(data)
    assert cache.evictions == 1
    assert is_cached(cache, b)
    assert is_cached(cache, c)
    assert is_cached(cache, d)
    assert not is_cached(cache, a)  # and now a evicts b (marks were cleared in passing)


def test_a_hit_entry_gets_a_second_chance(core: ModuleType, devices: list[bytes]) -> None:
    a, b, c, d, e = devices[:5]
    cache = core.IdentityCache(3)
    for data in (a, b, c):
        cache.get(data)
    cache.get(a)  # marks a
    cache.get(d)  # the hand clears a's mark and evicts b
    cache.get(e)  # then evicts c
    assert (cache.hits, cache.misses, cache.evictions) == (1, 5, 2)
    assert is_cached(cache, a)
    assert is_cached(cache, d)
    assert is_cached(cache, e)


def test_clear_drops_entries_and_keeps_counters(core: ModuleType, devices: list[bytes]) -> None:
    cache = core.IdentityCache(3)
    for data in devices[:4]:
        cache.get(data)
    cache.get(devices[3])
    cache.clear()
    assert len(cache) == 0
    assert (cache.hits, cache.misses, cache.evictions) == (1, 4, 1)
    assert not is_cached(cache, devices[3])
    assert len(cache) == 1


def test_repr_shows_size_and_counters(core: ModuleType, devices: list[bytes]) -> None:
    cache = core.IdentityCache(3)
    cache.get(devices[0])
    cache.get(devices[0])
    assert repr(cache) == "IdentityCache(capacity=3, len=1, hits=1, misses=1, evictions=0)"


def test_concurrent_lookups_agree_and_count_every_call(
    core: ModuleType, devices: list[bytes]
) -> None:
    cache = core.IdentityCache(8)
    expected = {data: core.extract_identity(data) for data in devices}
    errors: list[str] = []
    rounds = 200

    def worker(offset: int) -> None:
        for i in range(rounds):
            data = devices[(i + offset) % len(devices)]
            if cache.get(data) != expected[data]:
                errors.append(f"wrong identity for {data[:40]!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.hits + cache.misses == 4 * rounds
    assert len(cache) == 8


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 6),
    operations=st.lists(st.one_of(st.integers(0, 11), st.just("clear")), max_size=60),
)
def test_implementations_evict_alike(
    devices: list[bytes], capacity: int, operations: list[int | str]
) -> None:
    compiled = core_ext.compiled.IdentityCache(capacity)
    reference = core_ext.reference.IdentityCache(capacity)
    for operation in operations:
        for cache in (compiled, reference):
            if operation == "clear":
                cache.clear()
            else:
                assert isinstance(operation, int)
                cache.get(devices[operation])
        state = [(c.hits, c.misses, c.evictions, len(c)) for c in (compiled, reference)]
        assert state[0] == state[1]
