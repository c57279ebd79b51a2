"""Device field limits (pure): the shared limits, and where the two servers disagree."""

from __future__ import annotations

import math

import pytest

from fleetd.domain import device_fields
from fleetd.domain.device_fields import InvalidRequest


def test_device_ids_follow_the_schemas_rule() -> None:
    for good in ("rpi-001", "a", "A." + "x" * 126, "0_device"):
        assert device_fields.DEVICE_ID.match(good)
    for bad in ("", "-rpi", ".rpi", "rpi 1", "x" * 129, "rpi/1"):
        assert not device_fields.DEVICE_ID.match(bad)


def test_text_names_the_field_and_the_limit() -> None:
    assert device_fields.text("device_type", "x" * 64, device_fields.MAX_DEVICE_TYPE)
    with pytest.raises(InvalidRequest, match=r"^device_type is longer than 64 characters$"):
        device_fields.text("device_type", "x" * 65, device_fields.MAX_DEVICE_TYPE)
    with pytest.raises(InvalidRequest, match="longer than 256"):
        device_fields.text("hardware.os", "x" * 257)


def test_tags_are_bounded_and_become_a_sorted_set() -> None:
    assert device_fields.tags(["b", "a", "b"]) == ["a", "b"]
    with pytest.raises(InvalidRequest, match="at most 64 tags"):
        device_fields.tags([f"t{i}" for i in range(65)])
    for bad in ("", "x" * 65):
        with pytest.raises(InvalidRequest, match="1 to 64 characters"):
            device_fields.tags([bad])


def test_registration_metadata_keys_need_a_character_except_on_register_device() -> None:
    with pytest.raises(InvalidRequest, match="keys must be 1 to 64"):
        device_fields.metadata({"": "x"})
    assert device_fields.metadata(
        {"": "x"}, min_key_length=device_fields.REGISTER_DEVICE_MIN_METADATA_KEY
    ) == {"": "x"}
    with pytest.raises(InvalidRequest, match="at most 64 metadata entries"):
        device_fields.metadata({f"k{i}": "" for i in range(65)})
    with pytest.raises(InvalidRequest, match="exceeds 256"):
        device_fields.metadata({"k": "v" * 257})


def test_operators_set_metadata_keys_of_a_narrower_alphabet() -> None:
    assert device_fields.is_operator_metadata("site.rack_7-a", "v" * 256)
    assert device_fields.metadata({"bad key": "x"}) == {"bad key": "x"}  # a device may
    for key, value in (("bad key", "x"), ("", "x"), ("k" * 65, "x"), ("k", "v" * 257)):
        assert not device_fields.is_operator_metadata(key, value)


@pytest.mark.parametrize("value", [0.0, 42.5, 100.0])
def test_percentages_from_0_to_100_pass(value: float) -> None:
    assert device_fields.is_percent(value)
    assert device_fields.percent("stats.cpu_percent", value) == value


@pytest.mark.parametrize("value", [-0.1, 100.1, math.nan, math.inf, -math.inf])
def test_other_numbers_are_not_percentages(value: float) -> None:
    assert not device_fields.is_percent(value)
    with pytest.raises(InvalidRequest, match=r"stats\.cpu_percent must be a percentage"):
        device_fields.percent("stats.cpu_percent", value)


def test_used_percent_is_capped_and_unknown_without_a_total() -> None:
    assert device_fields.used_percent(1024, 4096) == 25.0
    assert device_fields.used_percent(5000, 4096) == 100.0
    assert device_fields.used_percent(1024, 0) is None
    assert device_fields.used_percent(0, 4096) is None


def test_non_negative_counts() -> None:
    assert device_fields.non_negative("stats.uptime_seconds", 0) == 0
    with pytest.raises(InvalidRequest, match="between 0 and 4096, got -1"):
        device_fields.non_negative("hardware.cpu_cores", -1, 4096)
