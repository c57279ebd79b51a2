"""Opaque, tamper-evident page tokens for keyset pagination.

A token is ``base64url(payload) + "." + base64url(HMAC-SHA256(key, payload))[:22]`` where
the payload is compact JSON naming the list it belongs to and the last key returned. The
key is shared by every replica (fleetd/storage/server_secrets.py, read at start-up by
control_api/resources.py). A token that was altered, comes from another list, or is
malformed is INVALID_ARGUMENT; tokens do not expire, because keyset positions stay
meaningful while devices come and go.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Any

import orjson

from control_api.errors import invalid

MAX_TOKEN_LENGTH = 1024
DEFAULT_PAGE_SIZE = 20
"""What ``page_size: 0`` (or none) gets, in every List method."""
MAX_PAGE_SIZE = 100
"""The seed's cap: a larger ``page_size`` is served as 100, not refused."""


def page_size(requested: int) -> int:
    """The seed's page_size rule for every List method: 0 means the default (20), more than
    100 is capped at 100, a negative size is INVALID_ARGUMENT."""
    if requested < 0:
        raise invalid("page_size must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class InvalidPageToken(ValueError):
    """The page token was not issued by this deployment for this list."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("page token key must be at least 32 bytes")
        self._key = key

    def _mac(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())[:22]

    def encode(self, scope: str, position: dict[str, Any]) -> str:
        payload = orjson.dumps({"s": scope, "p": position})
        return f"{_b64(payload)}.{self._mac(payload)}"

    def decode(self, scope: str, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise InvalidPageToken("page_token is malformed")
        body, mac = token.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            raise InvalidPageToken("page_token is malformed") from None
        if not hmac.compare_digest(self._mac(payload), mac):
            raise InvalidPageToken("page_token was not issued by this server")
        data = orjson.loads(payload)
        if (
            not isinstance(data, dict)
            or data.get("s") != scope
            or not isinstance(data.get("p"), dict)
        ):
            raise InvalidPageToken("page_token belongs to a different list or query")
        position: dict[str, Any] = data["p"]
        return position


CreatedPosition = tuple[dt.datetime, str]
"""A keyset position in a list ordered by creation time, then id (tokens, deployments)."""


def created_after(tokens: PageTokens, scope: str, token: str) -> CreatedPosition | None:
    """The position a ``(created_at, id)``-ordered list's page token carries; None without a
    token; INVALID_ARGUMENT for a token this list did not issue."""
    if not token:
        return None
    try:
        position = tokens.decode(scope, token)
        return dt.datetime.fromisoformat(str(position["at"])), str(position["id"])
    except (InvalidPageToken, KeyError, ValueError) as exc:
        raise invalid(f"page_token: {exc}") from None


def created_token(tokens: PageTokens, scope: str, created_at: dt.datetime, item_id: str) -> str:
    """The next page's token after the item created at ``created_at`` with ``item_id``."""
    return tokens.encode(scope, {"at": created_at.isoformat(), "id": item_id})
