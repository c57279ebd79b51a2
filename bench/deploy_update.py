"""DeployUpdate at fleet scale, and what one status report costs as deployments grow.

    python -m bench.deploy_update [--devices N] [--small N] [--reports N]

Loads N devices (default 1,000,000, type ``raspberry-pi``) plus a small group (default
1,000, type ``esp32``) into a fresh database (COPY), starts a real deployment (control API
on pyvoy over TLS, gateway) and measures, in one run:

- **accepted + materialised**: DeployUpdate over gRPC with ``device_filter:
  "type:raspberry-pi"`` (a canary wave of 1% then the rest): the call returns once every
  target row (wave fixed) and the counters are written. Target: <= 10 s. Before the
  figure counts, it asserts that there are N target rows, that the waves hold 1% and 99%
  of them, and that the counters add up to N.
- **a status report's cost** on the 1,000-target deployment vs the 1,000,000-target one,
  side by side (interleaved): ``fleetd.storage.assignments.record_status_report``, the
  function the gateway's ReportArtifactStatus runs, on a pool, for devices of each
  deployment assigned by the engine's own ``assign_batch``. Target: O(1), a ratio of
  about 1 (<= 1.5).

The API's engine tick is set very long so the engine does not assign in the background
while reports are timed (assignments for the measured devices are made explicitly).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg
import grpc

from bench.harness import Report
from fleetd.device.v1 import agent_pb2
from fleetd.storage import deployment_batches
from fleetd.storage import deployments as store
from fleetd.storage.assignments import record_status_report
from fleetd.storage.postgres import connect
from fleetd.v1 import update_pb2, update_pb2_grpc
from tests.support.deployment import running_deployment
from tests.support.storage import StorageServers, drop_database, fresh_database, storage_servers
from tests.support.updates import create_update

TARGET_SECONDS = 10.0
MAX_RATIO = 1.5


async def load_devices(conn: asyncpg.Connection, count: int, prefix: str, kind: str) -> None:
    # 'offline': they never heartbeat here, and 'online' devices without a heartbeat would
    # be marked offline by the gateway's liveness sweeper while DeployUpdate is timed.
    await conn.copy_records_to_table(
        "devices",
        records=((f"{prefix}-{i:07d}", "default", kind, "offline") for i in range(count)),
        columns=["device_id", "fleet", "device_type", "status"],
    )


async def deploy(
    port: int, ca: bytes, api_key: str, update_id: str, device_filter: str, canary: bool
) -> tuple[float, update_pb2.DeployUpdateResponse]:
    creds = grpc.ssl_channel_credentials(root_certificates=ca)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        stub = update_pb2_grpc.UpdateServiceStub(channel)
        request = update_pb2.DeployUpdateRequest(
            update_id=update_id,
            device_filter=device_filter,
            config=update_pb2.DeploymentConfig(
                strategy=update_pb2.CANARY, canary_percentage=1, auto_promote=True
            )
            if canary
            else update_pb2.DeploymentConfig(strategy=update_pb2.ALL_AT_ONCE),
        )
        started = time.perf_counter()
        response: update_pb2.DeployUpdateResponse = await stub.DeployUpdate(
            request, metadata=(("x-api-key", api_key),), timeout=120
        )
        return time.perf_counter() - started, response


async def assign(pool: asyncpg.Pool, deployment_id: str, update_id: str, count: int) -> list[str]:
    """Put ``count`` devices of the deployment's first wave in flight, as the engine does."""
    artifacts = await store.update_artifacts(pool, update_id) or []
    await pool.execute(
        "UPDATE deployments SET state = 'running' WHERE deployment_id = $1", deployment_id
    )
    async with pool.acquire() as conn:
        batch = await deployment_batches.assign_batch(conn, deployment_id, 0, count, artifacts)
    assert batch.changed == count, batch
    rows = await pool.fetch(
        """SELECT device_id, assignment_ids[1] AS a FROM deployment_targets
           WHERE deployment_id = $1 AND state = 'pending' ORDER BY device_id""",
        deployment_id,
    )
    return [f"{r['device_id']} {r['a']}" for r in rows]


