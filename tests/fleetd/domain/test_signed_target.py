"""Target custom metadata: hardware, release counter, kind and name are checked."""

from __future__ import annotations

from typing import Any

import pytest

from fleetd.domain.signed_target import TargetCustom

GOOD: dict[str, Any] = {
    "hardware": "raspberry-pi",
    "release_counter": 7,
    "kind": "model",
    "name": "detector",
}


def test_round_trip_keeps_extra_keys() -> None:
    custom = TargetCustom.from_json({**GOOD, "version": "1.2.0"})
    assert custom.to_json() == {**GOOD, "version": "1.2.0"}
    assert custom.fits("raspberry-pi") and not custom.fits("jetson-nano")
    assert TargetCustom.from_json({**GOOD, "hardware": "*"}).fits("jetson-nano")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hardware": ""}, "hardware"),
        ({"hardware": "../x"}, "hardware"),
        ({"release_counter": -1}, "release_counter"),
        ({"release_counter": True}, "release_counter"),
        ({"release_counter": "3"}, "release_counter"),
        ({"kind": "shell"}, "kind"),
        ({"name": "a/b"}, "name"),
    ],
)
def test_bad_values_are_refused_by_name(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TargetCustom.from_json({**GOOD, **change})


def test_missing_fields_are_named() -> None:
    with pytest.raises(ValueError, match="release_counter, kind"):
        TargetCustom.from_json({"hardware": "x", "name": "n"})
