"""A synthetic fleet for the GetDeviceHealth benchmark, generated inside PostgreSQL.

``generate_series`` and ``random()`` (seeded) write N devices with the readings every
check looks at, a certificate each (some revoked and reissued, some expiring or expired,
1 % without any), and three deployments' assignments: one running (some targets failed,
some stalled), one completed (history: inactive, not counted) and direct assignments under
way. Server-side generation takes seconds where a client-side COPY of a million rows
takes a minute.
"""

from __future__ import annotations

import asyncpg

TYPES = ("raspberry-pi", "jetson-nano", "esp32", "x86-gateway")


async def generate(conn: asyncpg.Connection, devices: int) -> None:
    """Fill an empty migrated database with ``devices`` devices and their history."""
    await conn.execute("SELECT setseed(0.42)")
    await conn.execute(
        """
        INSERT INTO devices (device_id, fleet, name, device_type, version, agent_version,
                             status, cpu_usage, memory_usage, disk_usage, uptime_seconds,
                             temperature, last_seen)
        SELECT format('dev-%s', lpad(i::text, 7, '0')), 'default', format('device %s', i),
               ($2::text[])[1 + (i % 4)], '1.0.0',
               CASE WHEN r.u < 0.02 THEN '' ELSE format('1.%s.%s', i % 5, i % 3) END,
               CASE WHEN r.seen < 0.95 THEN 'online' ELSE 'offline' END,
               CASE WHEN r.seen >= 0.99 THEN NULL ELSE round((random() * 100)::numeric, 1) END,
               CASE WHEN r.seen >= 0.99 THEN NULL ELSE round((random() * 100)::numeric, 1) END,
               CASE WHEN r.seen >= 0.99 THEN NULL ELSE round((random() * 100)::numeric, 1) END,
               3600,
               CASE WHEN r.u < 0.3 THEN NULL ELSE (35 + random() * 60)::real END,
               CASE WHEN r.seen < 0.95 THEN now() - random() * interval '60 seconds'
                    WHEN r.seen < 0.99 THEN now() - random() * interval '1 day'
                    ELSE NULL END
        FROM generate_series(0, $1 - 1) AS i,
             LATERAL (SELECT random() AS seen, random() AS u, i AS k) AS r
        """,
        devices,
        list(TYPES),
    )
    await conn.execute(
        """
        INSERT INTO device_certificates (serial, device_id, fingerprint, not_before, not_after,
                                         revoked_at)
        SELECT format('s-%s', d.device_key), d.device_id, format('f-%s', d.device_key),
               now() - interval '30 days',
               now() + (random() * 400 - 20) * interval '1 day', NULL
        FROM devices d WHERE d.device_key % 100 <> 7
        UNION ALL  -- 10 %: an older certificate, revoked at reissue
        SELECT format('r-%s', d.device_key), d.device_id, format('g-%s', d.device_key),
               now() - interval '400 days', now() + interval '300 days', now() - interval '1 day'
        FROM devices d WHERE d.device_key % 10 = 3
        """
    )
    await conn.execute(
        """
        INSERT INTO updates (update_id, name, version, strategy)
        VALUES ('upd-1', 'firmware', '2.0.0', ''), ('upd-0', 'firmware', '1.9.0', '');
        INSERT INTO deployments (deployment_id, update_id, state, config, target_device_count,
                                 wave_ends)
        VALUES ('dep-running', 'upd-1', 'running', '', 0, '{0}'),
               ('dep-done', 'upd-0', 'completed', '', 0, '{0}');
        """
    )
    # History: every fourth device took the completed deployment (some of it failed: not
    # counted, the deployment is over); superseded, so inactive.
    await conn.execute(
        """
        INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version, spec,
                                 active, state, updated_at)
        SELECT format('a0-%s', device_key), device_id, 'dep-done', 'firmware', '1.9.0', '',
               false, CASE WHEN device_key % 20 = 1 THEN 'failed' ELSE 'healthy' END,
               now() - interval '10 days'
        FROM devices WHERE device_key % 4 = 1
        """
    )
    # The running deployment reached every tenth device: 5 % of those failed or rolled
    # back, 5 % are under way (half of them without progress for over an hour).
    await conn.execute(
        """
        INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version, spec,
                                 active, state, updated_at)
        SELECT format('a1-%s', device_key), device_id, 'dep-running', 'firmware', '2.0.0', '',
               true,
               CASE WHEN device_key % 200 = 1 THEN 'failed'
                    WHEN device_key % 200 = 11 THEN 'rolled_back'
                    WHEN device_key % 200 IN (21, 31, 41, 51, 61) THEN 'applying'
                    WHEN device_key % 200 IN (71, 81, 91, 101, 111) THEN 'downloading'
                    ELSE 'healthy' END,
               CASE WHEN device_key % 200 IN (21, 31, 41, 71, 81) THEN now() - interval '3 hours'
                    ELSE now() - interval '5 minutes' END
        FROM devices WHERE device_key % 10 = 1
        """
    )
    # Direct assignments (no deployment), under way on every 50th device.
    await conn.execute(
        """
        INSERT INTO assignments (assignment_id, device_id, name, version, spec, active, state,
                                 updated_at)
        SELECT format('a2-%s', device_key), device_id, 'model', '1', '', true, 'downloading',
               now() - (device_key % 7) * interval '20 minutes'
        FROM devices WHERE device_key % 50 = 2
        """
    )
    await conn.execute("VACUUM ANALYZE devices, device_certificates, assignments, deployments")
