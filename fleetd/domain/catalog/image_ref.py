"""Container image references (``[registry[:port]/]repository[:tag][@sha256:<hex>]``).

The grammar is the distribution project's ``reference`` grammar (the one docker, podman
and containerd accept), restricted to ``sha256`` digests. A reference without a registry
host means Docker Hub (``docker.io``; one-component repositories get ``library/``), as
every container runtime reads it. A reference with neither tag nor digest means
``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
MAX_REFERENCE = 512
MAX_NAME = 255  # distribution's NameTotalLengthMax

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class InvalidReference(ValueError):
    """Not an image reference; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed reference. ``registry`` is a host[:port] as written (``docker.io`` when
    none was); ``repository`` is the path inside it; ``tag`` defaults to ``latest`` when
    no digest was given."""

    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        """``registry/repository`` as written by users (no tag, no digest)."""
        return f"{self.registry}/{self.repository}"

    def pinned(self, digest: str) -> str:
        """The reference a device runs: ``registry/repository@digest``."""
        return f"{self.name}@{digest}"


def parse(reference: str) -> ImageReference:
    """Parse ``reference``.

    Raises:
        InvalidReference: naming the part that is wrong.
    """
    if not reference or len(reference) > MAX_REFERENCE:
        raise InvalidReference(f"must be 1 to {MAX_REFERENCE} characters")
    rest, at, digest = reference.partition("@")
    if at and not DIGEST.match(digest):
        raise InvalidReference(f"digest {digest[:80]!r} is not sha256:<64 lowercase hex>")
    tag = ""
    # A ':' after the last '/' starts the tag (an earlier one is a registry port).
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(f"tag {tag[:80]!r}: letters, digits, _ . - (max 128)")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, remainder
        if not _HOST.match(registry):
            raise InvalidReference(f"registry host {registry[:80]!r} is not a host[:port]")
    else:
        registry, path = DOCKER_HUB, rest
        if "/" not in path:
            path = f"library/{path}"
    if not path or len(path) > MAX_NAME:
        raise InvalidReference(f"repository must be 1 to {MAX_NAME} characters")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            raise InvalidReference(
                f"repository component {component[:80]!r}: lowercase letters and digits "
                "separated by '.', '_', '__' or '-'"
            )
    if not tag and not digest:
        tag = "latest"
    return ImageReference(registry, path, tag, digest)
