"""SQL of the analytics tables (docs/analytics.md): partitions, rollups, samples, census,
exports. Decisions live in ``fleetd.domain.analytics``; the roles in
``fleetd.services.analytics``."""
