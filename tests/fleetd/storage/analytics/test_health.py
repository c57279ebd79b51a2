"""GetDeviceHealth's SQL against real PostgreSQL: the classification generated from the
table of checks agrees with the Python ``evaluate`` device by device (differential, over
generated devices, at and around every threshold), the summary equals an independent
count, the map is capped and ordered, and selection and the denormalised columns behave."""

from __future__ import annotations

import datetime as dt
import random
import struct
from collections import Counter
from dataclasses import dataclass

import asyncpg
import pytest

import core_ext
from fleetd.domain import device_health
from fleetd.domain.device_health import Limits, Observed, Thresholds, evaluate, parse_version
from fleetd.storage.analytics import health as health_store
from fleetd.storage.types import Queryable
from fleetd.v1 import device_pb2

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
CHECK_TYPES = (device_pb2.BASIC, device_pb2.RESOURCES, device_pb2.COMPREHENSIVE)
THRESHOLDS = Thresholds(
    offline_after=90.0,
    temperature=Limits(70.0, 80.0),
    min_agent_version="1.4.0",
)


@dataclass
class Generated:
    """A device as written, with its certificates and assignments."""

    device_id: str
    device_type: str
    last_seen: dt.datetime | None
    cpu: float | None
    memory: float | None
    disk: float | None
    temperature: float | None
    agent_version: str
    certificates: list[tuple[dt.datetime, bool]]  # (not_after, revoked)
    assignments: list[tuple[str, str, bool, dt.datetime]]  # deployment, state, active, updated


def _near(rng: random.Random, limits: list[float], low: float, high: float) -> float | None:
    """A reading exactly at, a hair around, or anywhere near the given limits (or none)."""
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.6:
        # float4-representable hairs: temperature is a real column
        return rng.choice(limits) + rng.choice((-0.5, 0.0, 0.5))
    return round(rng.uniform(low, high), 2)


def _real(value: float | None) -> float | None:
    """``value`` as a ``real`` column stores it (float4), so the comparison is exact."""
    return None if value is None else struct.unpack("f", struct.pack("f", value))[0]


def _generate(count: int, seed: int = 7) -> list[Generated]:
    rng = random.Random(seed)
    window = dt.timedelta(seconds=THRESHOLDS.offline_after)
    warning = dt.timedelta(seconds=THRESHOLDS.certificate_warning)
    stalled = dt.timedelta(seconds=THRESHOLDS.stalled_after)
    hair = dt.timedelta(microseconds=1)
    devices = []
    for i in range(count):
        last_seen = rng.choice(
            [None, NOW, NOW - window, NOW - window - hair, NOW - window + hair, NOW - 10 * window]
        )
        certificates = [
            (
                rng.choice(
                    [NOW, NOW + warning, NOW + warning - hair, NOW - hair, NOW + 30 * warning]
                ),
                rng.random() < 0.3,
            )
            for _ in range(rng.choice([0, 1, 1, 2]))
        ]
        assignments = [
            (
                rng.choice(["dep-active", "dep-done", ""]),
                rng.choice(["failed", "rolled_back", "healthy", "applying", "downloading"]),
                rng.random() < 0.7,
                rng.choice([NOW, NOW - stalled, NOW - stalled - hair, NOW - 3 * stalled]),
            )
            for _ in range(rng.choice([0, 0, 1, 2]))
        ]
        devices.append(
            Generated(
                device_id=f"dev-{i:04d}",
                device_type=rng.choice(["raspberry-pi", "esp32"]),
                last_seen=last_seen,
                cpu=_near(rng, [90.0], 0, 100),
                memory=_near(rng, [90.0, 97.0], 0, 100),
                disk=_near(rng, [85.0, 95.0], 0, 100),
                temperature=_real(_near(rng, [70.0, 80.0], -20, 100)),
                agent_version=rng.choice(["", "1.3.9", "1.4", "1.4.0", "v1.4.1-rc", "2", "dev"]),
                certificates=certificates,
                assignments=assignments,
            )
        )
    return devices


