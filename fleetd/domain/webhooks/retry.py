"""When a failed webhook delivery is tried again, and when it is dead-lettered.

The seed's endpoint shape carries ``"retry": {"max_attempts": 3, "backoff": "exponential"}``.
``max_attempts`` counts every attempt, the first included; after the last one fails the
delivery is dead-lettered (kept, listed, redeliverable by hand). Between attempts the wait
is drawn with full jitter (uniform between 0 and the backoff's ceiling for that attempt),
so that endpoints recovering from an outage are not hit by every retry at once; the
ceilings are:

| backoff | wait ceiling before attempt n + 1 |
|---|---|
| ``exponential`` (default) | ``base * 2^(n - 1)``, at most ``cap`` |
| ``linear`` | ``base * n``, at most ``cap`` |
| ``fixed`` | ``base`` |

with ``base`` 5 s and ``cap`` 1 hour by default: exponential over 8 attempts spans up to
~10.6 minutes of waits, over 16 up to ~9 hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

Backoff = Literal["exponential", "linear", "fixed"]
BACKOFFS: Final[tuple[Backoff, ...]] = ("exponential", "linear", "fixed")
MAX_ATTEMPTS: Final = 20
DEFAULT_ATTEMPTS: Final = 3
DEFAULT_BASE_SECONDS: Final = 5.0
DEFAULT_CAP_SECONDS: Final = 3600.0


class InvalidPolicy(ValueError):
    """A ``retry`` object that is not one fleetd can follow; the message names the field."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_ATTEMPTS
    backoff: Backoff = "exponential"
    base_seconds: float = DEFAULT_BASE_SECONDS
    cap_seconds: float = DEFAULT_CAP_SECONDS

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise InvalidPolicy(f"retry.max_attempts must be 1 to {MAX_ATTEMPTS}")
        if self.backoff not in BACKOFFS:
            raise InvalidPolicy(f"retry.backoff must be one of {', '.join(BACKOFFS)}")
        if not 0.1 <= self.base_seconds <= self.cap_seconds <= 86400.0:
            raise InvalidPolicy("retry waits must satisfy 0.1 s <= base <= cap <= 1 day")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if self.backoff == "fixed":
            return self.base_seconds
        if self.backoff == "linear":
            return min(self.cap_seconds, self.base_seconds * attempt)
        # 2 ** 60 already exceeds any cap: keep the float finite.
        return min(self.cap_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 60))

    def next_wait(self, attempt: int, draw: float) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` before the next one, or None
        when it was the last (dead letter). ``draw`` is uniform in [0, 1): the jitter."""
        if not 0.0 <= draw < 1.0:
            raise ValueError("draw is a uniform number in [0, 1)")
        if attempt >= self.max_attempts:
            return None
        return draw * self.ceiling(attempt)


def parse_policy(raw: Mapping[str, object] | None) -> RetryPolicy:
    """The policy of the seed's ``retry`` object (missing keys take the defaults)."""
    if raw is None:
        return RetryPolicy()
    unknown = sorted(set(raw) - {"max_attempts", "backoff"})
    if unknown:
        raise InvalidPolicy(f"retry: unknown field(s) {', '.join(unknown)}")
    attempts = raw.get("max_attempts", DEFAULT_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise InvalidPolicy("retry.max_attempts must be an integer")
    backoff = raw.get("backoff", "exponential")
    if backoff not in BACKOFFS:
        raise InvalidPolicy(f"retry.backoff must be one of {', '.join(BACKOFFS)}")
    return RetryPolicy(max_attempts=attempts, backoff=backoff)
