from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from fleetd.storage.bearer_tokens import (
    EnrollmentRefused,
    authenticate_api_key,
    consume_enrollment_token,
    create_api_key,
    create_enrollment_token,
    revoke_api_key,
    revoke_enrollment_token,
)


async def test_api_key_authenticates_until_revoked(pool: asyncpg.Pool) -> None:
    secret = await create_api_key(pool, "operator", "ci")
    principal = await authenticate_api_key(pool, secret.token)
    assert principal is not None and principal.role == "operator"
    assert await pool.fetchval("SELECT last_used_at FROM api_keys") is not None
    assert await revoke_api_key(pool, secret.id)
    assert await authenticate_api_key(pool, secret.token) is None


async def test_api_key_secret_is_stored_only_as_hash(pool: asyncpg.Pool) -> None:
    secret = await create_api_key(pool, "viewer", "v")
    stored = await pool.fetchval("SELECT secret_hash FROM api_keys")
    assert stored == secret.digest
    assert secret.token.encode() not in stored


async def test_unknown_role_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        await create_api_key(pool, "root", "x")


async def _consume(pool: asyncpg.Pool, token: str, fleet: str = "default") -> str:
    async with pool.acquire() as conn, conn.transaction():
        return await consume_enrollment_token(conn, token, fleet)


async def test_enrollment_token_use_budget_is_enforced(pool: asyncpg.Pool) -> None:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(hours=1), max_uses=2
    )
    assert await _consume(pool, secret.token) == secret.id
    assert await _consume(pool, secret.token) == secret.id
    with pytest.raises(EnrollmentRefused, match="no uses left"):
        await _consume(pool, secret.token)


async def test_expired_enrollment_token_is_refused(pool: asyncpg.Pool) -> None:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(seconds=1), max_uses=1
    )
    await pool.execute("UPDATE enrollment_tokens SET expires_at = now() - interval '1 s'")
    with pytest.raises(EnrollmentRefused, match="expired"):
        await _consume(pool, secret.token)


async def test_revoked_enrollment_token_is_refused(pool: asyncpg.Pool) -> None:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(hours=1), max_uses=5
    )
    assert await revoke_enrollment_token(pool, secret.id)
    with pytest.raises(EnrollmentRefused, match="revoked"):
        await _consume(pool, secret.token)


async def test_enrollment_token_of_another_fleet_is_refused(pool: asyncpg.Pool) -> None:
    secret, _ = await create_enrollment_token(pool, "other", ttl=dt.timedelta(hours=1), max_uses=1)
    with pytest.raises(EnrollmentRefused, match="another fleet"):
        await _consume(pool, secret.token)


async def test_forged_enrollment_token_is_refused(pool: asyncpg.Pool) -> None:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(hours=1), max_uses=1
    )
    forged = secret.token[:-4] + "AAAA"
    with pytest.raises(EnrollmentRefused, match="not valid"):
        await _consume(pool, forged)


async def test_failed_enrolment_gives_the_use_back(pool: asyncpg.Pool) -> None:
    secret, _ = await create_enrollment_token(
        pool, "default", ttl=dt.timedelta(hours=1), max_uses=1
    )

    async def enrol_then_fail() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await consume_enrollment_token(conn, secret.token, "default")
            raise RuntimeError("enrolment failed later")

    with pytest.raises(RuntimeError):
        await enrol_then_fail()
    assert await _consume(pool, secret.token) == secret.id
