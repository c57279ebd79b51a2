"""Rows of the ``jwt_keys`` table: the public halves of the JWT signing keys.

Every control API replica verifies every token, so the public keys live in PostgreSQL;
the private keys never do (fleetd/services/jwt.py keeps them in the data directory). A
key is published once (publishing it again changes nothing) and retired at most once; a
retired key stays in the table, so its ``kid`` is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetd.storage.types import Queryable


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """An active (unretired) key: its id and its public key as SubjectPublicKeyInfo PEM."""

    kid: str
    public_pem: str


async def publish(conn: Queryable, kid: str, algorithm: str, public_pem: str) -> None:
    """Record the key; a key already published (same ``kid``) is left as it is."""
    await conn.execute(
        """INSERT INTO jwt_keys (kid, algorithm, public_key) VALUES ($1, $2, $3)
           ON CONFLICT (kid) DO NOTHING""",
        kid,
        algorithm,
        public_pem,
    )


async def retire(conn: Queryable, kid: str) -> bool:
    """Retire an active key; False when no active key has that ``kid``."""
    status: str = await conn.execute(
        "UPDATE jwt_keys SET retired_at = now() WHERE kid = $1 AND retired_at IS NULL", kid
    )
    return status.endswith(" 1")


async def active(conn: Queryable) -> list[PublishedKey]:
    """Every key not retired, in no particular order."""
    rows = await conn.fetch("SELECT kid, public_key FROM jwt_keys WHERE retired_at IS NULL")
    return [PublishedKey(row["kid"], row["public_key"]) for row in rows]
