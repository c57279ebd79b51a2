from __future__ import annotations

import pytest

from fleetd.domain.analytics import groups


def test_rows_for_a_full_group_cover_every_stored_set() -> None:
    rows = groups.rows_for("f", "pi", "1.0")
    assert rows == [
        (None, None, None),
        ("f", None, None),
        (None, "pi", None),
        ("f", "pi", None),
        (None, "pi", "1.0"),
        ("f", "pi", "1.0"),
    ]


@pytest.mark.parametrize(
    ("labels", "read"),
    [
        (set(), set()),
        ({"fleet"}, {"fleet"}),
        ({"type"}, {"type"}),
        ({"version"}, {"fleet", "type", "version"}),
        ({"fleet", "version"}, {"fleet", "type", "version"}),
        ({"type", "version"}, {"type", "version"}),
    ],
)
def test_covering_set(labels: set[str], read: set[str]) -> None:
    assert groups.covering_set(frozenset(labels)) == frozenset(read)


def test_covering_set_refuses_other_labels() -> None:
    with pytest.raises(ValueError, match="tags"):
        groups.covering_set(frozenset({"tags"}))
