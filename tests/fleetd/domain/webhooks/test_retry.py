from __future__ import annotations

import pytest

from fleetd.domain.webhooks.retry import InvalidPolicy, RetryPolicy, parse_policy


def test_the_seeds_policy_gives_three_attempts_then_a_dead_letter() -> None:
    policy = parse_policy({"max_attempts": 3, "backoff": "exponential"})
    assert policy == RetryPolicy(3, "exponential")
    assert [policy.ceiling(n) for n in (1, 2)] == [5.0, 10.0]
    assert policy.next_wait(1, 0.5) == 2.5
    assert policy.next_wait(2, 0.999) == pytest.approx(9.99)
    assert policy.next_wait(3, 0.5) is None  # the last attempt failed: dead letter


@pytest.mark.parametrize(
    ("backoff", "ceilings"),
    [
        ("exponential", [5.0, 10.0, 20.0, 40.0, 80.0]),
        ("linear", [5.0, 10.0, 15.0, 20.0, 25.0]),
        ("fixed", [5.0] * 5),
    ],
)
def test_ceilings_per_backoff(backoff: str, ceilings: list[float]) -> None:
    policy = parse_policy({"max_attempts": 10, "backoff": backoff})
    assert [policy.ceiling(n) for n in range(1, 6)] == ceilings


def test_waits_are_capped_and_jittered_from_zero() -> None:
    policy = RetryPolicy(max_attempts=20, cap_seconds=60.0)
    assert policy.ceiling(19) == 60.0
    assert policy.next_wait(19, 0.0) == 0.0
    assert policy.next_wait(19, 0.5) == 30.0
    with pytest.raises(ValueError, match="uniform"):
        policy.next_wait(1, 1.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be 1 to 20"),
        ({"max_attempts": 21}, "max_attempts must be 1 to 20"),
        ({"max_attempts": "3"}, "must be an integer"),
        ({"max_attempts": True}, "must be an integer"),
        ({"backoff": "quadratic"}, "backoff must be one of"),
        ({"jitter": "none"}, "unknown field"),
    ],
)
def test_bad_policies_name_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        parse_policy(raw)


def test_missing_policy_takes_the_defaults() -> None:
    assert parse_policy(None) == parse_policy({}) == RetryPolicy()
