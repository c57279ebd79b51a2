"""The audit trail the interceptor (control_api.auth) writes around mutating calls, with
the audit log failing for real (a PostgreSQL trigger refuses the inserts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from fleetd.storage import audit
from tests.support.deployment import Deployment, running_deployment
from tests.support.http import Response, connect_json

UPDATE = "fleetd.v1.DeviceService/UpdateDevice"


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url) as dep:
        yield dep


async def _call(dep: Deployment, method: str, body: dict[str, Any]) -> Response:
    return await connect_json(
        dep.api_endpoint,
        f"fleetd.v1.DeviceService/{method}",
        body,
        ca_pem=dep.ca_pem,
        api_key=dep.admin_api_key,
    )


async def _break_audit_log(pool: asyncpg.Pool, when: str) -> None:
    """Make inserts into audit_log fail when ``when`` (SQL over NEW) holds."""
    await pool.execute(
        f"""CREATE FUNCTION audit_log_fails() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {when} THEN RAISE EXCEPTION 'disk full (test)'; END IF;
                RETURN NEW;
            END; $$;
            CREATE TRIGGER audit_log_fails BEFORE INSERT ON audit_log
                FOR EACH ROW EXECUTE FUNCTION audit_log_fails();"""
    )


async def _rename(dep: Deployment) -> Response:
    return await _call(
        dep,
        "UpdateDevice",
        {"device_id": "rpi-001", "update_mask": "name", "device": {"name": "renamed"}},
    )


async def test_a_mutating_call_is_recorded_as_started_then_with_its_outcome(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    assert (await _call(deployment, "RegisterDevice", {"device_id": "rpi-001"})).status == 200
    renamed = await _rename(deployment)
    assert renamed.status == 200
    rows = await pool.fetch(
        "SELECT method, target, outcome, request_id FROM audit_log ORDER BY seq"
    )
    assert [(r["method"].rsplit("/", 1)[1], r["target"], r["outcome"]) for r in rows] == [
        ("RegisterDevice", "", "STARTED"),
        ("RegisterDevice", "rpi-001", "OK"),
        ("UpdateDevice", "", "STARTED"),
        ("UpdateDevice", "rpi-001", "OK"),
    ]
    assert rows[2]["request_id"] == rows[3]["request_id"] == renamed.headers["x-request-id"]
    async with pool.acquire() as conn:
        verdict = await audit.verify(conn)
    assert (verdict.first_bad_seq, verdict.unfinished) == (None, ())


async def test_a_call_whose_start_cannot_be_audited_is_refused_and_changes_nothing(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    assert (await _call(deployment, "RegisterDevice", {"device_id": "rpi-001"})).status == 200
    await _break_audit_log(pool, "TRUE")
    refused = await _rename(deployment)
    assert refused.status == 503, refused.body
    assert refused.body["code"] == "unavailable"
    assert "audit log" in refused.body["message"]
    assert await pool.fetchval("SELECT name FROM devices") == "rpi-001"
    # Reads are not audited, so they keep working.
    listed = await _call(deployment, "ListDevices", {})
    assert listed.status == 200


async def test_an_outcome_that_cannot_be_appended_leaves_the_call_unfinished_in_the_log(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    assert (await _call(deployment, "RegisterDevice", {"device_id": "rpi-001"})).status == 200
    await _break_audit_log(pool, "NEW.outcome <> 'STARTED'")
    renamed = await _rename(deployment)
    assert renamed.status == 200  # the change was made and stands
    assert await pool.fetchval("SELECT name FROM devices") == "renamed"
    async with pool.acquire() as conn:
        verdict = await audit.verify(conn)
    assert verdict.first_bad_seq is None
    assert [(r.entry.method, r.entry.request_id) for r in verdict.unfinished] == [
        (UPDATE, renamed.headers["x-request-id"])
    ]
