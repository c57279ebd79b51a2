"""What the agent requires of a signed target before it downloads it (no IO).

A target that verifies under TUF is authentic, but not necessarily meant for this device:
the signed ``custom`` object (the contract in ``fleetd.domain.signed_target``, shared with
the server and shipped in the agent's wheel) says which device type it is for and its
release counter, and the assignment that asked for it names the digest the operator
chose. Each check here is about signed, verified metadata of an immutable target path
(the repository refuses other content under a published path), so a refusal is permanent
for the assignment: ``TargetRefused`` carries a short reason code for the status report.
"""

from __future__ import annotations

import re
from typing import Any

from agent.targets import TargetRefused
from fleetd.domain.signed_target import TargetCustom

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

UNKNOWN_TARGET = "UNKNOWN_TARGET"
INVALID_CUSTOM = "INVALID_CUSTOM"
WRONG_HARDWARE = "WRONG_HARDWARE"
RELEASE_COUNTER_ROLLBACK = "RELEASE_COUNTER_ROLLBACK"
DIGEST_MISMATCH = "DIGEST_MISMATCH"

__all__ = [
    "DIGEST_MISMATCH",
    "INVALID_CUSTOM",
    "RELEASE_COUNTER_ROLLBACK",
    "UNKNOWN_TARGET",
    "WRONG_HARDWARE",
    "TargetCustom",
    "check_target",
    "parse_custom",
]


def parse_custom(path: str, custom: Any) -> TargetCustom:
    """The fleetd fields of ``custom`` (the shared contract), or TargetRefused(INVALID_CUSTOM)."""
    try:
        return TargetCustom.from_json(custom)
    except ValueError as exc:
        raise TargetRefused(INVALID_CUSTOM, f"{path}: {exc}") from None


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
    if not fields.fits(device_type):
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
