"""Storage adapters: PostgreSQL (source of truth), Redis (hot state), embedded servers."""