async def _write(conn: Queryable, devices: list[Generated]) -> None:
    await conn.execute(
        """INSERT INTO updates (update_id, name, version, strategy)
           VALUES ('u1', 'fw', '1', ''), ('u0', 'fw', '0', '');
           INSERT INTO deployments (deployment_id, update_id, state, config,
                                    target_device_count, wave_ends)
           VALUES ('dep-active', 'u1', 'running', '', 0, '{0}'),
                  ('dep-done', 'u0', 'completed', '', 0, '{0}')"""
    )
    await conn.executemany(
        """INSERT INTO devices (device_id, fleet, device_type, agent_version, last_seen,
                                cpu_usage, memory_usage, disk_usage, temperature)
           VALUES ($1, 'default', $2, $3, $4, $5, $6, $7, $8)""",
        [
            (
                d.device_id,
                d.device_type,
                d.agent_version,
                d.last_seen,
                d.cpu,
                d.memory,
                d.disk,
                d.temperature,
            )
            for d in devices
        ],
    )
    await conn.executemany(
        """INSERT INTO device_certificates (serial, device_id, fingerprint, not_before,
                                            not_after, revoked_at)
           VALUES ($1, $2, $1, $3, $4, CASE WHEN $5 THEN $3::timestamptz END)""",
        [
            (f"{d.device_id}-{n}", d.device_id, NOW - dt.timedelta(days=400), not_after, revoked)
            for d in devices
            for n, (not_after, revoked) in enumerate(d.certificates)
        ],
    )
    await conn.executemany(
        """INSERT INTO assignments (assignment_id, device_id, deployment_id, name, version,
                                    spec, active, state, updated_at)
           VALUES ($1, $2, $3, $1, '1', '', $4, $5, $6)""",
        [
            (f"{d.device_id}-a{n}", d.device_id, deployment, active, state, updated)
            for d in devices
            for n, (deployment, state, active, updated) in enumerate(d.assignments)
        ],
    )


def _observed(d: Generated) -> Observed:
    """What the checks should see, computed here from the generated data (not by SQL)."""
    valid = [not_after for not_after, revoked in d.certificates if not revoked]
    failed = sum(
        1
        for deployment, state, _, _ in d.assignments
        if deployment == "dep-active" and state in ("failed", "rolled_back")
    )
    under_way = [
        updated
        for _, state, active, updated in d.assignments
        if active and state in ("pending", "downloading", "verifying", "applying")
    ]
    return Observed(
        device_id=d.device_id,
        last_seen=d.last_seen,
        cpu_usage=d.cpu,
        memory_usage=d.memory,
        disk_usage=d.disk,
        certificate_not_after=max(valid) if valid else None,
        temperature=d.temperature,
        agent_version=d.agent_version,
        failed_assignments=failed,
        stalled_since=min(under_way) if under_way else None,
    )


@pytest.fixture
async def fleet(pool: asyncpg.Pool) -> list[Generated]:
    devices = _generate(400)
    async with pool.acquire() as conn:
        await _write(conn, devices)
    return devices


@pytest.mark.parametrize("check_type", CHECK_TYPES)
async def test_sql_classification_equals_python_evaluate_per_device(
    pool: asyncpg.Pool, fleet: list[Generated], check_type: device_pb2.HealthCheckType
) -> None:
    got = await health_store.statuses(
        pool,
        thresholds=THRESHOLDS,
        check_type=check_type,
        selection=health_store.Selection(),
        now=NOW,
    )
    assert len(got) == len(fleet)
    if check_type == device_pb2.COMPREHENSIVE:  # the generated fleet reaches every status
        assert {status for status, _ in got.values()} == {1, 2, 3, 4}
    for device in fleet:
        health = evaluate(_observed(device), now=NOW, thresholds=THRESHOLDS, check_type=check_type)
        expected = (health.status, {c.name: c.status for c in health.checks})
        assert got[device.device_id] == expected, device


async def test_observed_rows_equal_the_generated_data(
    pool: asyncpg.Pool, fleet: list[Generated]
) -> None:
    observed = await health_store.worst(
        pool,
        thresholds=THRESHOLDS,
        check_type=device_pb2.COMPREHENSIVE,
        selection=health_store.Selection(),
        now=NOW,
        limit=len(fleet),
    )
    expected = {d.device_id: _observed(d) for d in fleet}
    assert len(observed) == len(fleet)
    for row in observed:
        assert row == expected[row.device_id]


