"""Rows of the ``server_secrets`` table: secrets every replica of a server must share.

A secret is created by whichever replica asks first and never changes afterwards, so
replicas started at the same moment still agree (the insert does nothing when a row
exists, then everyone reads the one row). Today: the page-token key of the operator API.
"""

from __future__ import annotations

import secrets

from fleetd.storage.types import Queryable

SECRET_BYTES = 32


async def shared_secret(conn: Queryable, name: str) -> bytes:
    """The secret called ``name`` (``SECRET_BYTES`` random bytes), created if missing."""
    await conn.execute(
        "INSERT INTO server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        secrets.token_bytes(SECRET_BYTES),
    )
    secret: bytes = await conn.fetchval("SELECT secret FROM server_secrets WHERE name = $1", name)
    return secret
