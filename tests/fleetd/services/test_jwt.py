"""JWT verification: every way a token can be wrong is UNAUTHENTICATED-worthy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleetd.services import jwt

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def key() -> jwt.SigningKey:
    return jwt.new_signing_key()


@pytest.fixture(scope="module")
def keys(key: jwt.SigningKey) -> dict[str, Ed25519PublicKey]:
    return {key.kid: key.private_key.public_key()}


def _token(key: jwt.SigningKey, **kw: object) -> str:
    args: dict[str, object] = {"fleet": "default", "subject": "alice", "role": "operator"}
    args.update(kw)
    return jwt.issue(key, ttl_seconds=600, now=NOW, **args)  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _reforge(token: str, header: dict[str, object] | None = None, **claims: object) -> str:
    """The token with its header or claims changed and its old signature kept."""
    head, body, sig = token.split(".")
    new_head = _b64(json.dumps(header).encode()) if header is not None else head
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload.update(claims)
    return f"{new_head}.{_b64(json.dumps(payload).encode())}.{sig}"


def test_valid_token_gives_subject_and_role(
    key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]
) -> None:
    claims = jwt.verify(_token(key), keys, fleet="default", now=NOW + 10)
    assert (claims.subject, claims.role) == ("alice", "operator")


def test_alg_none_is_refused(key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]) -> None:
    body = _token(key).split(".")[1]
    none_head = _b64(json.dumps({"alg": "none", "kid": key.kid}).encode())
    with pytest.raises(jwt.InvalidToken, match="algorithm"):
        jwt.verify(f"{none_head}.{body}.", keys, fleet="default", now=NOW)


def test_hmac_token_keyed_with_the_public_key_is_refused(
    key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]
) -> None:
    # The classic key-confusion attack: HS256 with the public key as the HMAC secret.
    head = _b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
    body = _token(key).split(".")[1]
    mac = hmac.new(key.public_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(jwt.InvalidToken, match="algorithm"):
        jwt.verify(f"{head}.{body}.{_b64(mac)}", keys, fleet="default", now=NOW)


def test_token_signed_with_another_key_type_is_refused(
    key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]
) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    head = _b64(json.dumps({"alg": "ES256", "kid": key.kid}).encode())
    body = _token(key).split(".")[1]
    sig = ec_key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(jwt.InvalidToken, match="algorithm"):
        jwt.verify(f"{head}.{body}.{_b64(sig)}", keys, fleet="default", now=NOW)


def test_expired_token_is_refused(key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]) -> None:
    with pytest.raises(jwt.InvalidToken, match="expired"):
        jwt.verify(_token(key), keys, fleet="default", now=NOW + 601 + jwt.LEEWAY)


def test_not_yet_valid_token_is_refused(
    key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]
) -> None:
    with pytest.raises(jwt.InvalidToken, match="not valid yet"):
        jwt.verify(_token(key), keys, fleet="default", now=NOW - 60)


def test_wrong_issuer_is_refused(key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]) -> None:
    with pytest.raises(jwt.InvalidToken, match="issuer"):
        jwt.verify(_token(key, fleet="other"), keys, fleet="default", now=NOW)


def test_wrong_audience_is_refused(key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]) -> None:
    head, body, _ = _token(key).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["aud"] = "someone-else"
    new_body = _b64(json.dumps(payload).encode())
    sig = key.private_key.sign(f"{head}.{new_body}".encode())
    with pytest.raises(jwt.InvalidToken, match="audience"):
        jwt.verify(f"{head}.{new_body}.{_b64(sig)}", keys, fleet="default", now=NOW)


def test_unknown_kid_is_refused(key: jwt.SigningKey) -> None:
    other = jwt.new_signing_key()
    with pytest.raises(jwt.InvalidToken, match="kid"):
        jwt.verify(
            _token(key), {other.kid: other.private_key.public_key()}, fleet="default", now=NOW
        )


def test_altered_claims_fail_the_signature(
    key: jwt.SigningKey, keys: dict[str, Ed25519PublicKey]
) -> None:
    with pytest.raises(jwt.InvalidToken, match="signature"):
        jwt.verify(_reforge(_token(key), role="admin"), keys, fleet="default", now=NOW)


def test_device_role_cannot_be_minted(key: jwt.SigningKey) -> None:
    with pytest.raises(ValueError, match="role"):
        _token(key, role="device")


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c.d", "!!!.x.y", "x" * 10_000])
def test_garbage_is_refused(garbage: str, keys: dict[str, Ed25519PublicKey]) -> None:
    with pytest.raises(jwt.InvalidToken):
        jwt.verify(garbage, keys, fleet="default", now=NOW)


def test_signing_keys_are_saved_private_and_reloaded(tmp_path: Path) -> None:
    key = jwt.new_signing_key()
    path = jwt.save_signing_key(tmp_path, key)
    assert path.stat().st_mode & 0o077 == 0
    assert jwt.load_signing_key(tmp_path).kid == key.kid
