"""API keys and enrolment tokens in PostgreSQL (hashes only; see fleetd.domain.bearer_tokens)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fleetd.domain import bearer_tokens
from fleetd.storage.types import Connection, Queryable

ROLES = ("admin", "operator", "viewer", "device", "service")


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """Who an API key speaks for."""

    key_id: str
    role: str
    name: str
    device_id: str | None


async def create_api_key(
    conn: Queryable,
    role: str,
    name: str,
    *,
    device_id: str | None = None,
    created_by: str = "",
) -> bearer_tokens.Secret:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    secret = bearer_tokens.mint("api_key")
    await conn.execute(
        """INSERT INTO api_keys (key_id, secret_hash, name, role, device_id, created_by)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        secret.id,
        secret.digest,
        name,
        role,
        device_id,
        created_by,
    )
    return secret


async def authenticate_api_key(conn: Queryable, token: str) -> ApiKeyPrincipal | None:
    """The principal of a valid, unrevoked key; None for anything else.

    Records last use at most once a minute per key, so hot keys do not write per request.
    """
    key_id = bearer_tokens.parse(token, "api_key")
    if key_id is None:
        return None
    row = await conn.fetchrow(
        """SELECT secret_hash, role, name, device_id, last_used_at, revoked_at
           FROM api_keys WHERE key_id = $1""",
        key_id,
    )
    if row is None or row["revoked_at"] is not None:
        return None
    if not bearer_tokens.matches(token, row["secret_hash"]):
        return None
    last_used: dt.datetime | None = row["last_used_at"]
    if last_used is None or dt.datetime.now(dt.UTC) - last_used > dt.timedelta(minutes=1):
        await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = $1", key_id)
    return ApiKeyPrincipal(key_id, row["role"], row["name"], row["device_id"])


async def revoke_api_key(conn: Queryable, key_id: str) -> bool:
    status: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    return status.endswith(" 1")


@dataclass(frozen=True, slots=True)
class EnrollmentToken:
    token_id: str
    fleet: str
    description: str
    max_uses: int
    uses: int
    expires_at: dt.datetime
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None


_ENROLLMENT_COLUMNS = (
    "token_id, fleet, description, max_uses, uses, expires_at, created_at, created_by, revoked_at"
)
_ACTIVE = "revoked_at IS NULL AND expires_at > now() AND uses < max_uses"


async def create_enrollment_token(
    conn: Queryable,
    fleet: str,
    *,
    ttl: dt.timedelta,
    max_uses: int,
    description: str = "",
    created_by: str = "",
) -> tuple[bearer_tokens.Secret, dt.datetime]:
    """Mint a token; returns the secret (shown once) and its expiry."""
    if max_uses < 1:
        raise ValueError("max_uses must be at least 1")
    if ttl <= dt.timedelta(0):
        raise ValueError("ttl must be positive")
    secret = bearer_tokens.mint("enrollment_token")
    expires_at: dt.datetime = await conn.fetchval(
        """INSERT INTO enrollment_tokens
               (token_id, secret_hash, fleet, description, max_uses, expires_at, created_by)
           VALUES ($1, $2, $3, $4, $5, now() + $6, $7) RETURNING expires_at""",
        secret.id,
        secret.digest,
        fleet,
        description,
        max_uses,
        ttl,
        created_by,
    )
    return secret, expires_at


class EnrollmentRefused(Exception):
    """The token cannot enrol a device; the message is safe to show the caller."""


async def consume_enrollment_token(conn: Connection, token: str, fleet: str) -> str:
    """Use one enrolment from the token, atomically; returns the token id.

    Must run inside the enrolling transaction, so a failed enrolment gives the use back.
    """
    token_id = bearer_tokens.parse(token, "enrollment_token")
    if token_id is None:
        raise EnrollmentRefused("enrollment token is malformed")
    row = await conn.fetchrow(
        """SELECT secret_hash, fleet, uses, max_uses, expires_at <= now() AS expired, revoked_at
           FROM enrollment_tokens WHERE token_id = $1 FOR UPDATE""",
        token_id,
    )
    if row is None or not bearer_tokens.matches(token, row["secret_hash"]):
        raise EnrollmentRefused("enrollment token is not valid")
    if row["fleet"] != fleet:
        raise EnrollmentRefused("enrollment token belongs to another fleet")
    if row["revoked_at"] is not None:
        raise EnrollmentRefused("enrollment token was revoked")
    if row["expired"]:
        raise EnrollmentRefused("enrollment token has expired")
    if row["uses"] >= row["max_uses"]:
        raise EnrollmentRefused("enrollment token has no uses left")
    await conn.execute("UPDATE enrollment_tokens SET uses = uses + 1 WHERE token_id = $1", token_id)
    return token_id


async def revoke_enrollment_token(conn: Queryable, token_id: str) -> bool:
    status: str = await conn.execute(
        """UPDATE enrollment_tokens SET revoked_at = now()
           WHERE token_id = $1 AND revoked_at IS NULL""",
        token_id,
    )
    return status.endswith(" 1")


async def get_enrollment_token(conn: Queryable, token_id: str) -> EnrollmentToken | None:
    row = await conn.fetchrow(
        f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollment_tokens WHERE token_id = $1", token_id
    )
    return EnrollmentToken(**dict(row)) if row is not None else None


async def list_enrollment_tokens(
    conn: Queryable,
    fleet: str,
    *,
    limit: int = 100,
    after: tuple[dt.datetime, str] | None = None,
    include_inactive: bool = False,
) -> list[EnrollmentToken]:
    """Newest first; keyset pagination on (created_at, token_id) strictly after ``after``."""
    active = "" if include_inactive else f"AND {_ACTIVE}"
    rows = await conn.fetch(
        f"""SELECT {_ENROLLMENT_COLUMNS} FROM enrollment_tokens
            WHERE fleet = $1 {active}
              AND ($2::timestamptz IS NULL OR (created_at, token_id) < ($2, $3))
            ORDER BY created_at DESC, token_id DESC LIMIT $4""",
        fleet,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    return [EnrollmentToken(**dict(r)) for r in rows]


async def count_enrollment_tokens(
    conn: Queryable, fleet: str, *, include_inactive: bool = False
) -> int:
    active = "" if include_inactive else f"AND {_ACTIVE}"
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM enrollment_tokens WHERE fleet = $1 {active}", fleet
    )
    return count
