"""Bearer secrets fleetd hands out: API keys and enrolment tokens.

A secret is ``<prefix>_<id>_<secret>``: the id locates the stored record, the secret is
only ever stored as its SHA-256 (secrets are 256 random bits, so a fast hash is enough and
keeps the per-request check cheap), and comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

Kind = Literal["api_key", "enrollment_token"]
_PREFIX: dict[Kind, str] = {"api_key": "fk", "enrollment_token": "fet"}
_SHAPE = re.compile(r"^(fk|fet)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class Secret:
    """A freshly minted credential: show ``token`` once, store ``id`` and ``digest``."""

    kind: Kind
    id: str
    token: str

    @property
    def digest(self) -> bytes:
        return digest(self.token)


def mint(kind: Kind) -> Secret:
    key_id = secrets.token_hex(8)
    return Secret(kind, key_id, f"{_PREFIX[kind]}_{key_id}_{secrets.token_urlsafe(32)}")


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse(token: str, kind: Kind) -> str | None:
    """The record id of a well-formed token of this kind, or None."""
    match = _SHAPE.match(token)
    if match is None or match[1] != _PREFIX[kind]:
        return None
    return match[2]


def matches(token: str, stored_digest: bytes) -> bool:
    return hmac.compare_digest(digest(token), stored_digest)