@pytest.mark.parametrize("check_type", CHECK_TYPES)
async def test_summary_equals_an_independent_count(
    pool: asyncpg.Pool, fleet: list[Generated], check_type: device_pb2.HealthCheckType
) -> None:
    evaluated = [
        evaluate(_observed(d), now=NOW, thresholds=THRESHOLDS, check_type=check_type) for d in fleet
    ]
    summary = await health_store.summary(
        pool,
        thresholds=THRESHOLDS,
        check_type=check_type,
        selection=health_store.Selection(),
        now=NOW,
    )
    by_status = Counter(int(h.status) for h in evaluated)
    failing = Counter(
        c.name for h in evaluated for c in h.checks if c.status >= device_pb2.DEGRADED
    )
    assert summary.total == len(fleet)
    assert summary.by_status == {s: by_status[s] for s in (1, 2, 3, 4)}
    names = [rule.name for rule in THRESHOLDS.rules(check_type)]
    assert summary.failing == {name: failing[name] for name in names}
    assert sum(summary.by_status.values()) == summary.total


async def test_summary_of_a_selection_counts_only_its_devices(
    pool: asyncpg.Pool, fleet: list[Generated]
) -> None:
    """By filter and by ids (which also narrow the assignment aggregate), COMPREHENSIVE:
    the same counts as evaluating exactly those devices."""
    with_assignments = [d.device_id for d in fleet if d.assignments][:15]
    selections = {
        "filter": (
            health_store.Selection(condition=core_ext.compile_filter("type:esp32").to_sql),
            [d for d in fleet if d.device_type == "esp32"],
        ),
        "ids": (
            health_store.Selection(device_ids=[*with_assignments, "nope"]),
            [d for d in fleet if d.device_id in with_assignments],
        ),
    }
    for name, (selection, devices) in selections.items():
        summary = await health_store.summary(
            pool,
            thresholds=THRESHOLDS,
            check_type=device_pb2.COMPREHENSIVE,
            selection=selection,
            now=NOW,
        )
        evaluated = [evaluate(_observed(d), now=NOW, thresholds=THRESHOLDS) for d in devices]
        by_status = Counter(int(h.status) for h in evaluated)
        failing = Counter(
            c.name for h in evaluated for c in h.checks if c.status >= device_pb2.DEGRADED
        )
        assert summary.total == len(devices) > 0, name
        assert summary.by_status == {s: by_status[s] for s in (1, 2, 3, 4)}, name
        assert summary.failing == {
            rule.name: failing[rule.name] for rule in THRESHOLDS.rules(device_pb2.COMPREHENSIVE)
        }, name
        assert summary.failing["artifacts"] > 0 or name == "filter", name


async def test_worst_is_capped_and_ordered_worst_first_then_by_id(
    pool: asyncpg.Pool, fleet: list[Generated]
) -> None:
    statuses = {
        d.device_id: evaluate(_observed(d), now=NOW, thresholds=THRESHOLDS).status for d in fleet
    }
    expected = sorted(statuses, key=lambda i: (-statuses[i], i))[:50]
    worst = await health_store.worst(
        pool,
        thresholds=THRESHOLDS,
        check_type=device_pb2.COMPREHENSIVE,
        selection=health_store.Selection(),
        now=NOW,
        limit=50,
    )
    assert [o.device_id for o in worst] == expected


async def test_selection_by_ids_and_by_filter_and_offboarded_excluded(
    pool: asyncpg.Pool, fleet: list[Generated]
) -> None:
    await pool.execute(
        "UPDATE devices SET offboarded_at = now(), status = 'offboarded' WHERE device_id = $1",
        "dev-0001",
    )
    esp32 = {d.device_id for d in fleet if d.device_type == "esp32"} - {"dev-0001"}
    by_filter = await health_store.statuses(
        pool,
        thresholds=THRESHOLDS,
        check_type=device_pb2.BASIC,
        selection=health_store.Selection(condition=core_ext.compile_filter("type:esp32").to_sql),
        now=NOW,
    )
    assert set(by_filter) == esp32
    by_ids = await health_store.statuses(
        pool,
        thresholds=THRESHOLDS,
        check_type=device_pb2.BASIC,
        selection=health_store.Selection(device_ids=["dev-0000", "dev-0001", "nope"]),
        now=NOW,
    )
    assert set(by_ids) == {"dev-0000"}
    both = await health_store.statuses(
        pool,
        thresholds=THRESHOLDS,
        check_type=device_pb2.BASIC,
        selection=health_store.Selection(
            device_ids=[d.device_id for d in fleet[:20]],
            condition=core_ext.compile_filter("type:esp32").to_sql,
        ),
        now=NOW,
    )
    assert set(both) == {d.device_id for d in fleet[:20]} & esp32


