"""JWT bearer tokens for people and automation: Ed25519 (``EdDSA``) signed, ``kid`` named.

Minting needs the private key, kept in ``<data>/pki/jwt/<kid>.key`` on the node that
issues tokens (``fleetd jwt issue``); verifying needs only the public keys, stored in
PostgreSQL (fleetd/storage/jwt_keys.py) so every control API replica can check every token.

Verification is strict and explicit (no library guesses): the header's ``alg`` must be
exactly ``EdDSA`` (``none``, HMAC and RSA are refused before any key is touched), the
``kid`` must name a known, unretired key, the signature must verify, and ``iss``,
``aud``, ``exp``, ``nbf`` must be present and hold (with ``LEEWAY`` seconds of clock skew).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleetd.storage import jwt_keys
from fleetd.storage.types import Queryable

ALGORITHM = "EdDSA"
AUDIENCE = "fleetd-api"
LEEWAY = 5
MAX_TOKEN_BYTES = 8192
MAX_TTL_SECONDS = 30 * 24 * 3600
TOKEN_ROLES = ("admin", "operator", "viewer", "service")


class InvalidToken(Exception):
    """The bearer token is not acceptable; the message says why (safe to show)."""


def issuer(fleet: str) -> str:
    return f"fleetd:{fleet}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_ALPHABET for c in text):
        raise InvalidToken("token is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise InvalidToken("token is not base64url") from None


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    role: str
    issuer: str
    expires_at: int
    token_id: str


def _key_dir(data_dir: Path) -> Path:
    return data_dir / "pki" / "jwt"


def new_signing_key() -> SigningKey:
    return SigningKey(f"k-{secrets.token_hex(6)}", Ed25519PrivateKey.generate())


def save_signing_key(data_dir: Path, key: SigningKey) -> Path:
    directory = _key_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{key.kid}.key"
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


def load_signing_key(data_dir: Path, kid: str | None = None) -> SigningKey:
    """The named key, or the newest one in the data directory."""
    directory = _key_dir(data_dir)
    paths = sorted(directory.glob("*.key"), key=lambda p: p.stat().st_mtime)
    if kid is not None:
        paths = [p for p in paths if p.stem == kid]
    if not paths:
        raise FileNotFoundError(f"no JWT signing key in {directory}; run `fleetd init`")
    path = paths[-1]
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 key")
    return SigningKey(path.stem, key)


async def publish_key(conn: Queryable, key: SigningKey) -> None:
    """Make ``key``'s public half known to every replica (publishing twice is harmless)."""
    await jwt_keys.publish(conn, key.kid, ALGORITHM, key.public_pem)


async def retire_key(conn: Queryable, kid: str) -> bool:
    """Stop accepting tokens signed by ``kid``; False when no active key has that id."""
    return await jwt_keys.retire(conn, kid)


async def load_public_keys(conn: Queryable) -> dict[str, Ed25519PublicKey]:
    """The active verification keys by ``kid`` (a stored key that is not Ed25519 is
    skipped: ``verify`` accepts EdDSA only)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for published in await jwt_keys.active(conn):
        public = serialization.load_pem_public_key(published.public_pem.encode())
        if isinstance(public, Ed25519PublicKey):
            keys[published.kid] = public
    return keys


def issue(
    key: SigningKey,
    *,
    fleet: str,
    subject: str,
    role: str,
    ttl_seconds: int,
    now: float | None = None,
) -> str:
    """A signed token for ``subject`` acting with ``role``."""
    if role not in TOKEN_ROLES:
        raise ValueError(f"role must be one of {', '.join(TOKEN_ROLES)}")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError("ttl must be positive and at most 30 days")
    if not subject or len(subject) > 256:
        raise ValueError("subject must be 1 to 256 characters")
    issued = int(time.time() if now is None else now)
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    claims = {
        "iss": issuer(fleet),
        "aud": AUDIENCE,
        "sub": subject,
        "role": role,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": secrets.token_hex(8),
    }
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
    signature = key.private_key.sign(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidToken(f"token {what} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken(f"token {what} is not a JSON object")
    return value


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken(f"token claim {name!r} is missing or not an integer")
    return value


def verify(
    token: str, keys: dict[str, Ed25519PublicKey], *, fleet: str, now: float | None = None
) -> Claims:
    """The token's claims if it is valid for this fleet now; else InvalidToken."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("token is not a compact JWS (header.payload.signature)")
    header = _object(_unb64(parts[0]), "header")
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"token algorithm {header.get('alg')!r} is not accepted; use EdDSA")
    if "crit" in header:
        raise InvalidToken("token has critical header parameters this server does not know")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise InvalidToken("token signing key (kid) is unknown or retired")
    try:
        keys[kid].verify(_unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode())
    except InvalidSignature:
        raise InvalidToken("token signature does not verify") from None
    claims = _object(_unb64(parts[1]), "payload")
    if claims.get("iss") != issuer(fleet):
        raise InvalidToken("token issuer (iss) is not this fleet")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if AUDIENCE not in audiences:
        raise InvalidToken(f"token audience (aud) does not include {AUDIENCE}")
    current = time.time() if now is None else now
    if _int_claim(claims, "exp") <= current - LEEWAY:
        raise InvalidToken("token has expired")
    if _int_claim(claims, "nbf") > current + LEEWAY:
        raise InvalidToken("token is not valid yet")
    subject, role = claims.get("sub"), claims.get("role")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("token subject (sub) is missing")
    if role not in TOKEN_ROLES:
        raise InvalidToken("token role is missing or not one a token may carry")
    return Claims(
        subject, str(role), str(claims["iss"]), int(claims["exp"]), str(claims.get("jti", ""))
    )
