"""The agent's checks of a signed target against the device and the assignment (no IO)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from agent.targets import TargetRefused
from agent.tuf_policy import (
    DIGEST_MISMATCH,
    INVALID_CUSTOM,
    RELEASE_COUNTER_ROLLBACK,
    WRONG_HARDWARE,
    TargetCustom,
    check_target,
)

SHA = hashlib.sha256(b"content").hexdigest()
CUSTOM = {"hardware": "raspberry-pi", "release_counter": 12, "kind": "model", "name": "detector"}


def check(**kw: Any) -> TargetCustom:
    args: dict[str, Any] = {
        "custom": CUSTOM,
        "sha256": SHA,
        "length": 7,
        "expected_sha256": SHA,
        "expected_length": 7,
        "device_type": "raspberry-pi",
        "min_release_counter": 12,
    }
    args.update(kw)
    return check_target("models/detector.onnx", **args)


def reason(**kw: Any) -> str:
    with pytest.raises(TargetRefused) as info:
        check(**kw)
    return info.value.reason


def test_a_target_for_this_device_at_the_installed_counter_passes() -> None:
    assert check() == TargetCustom("raspberry-pi", 12, "model", "detector")


def test_the_assignment_digest_is_compared_without_regard_to_case() -> None:
    assert check(expected_sha256=SHA.upper()).name == "detector"


@pytest.mark.parametrize(
    "kw",
    [
        {"expected_sha256": hashlib.sha256(b"other").hexdigest()},
        {"expected_sha256": ""},
        {"sha256": None},
        {"expected_length": 8},
    ],
)
def test_a_digest_or_length_other_than_assigned_is_refused(kw: dict[str, Any]) -> None:
    assert reason(**kw) == DIGEST_MISMATCH


def test_a_lower_release_counter_is_refused_and_a_higher_one_passes() -> None:
    assert reason(min_release_counter=13) == RELEASE_COUNTER_ROLLBACK
    assert check(min_release_counter=0).release_counter == 12


def test_another_hardware_type_is_refused_and_the_wildcard_passes() -> None:
    assert reason(device_type="jetson-orin") == WRONG_HARDWARE
    assert check(custom={**CUSTOM, "hardware": "*"}, device_type="jetson-orin").hardware == "*"


@pytest.mark.parametrize(
    "custom",
    [
        None,
        [],
        {k: v for k, v in CUSTOM.items() if k != "hardware"},
        {**CUSTOM, "hardware": ""},
        {**CUSTOM, "hardware": "../etc"},
        {**CUSTOM, "release_counter": True},
        {**CUSTOM, "release_counter": -1},
        {**CUSTOM, "release_counter": 2**53},
        {**CUSTOM, "release_counter": "12"},
        {**CUSTOM, "kind": "shell"},
        {**CUSTOM, "name": "a/b"},
    ],
)
def test_malformed_custom_metadata_is_refused(custom: Any) -> None:
    assert reason(custom=custom) == INVALID_CUSTOM