async def test_certificate_expiry_follows_issuance_revocation_and_deletion(
    pool: asyncpg.Pool,
) -> None:
    later, sooner = NOW + dt.timedelta(days=90), NOW + dt.timedelta(days=30)
    await pool.execute("INSERT INTO devices (device_id, fleet) VALUES ('d1', 'default')")

    async def expiry() -> dt.datetime | None:
        value: dt.datetime | None = await pool.fetchval(
            "SELECT cert_not_after FROM devices WHERE device_id = 'd1'"
        )
        return value

    assert await expiry() is None
    for serial, not_after in (("s1", sooner), ("s2", later)):
        await pool.execute(
            """INSERT INTO device_certificates (serial, device_id, fingerprint, not_before,
                                                not_after) VALUES ($1, 'd1', $1, $2, $3)""",
            serial,
            NOW,
            not_after,
        )
    assert await expiry() == later
    await pool.execute("UPDATE device_certificates SET revoked_at = now() WHERE serial = 's2'")
    assert await expiry() == sooner
    await pool.execute("DELETE FROM device_certificates WHERE serial = 's1'")
    assert await expiry() is None


async def test_sql_version_parse_equals_the_domain_rule(pool: asyncpg.Pool) -> None:
    source: str = await pool.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = 'fleetd_agent_version_key'"
    )
    assert f"'{device_health.AGENT_VERSION_PATTERN}'" in source
    samples = ["", "1", "1.2", "v1.2.3", "1.2.3.4", "01.002.3-rc", "x", "v", "1.", "99999999999.1"]
    rows = await pool.fetch(
        "SELECT v, fleetd_agent_version_key(v) AS key FROM unnest($1::text[]) AS v", samples
    )
    for row in rows:
        parsed = parse_version(row["v"])
        assert row["key"] == (None if parsed is None else health_store.version_key(parsed))


async def test_version_keys_sort_as_the_versions_do(pool: asyncpg.Pool) -> None:
    """The stored key compares bytewise (the column's "C" collation) exactly as the
    (major, minor, patch) tuples compare, numbers of any length included."""
    rng = random.Random(3)
    parts = [0, 1, 2, 9, 10, 11, 99, 100, 12345678901234567890]
    versions = sorted(
        {".".join(str(rng.choice(parts)) for _ in range(3)) for _ in range(300)}
        | {"v1", "1.0", "01.02.003", "1.2.3-rc1", "10.0.0", "9.99.99"}
    )
    await pool.executemany(
        "INSERT INTO devices (device_id, fleet, name, device_type, version, agent_version) "
        "VALUES ($1, 'default', $1, 'esp32', '1.0.0', $2)",
        [(f"v-{i}", v) for i, v in enumerate(versions)],
    )
    rows = await pool.fetch(
        "SELECT agent_version FROM devices WHERE device_id LIKE 'v-%' "
        "ORDER BY agent_version_key, agent_version"
    )

    def parsed(version: str) -> tuple[int, int, int]:
        found = parse_version(version)
        assert found is not None
        return found

    ordered = [row["agent_version"] for row in rows]
    assert [parsed(v) for v in ordered] == sorted(parsed(v) for v in versions)
    assert len(ordered) == len(versions)


async def test_observe_one_device_sees_its_own_assignments_only(
    pool: asyncpg.Pool, fleet: list[Generated]
) -> None:
    with_assignments = [d for d in fleet if d.assignments][:20]
    assert any(_observed(d).failed_assignments for d in with_assignments)
    for device in with_assignments:
        assert await health_store.observe(pool, device.device_id, now=NOW) == _observed(device)
    assert await health_store.observe(pool, "no-such-device", now=NOW) is None
