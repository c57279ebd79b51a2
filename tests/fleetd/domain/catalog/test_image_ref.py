"""Container image references: the distribution grammar, Docker Hub defaults."""

from __future__ import annotations

import pytest

from fleetd.domain.catalog.image_ref import ImageReference, InvalidReference, parse

DIGEST = "sha256:" + "0f" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", ImageReference("docker.io", "library/nginx", "latest", "")),
        ("nginx:1.27", ImageReference("docker.io", "library/nginx", "1.27", "")),
        ("grafana/agent:v1", ImageReference("docker.io", "grafana/agent", "v1", "")),
        ("localhost:5000/a/b", ImageReference("localhost:5000", "a/b", "latest", "")),
        (
            "registry.example.com/detector:2.0.0",
            ImageReference("registry.example.com", "detector", "2.0.0", ""),
        ),
        (f"ghcr.io/o/r@{DIGEST}", ImageReference("ghcr.io", "o/r", "", DIGEST)),
        (f"ghcr.io/o/r:1@{DIGEST}", ImageReference("ghcr.io", "o/r", "1", DIGEST)),
        ("127.0.0.1:5000/x__y/z-1.2", ImageReference("127.0.0.1:5000", "x__y/z-1.2", "latest", "")),
    ],
)
def test_references_parse(text: str, expected: ImageReference) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UPPER/case",
        "a//b",
        "a/b:",
        "a/b:-tag",
        "a/b@sha256:short",
        "a/b@md5:" + "0" * 32,
        "-a/b",
        "a/b c",
        "reg.io:port/x",
        "a" * 600,
    ],
)
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse(text)


def test_pinned_reference_drops_the_tag() -> None:
    assert parse("reg.io/a/b:1").pinned(DIGEST) == f"reg.io/a/b@{DIGEST}"