async def run(servers: StorageServers, devices: int, small: int, reports: int) -> None:
    command = "python -m bench.deploy_update" + (
        f" --devices {devices}" if devices != 1_000_000 else ""
    )
    report = Report("deploy_update", command)
    url = await fresh_database(servers)
    try:
        conn = await asyncpg.connect(url)
        await load_devices(conn, devices, "rpi", "raspberry-pi")
        await load_devices(conn, small, "esp", "esp32")
        await conn.execute("VACUUM ANALYZE devices")
        await conn.close()
        async with running_deployment(url, servers.redis_url, rollout_tick=100_000.0) as dep:
            pool = await connect(url, run_migrations=False, max_size=4)
            update_id = await create_update(pool, version="2.0.0")
            small_seconds, small_dep = await deploy(
                dep.api_port, dep.ca_pem, dep.admin_api_key, update_id, "type:esp32", False
            )
            seconds, big = await deploy(
                dep.api_port, dep.ca_pem, dep.admin_api_key, update_id, "type:raspberry-pi", True
            )
            assert big.target_device_count == devices, big
            assert small_dep.target_device_count == small, small_dep
            waves = {
                r["wave"]: r["count"]
                for r in await pool.fetch(
                    """SELECT wave, count(*) FROM deployment_targets
                       WHERE deployment_id = $1 GROUP BY wave""",
                    big.deployment_id,
                )
            }
            assert waves == {0: -(-devices // 100), 1: devices - -(-devices // 100)}, waves
            counted = await pool.fetchval(
                "SELECT sum(count) FROM deployment_counters WHERE deployment_id = $1",
                big.deployment_id,
            )
            assert counted == devices, counted
            report.add(
                f"DeployUpdate by filter to {devices:,} devices: accepted + materialised",
                f"{seconds:.2f} s ({small:,} devices: {small_seconds * 1000:.0f} ms)",
                f"<= {TARGET_SECONDS:g} s",
                seconds <= TARGET_SECONDS,
                seconds=round(seconds, 3),
                small_seconds=round(small_seconds, 3),
                targets=devices,
            )
            in_flight = {
                "small": await assign(pool, small_dep.deployment_id, update_id, reports),
                "large": await assign(pool, big.deployment_id, update_id, reports),
            }
            times: dict[str, list[float]] = {"small": [], "large": []}
            states = (
                agent_pb2.ARTIFACT_STATE_DOWNLOADING,
                agent_pb2.ARTIFACT_STATE_VERIFYING,
                agent_pb2.ARTIFACT_STATE_APPLYING,
                agent_pb2.ARTIFACT_STATE_HEALTHY,
            )
            for sequence, state in enumerate(states, start=1):
                for i in range(reports):
                    for name in ("small", "large") if i % 2 else ("large", "small"):
                        device_id, assignment_id = in_flight[name][i].split()
                        request = agent_pb2.ReportArtifactStatusRequest(
                            assignment_id=assignment_id,
                            state=state,
                            sequence=sequence,
                            installed_version="2.0.0" if state == states[-1] else "",
                        )
                        started = time.perf_counter()
                        async with pool.acquire() as c:
                            outcome = await record_status_report(c, device_id, request)
                        times[name].append(time.perf_counter() - started)
                        assert not outcome.duplicate
            for name, deployment_id in (
                ("small", small_dep.deployment_id),
                ("large", big.deployment_id),
            ):
                counts = await store.counts(pool, deployment_id)
                assert counts.get("healthy") == reports, (name, counts)
                assert counts.get("pending") == 0, (name, counts)
            await pool.close()
    finally:
        await drop_database(servers, url)
    small_ms = statistics.median(times["small"]) * 1000
    large_ms = statistics.median(times["large"]) * 1000
    ratio = large_ms / small_ms
    report.add(
        f"status report (record_status_report + counters), {devices:,}-target vs "
        f"{small:,}-target deployment (median of {len(times['large'])})",
        f"{large_ms:.2f} ms vs {small_ms:.2f} ms (ratio {ratio:.2f})",
        f"O(1): ratio <= {MAX_RATIO}",
        ratio <= MAX_RATIO,
        large_ms=round(large_ms, 3),
        small_ms=round(small_ms, 3),
        ratio=round(ratio, 3),
        p95_large_ms=round(statistics.quantiles(times["large"], n=20)[-1] * 1000, 3),
        p95_small_ms=round(statistics.quantiles(times["small"], n=20)[-1] * 1000, 3),
    )
    report.write()
    assert all(r.met for r in report.rows), "a target was missed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--reports", type=int, default=200)
    args = parser.parse_args()
    with storage_servers() as servers:
        asyncio.run(run(servers, args.devices, args.small, args.reports))


if __name__ == "__main__":
    main()
