"""Per-event-loop resources of the control API: pools and clients bound to their loop.

pyvoy runs the app on more than one event loop (HTTP and WebSocket at least) and runs
lifespan once per loop; asyncpg pools and Redis clients belong to the loop that made
them. So each loop's lifespan opens its own set, and handlers find theirs by loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from control_api.debug import record_query
from control_api.pagination import PageTokens
from control_api.ratelimit import Limits, RateLimiter
from fleetd.services import jwt
from fleetd.services.pki import CertificateAuthority
from fleetd.settings import Settings
from fleetd.storage import query_log, redis_client, server_secrets
from fleetd.storage.postgres import connect
from fleetd.storage.types import Pool, Redis

PAGE_TOKEN_SECRET = "page_tokens"  # noqa: S105 - the name of a secret, not one
"""The ``server_secrets`` row that keys every replica's page tokens."""
REDIS_TIMEOUT = 2.0
"""Seconds any one Redis command may take (XREAD BLOCK in event_stream.py stays below)."""


@dataclass
class Resources:
    settings: Settings
    pool: Pool
    redis: Redis
    page_tokens: PageTokens
    ca: CertificateAuthority
    rate_limiter: RateLimiter
    limits: Limits
    api_key_cache: dict[str, tuple[float, object]] = field(default_factory=dict)
    jwt_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    jwt_keys_loaded_at: float = float("-inf")

    async def jwt_public_keys(self, *, refresh: bool = False) -> dict[str, Ed25519PublicKey]:
        """Public JWT keys, reloaded every JWT_KEYS_TTL seconds (or now, if ``refresh``
        and the last load is older than a second: an unknown kid after a rotation)."""
        age = time.monotonic() - self.jwt_keys_loaded_at
        if age > JWT_KEYS_TTL or (refresh and age > 1.0):
            self.jwt_keys = await jwt.load_public_keys(self.pool)
            self.jwt_keys_loaded_at = time.monotonic()
        return self.jwt_keys


JWT_KEYS_TTL = 30.0

_by_loop: dict[asyncio.AbstractEventLoop, Resources] = {}


async def open_resources(settings: Settings) -> Resources:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("the control API needs FLEETD_DATABASE_URL and FLEETD_REDIS_URL")
    pool = await connect(
        settings.database_url,
        min_size=1,
        max_size=10,
        on_connect=query_log.reporting_to(record_query),
    )
    redis = redis_client.connect(settings.redis_url, socket_timeout=REDIS_TIMEOUT)
    res = Resources(
        settings=settings,
        pool=pool,
        redis=redis,
        rate_limiter=RateLimiter(redis),
        limits=Limits.from_settings(settings),
        page_tokens=PageTokens(await server_secrets.shared_secret(pool, PAGE_TOKEN_SECRET)),
        ca=CertificateAuthority.load(settings.paths, settings.fleet),
    )
    _by_loop[asyncio.get_running_loop()] = res
    return res


async def close_resources() -> None:
    res = _by_loop.pop(asyncio.get_running_loop(), None)
    if res is not None:
        await redis_client.close(res.redis)
        await res.pool.close()


def resources() -> Resources:
    res = _by_loop.get(asyncio.get_running_loop())
    if res is None:
        raise ConnectError(Code.UNAVAILABLE, "the server is starting or stopping; retry shortly")
    return res
