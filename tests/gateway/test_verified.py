"""Verified revisions: trusted until a notice, never overwritten by an older lookup."""

from __future__ import annotations

import time

from gateway.verified import VerifiedRevisions


def test_trusted_only_after_verification_while_subscribed() -> None:
    subscribed: list[float | None] = [time.monotonic()]
    cache = VerifiedRevisions(lambda: subscribed[0], max_age=60.0)
    now = time.monotonic() + 1
    assert not cache.current("d", 3, now)
    cache.verified("d", 3, now)
    assert cache.current("d", 3, now + 1)
    assert not cache.current("d", 4, now + 1)  # another revision
    assert not cache.current("d", 3, now + 61)  # too old
    subscribed[0] = None  # the hub lost its subscription: notices may be missed
    assert not cache.current("d", 3, now + 1)
    subscribed[0] = now + 2  # resubscribed after the verification
    assert not cache.current("d", 3, now + 3)


def test_a_notice_beats_a_lookup_that_began_before_it() -> None:
    cache = VerifiedRevisions(lambda: 0.0)
    started = time.monotonic()
    cache.invalidate(["d"])  # the change is announced while the lookup is in flight
    cache.verified("d", 3, started)  # the (stale) lookup completes
    assert not cache.current("d", 3, time.monotonic())
    cache.verified("d", 4, time.monotonic())  # a lookup begun after the notice
    assert cache.current("d", 4, time.monotonic())


def test_bounded() -> None:
    cache = VerifiedRevisions(lambda: 0.0, max_entries=100)
    for n in range(250):
        cache.verified(f"d{n}", 1, time.monotonic())
    assert len(cache) <= 100
    assert cache.current("d249", 1, time.monotonic())
