"""``fleetd init``: the fleet CA, server certificates, schema, the TUF repository and its
keys (``<data>/tuf/``, docs/tuf.md), and the first admin API key.

Idempotent: what exists is kept, so running it again (or from ``fleetd demo``) is safe.
The admin key's secret exists only in ``<data>/admin-api-key`` (mode 0600) and, hashed,
in PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fleetd.services import jwt
from fleetd.services.pki import init_pki
from fleetd.services.tuf_repo import KeyDirs
from fleetd.services.tuf_repo.admin import create_repository
from fleetd.settings import Settings
from fleetd.storage.bearer_tokens import authenticate_api_key, create_api_key
from fleetd.storage.postgres import connect


@dataclass(frozen=True, slots=True)
class InitResult:
    created_admin_key: bool
    admin_api_key: str


async def initialize(
    settings: Settings, *, tuf_root_keys: int = 1, tuf_root_threshold: int = 1
) -> InitResult:
    """Create what is missing; ``settings`` must carry a reachable database URL. The TUF
    root key count and threshold apply only when the repository is created."""
    if settings.database_url is None:
        raise ValueError("initialize() needs settings with a database URL")
    paths = settings.paths
    paths.root.mkdir(parents=True, exist_ok=True)
    init_pki(paths, settings.fleet, settings.server_names)
    pool = await connect(settings.database_url, max_size=2)
    try:
        try:
            signing_key = jwt.load_signing_key(paths.root)
        except FileNotFoundError:
            signing_key = jwt.new_signing_key()
            jwt.save_signing_key(paths.root, signing_key)
        await jwt.publish_key(pool, signing_key)
        await create_repository(
            pool,
            KeyDirs.under(paths.root),
            root_keys=tuf_root_keys,
            root_threshold=tuf_root_threshold,
        )
        if paths.admin_api_key.exists():
            existing = paths.admin_api_key.read_text().strip()
            principal = await authenticate_api_key(pool, existing)
            if principal is not None and principal.role == "admin":
                return InitResult(False, existing)
        secret = await create_api_key(pool, "admin", "initial admin key", created_by="fleetd init")
        fd = os.open(paths.admin_api_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret.token + "\n")
        return InitResult(True, secret.token)
    finally:
        await pool.close()
