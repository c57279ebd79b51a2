"""The signed-target contract: what fleetd writes into each TUF target's ``custom`` object,
and what a device requires of it. One definition for the server, which checks it before
signing, and the agent, which checks it after verifying (this module ships in the agent's
wheel: it imports the standard library only, and must keep doing so).

Signed custom metadata is what lets the agent refuse a validly signed artifact that is not
meant for it: ``hardware`` (the device type it is built for; ``"*"`` for every type, an
explicit choice rather than a missing field), ``release_counter`` (anti-rollback: the
agent refuses a target whose counter is below the one it has installed for the same
artifact ``name``) and ``kind`` (how the agent installs it). Other keys are kept as
given (``extra``), so UpdateService can add more without a change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

KINDS = ("file", "model", "config", "container")
ANY_HARDWARE = "*"
MAX_RELEASE_COUNTER = 2**53 - 1  # exact in every JSON parser
FIELDS = ("hardware", "release_counter", "kind", "name")
_HARDWARE = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class TargetCustom:
    """The ``custom`` object of a fleetd target; construction checks every field
    (ValueError naming the field)."""

    hardware: str
    release_counter: int
    kind: str
    name: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.hardware, str) or not _HARDWARE.match(self.hardware):
            raise ValueError(
                f"hardware {self.hardware!r}: a device type (letters, digits, . _ -) or '*'"
            )
        if (
            isinstance(self.release_counter, bool)
            or not isinstance(self.release_counter, int)
            or not 0 <= self.release_counter <= MAX_RELEASE_COUNTER
        ):
            raise ValueError(f"release_counter {self.release_counter!r}: a whole number >= 0")
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: one of {', '.join(KINDS)}")
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: letters, digits, . _ - (max 128)")
        clash = set(self.extra) & set(FIELDS)
        if clash:
            raise ValueError(f"extra custom keys clash with fleetd's: {sorted(clash)}")

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "hardware": self.hardware,
            "release_counter": self.release_counter,
            "kind": self.kind,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, data: Any) -> TargetCustom:
        """Parse and check signed (or about to be signed) custom metadata; raises
        ValueError naming what is missing or wrong."""
        if not isinstance(data, dict):
            raise ValueError("no custom metadata")
        missing = [k for k in FIELDS if k not in data]
        if missing:
            raise ValueError(f"target custom metadata lacks {', '.join(missing)}")
        return cls(
            hardware=data["hardware"],
            release_counter=data["release_counter"],
            kind=data["kind"],
            name=data["name"],
            extra={k: v for k, v in data.items() if k not in FIELDS},
        )

    def fits(self, device_type: str) -> bool:
        """Whether a device of ``device_type`` may install this target."""
        return self.hardware in (ANY_HARDWARE, device_type)
