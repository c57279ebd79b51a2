"""Standard Webhooks signatures (https://www.standardwebhooks.com/), so that receivers can
verify fleetd's deliveries with that specification's libraries.

Every delivery carries three headers: ``webhook-id`` (the event's id, the same on every
retry, so a receiver can drop duplicates), ``webhook-timestamp`` (Unix seconds of this
attempt) and ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` over
``"<id>.<timestamp>.<body>"``, one per secret the endpoint currently signs with. Rotating a
secret keeps the previous one signing until its overlap ends, so receivers switch keys at
their own pace: a receiver that knows either secret verifies.

A secret is ``whsec_`` + base64 of 24 to 64 random bytes, the spec's form (its libraries
take it as is). The random bytes are given by the caller: this module does no IO.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Final

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
TOLERANCE_SECONDS: Final = 300
"""How far a receiver's clock may be from the timestamp (the spec's 5 minutes)."""
MAX_ID_LENGTH: Final = 255

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"


class InvalidSecret(ValueError):
    """A string that is not a ``whsec_`` secret of 24 to 64 bytes."""


class InvalidSignature(ValueError):
    """A delivery whose headers do not verify (missing, stale, or no matching signature)."""


def encode_secret(key: bytes) -> str:
    """The ``whsec_`` form of ``key`` (24 to 64 random bytes)."""
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return SECRET_PREFIX + base64.b64encode(key).decode()


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; InvalidSecret otherwise."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("a webhook secret is whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def _check_id(message_id: str) -> None:
    if not message_id or len(message_id) > MAX_ID_LENGTH or not message_id.isprintable():
        raise ValueError(f"a webhook id is 1 to {MAX_ID_LENGTH} printable characters")


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as ``message_id`` at ``timestamp``."""
    _check_id(message_id)
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery attempt, signed with every key in ``keys`` (the
    current secret first, then those still in their rotation overlap)."""
    if not keys:
        raise ValueError("a webhook delivery needs at least one signing key")
    signatures = " ".join(signature(key, message_id, timestamp, body) for key in keys)
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signatures,
    }


def verify(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check a delivery as a receiver does; return its ``webhook-id``.

    ``headers`` are matched case-insensitively. InvalidSignature when a header is missing,
    the timestamp is not an integer within ``tolerance`` seconds of ``now``, or no ``v1``
    signature matches (compared in constant time)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get(ID_HEADER)
    stamp = lowered.get(TIMESTAMP_HEADER)
    offered = lowered.get(SIGNATURE_HEADER)
    if not message_id or not stamp or not offered:
        raise InvalidSignature("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is too far from now")
    expected = signature(key, message_id, timestamp, body)
    for candidate in offered.split(" "):
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return message_id
    raise InvalidSignature("no webhook-signature matches")
