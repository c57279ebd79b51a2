"""Exponential backoff with full jitter, so a fleet that lost its gateway does not
reconnect in lockstep (see "Exponential Backoff And Jitter", AWS Architecture Blog)."""

from __future__ import annotations

import random


class Backoff:
    """Delays grow as base * 2**attempt up to cap; each delay is uniform in [0, that]."""

    def __init__(
        self, base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def jittered(interval: float, fraction: float = 0.1, rng: random.Random | None = None) -> float:
    """interval +/- fraction, uniformly."""
    r = rng or random
    return interval * (1.0 + r.uniform(-fraction, fraction))
