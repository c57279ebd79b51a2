"""Wave sizes from cumulative percentages, as DeployUpdate's SQL cuts them."""

from __future__ import annotations

from fleetd.domain.rollout.waves import wave_ends, wave_sizes


def test_wave_ends_round_up_and_end_with_every_device() -> None:
    assert wave_ends([10.0, 100.0], 1000) == [100, 1000]
    assert wave_ends([10.0, 100.0], 3) == [1, 3]
    assert wave_ends([1.0, 50.0, 100.0], 7) == [1, 4, 7]


def test_wave_sizes_are_the_differences_of_the_ends() -> None:
    assert wave_sizes([25.0, 100.0], 19) == [5, 14]  # ceil(25% of 19)
    assert wave_sizes([1.0, 100.0], 1_000_000) == [10_000, 990_000]
    assert wave_sizes([50.0, 100.0], 0) == [0, 0]
    assert wave_sizes([], 7) == [7]


def test_percentages_are_exact_decimals_not_floats() -> None:
    # In floats 16.1 * 1000 / 100 is 161.00000000000003, which would round up to 162.
    assert wave_ends([16.1, 100.0], 1000) == [161, 1000]
    assert wave_ends([0.1, 100.0], 1000) == [1, 1000]
