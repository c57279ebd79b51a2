"""What the agent requires of a signed target before it downloads it (no IO).

A target that verifies under TUF is authentic, but not necessarily meant for this device:
the signed ``custom`` object (written by the server's ``fleetd.domain.signed_target``, which the
agent does not import) says which device type it is for and its release counter, and the
assignment that asked for it names the digest the operator chose. Each check here is
about signed, verified metadata of an immutable target path (the repository refuses other
content under a published path), so a refusal is permanent for the assignment:
``TargetRefused`` carries a short reason code for the status report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.targets import TargetRefused

ANY_HARDWARE = "*"
KINDS = ("file", "model", "config", "container")
MAX_RELEASE_COUNTER = 2**53 - 1
_HARDWARE = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

UNKNOWN_TARGET = "UNKNOWN_TARGET"
INVALID_CUSTOM = "INVALID_CUSTOM"
WRONG_HARDWARE = "WRONG_HARDWARE"
RELEASE_COUNTER_ROLLBACK = "RELEASE_COUNTER_ROLLBACK"
DIGEST_MISMATCH = "DIGEST_MISMATCH"


@dataclass(frozen=True, slots=True)
class TargetCustom:
    """fleetd's fields of a target's signed ``custom`` object."""

    hardware: str
    release_counter: int
    kind: str
    name: str


def parse_custom(path: str, custom: Any) -> TargetCustom:
    """The fleetd fields of ``custom``, or TargetRefused(INVALID_CUSTOM)."""
    if not isinstance(custom, dict):
        raise TargetRefused(INVALID_CUSTOM, f"{path}: no custom metadata")
    hardware, counter = custom.get("hardware"), custom.get("release_counter")
    kind, name = custom.get("kind"), custom.get("name")
    if not isinstance(hardware, str) or not _HARDWARE.match(hardware):
        raise TargetRefused(INVALID_CUSTOM, f"{path}: hardware {hardware!r}")
    if (
        isinstance(counter, bool)
        or not isinstance(counter, int)
        or not 0 <= counter <= MAX_RELEASE_COUNTER
    ):
        raise TargetRefused(INVALID_CUSTOM, f"{path}: release_counter {counter!r}")
    if kind not in KINDS:
        raise TargetRefused(INVALID_CUSTOM, f"{path}: kind {kind!r}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise TargetRefused(INVALID_CUSTOM, f"{path}: name {name!r}")
    return TargetCustom(hardware=hardware, release_counter=counter, kind=str(kind), name=name)


def check_target(
    path: str,
    *,
    custom: Any,
    sha256: str | None,
    length: int,
    expected_sha256: str,
    expected_length: int,
    device_type: str,
    min_release_counter: int,
) -> TargetCustom:
    """Check a verified target's metadata against the device and the assignment.

    ``sha256``/``length``/``custom`` are what the trusted targets role signed;
    ``expected_*`` are what the assignment said. Returns the parsed custom fields or
    raises TargetRefused. The digest cross-check comes first: a target that is not the
    one the operator chose says nothing trustworthy about this assignment.
    """
    expected = expected_sha256.lower()
    if not _SHA256.match(expected) or sha256 is None or sha256.lower() != expected:
        raise TargetRefused(
            DIGEST_MISMATCH, f"{path}: signed sha256 {sha256} but the assignment says {expected}"
        )
    if length != expected_length:
        raise TargetRefused(
            DIGEST_MISMATCH,
            f"{path}: signed length {length} but the assignment says {expected_length}",
        )
    fields = parse_custom(path, custom)
    if fields.hardware not in (ANY_HARDWARE, device_type):
        raise TargetRefused(
            WRONG_HARDWARE, f"{path}: built for {fields.hardware!r}, this is {device_type!r}"
        )
    if fields.release_counter < min_release_counter:
        raise TargetRefused(
            RELEASE_COUNTER_ROLLBACK,
            f"{path}: release counter {fields.release_counter} is below the installed "
            f"{min_release_counter} of {fields.name!r}",
        )
    return fields
