"""Deployments end to end: the control API (pyvoy, its rollout engine inside) over real
gRPC, the gateway over mTLS, simulated devices (tests/support/simulator.py) reporting
lifecycle statuses, real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from fleetd.services.pki import CertificateAuthority
from fleetd.storage import events, redis_keys
from fleetd.v1 import update_pb2, update_pb2_grpc
from tests.support.deployment import Deployment, restart_api, running_deployment
from tests.support.simulator import Behaviour, Simulator
from tests.support.updates import create_update
from tests.support.waiting import until

U = update_pb2
DS = update_pb2.DeploymentStatus
TICK = 0.1


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(
        database_url, redis_url, rollout_tick=TICK, offline_after=3.0
    ) as dep:
        yield dep


@pytest.fixture
def ca(deployment: Deployment) -> CertificateAuthority:
    return CertificateAuthority.load(deployment.settings.paths, deployment.settings.fleet)


class Operator:
    """UpdateService over gRPC with the admin API key."""

    def __init__(self, deployment: Deployment) -> None:
        creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca_pem)
        self.channel = grpc.aio.secure_channel(f"127.0.0.1:{deployment.api_port}", creds)
        self.stub = update_pb2_grpc.UpdateServiceStub(self.channel)
        self.metadata = (("x-api-key", deployment.admin_api_key),)

    async def deploy(self, update_id: str, **kwargs: object) -> U.DeployUpdateResponse:
        request = U.DeployUpdateRequest(update_id=update_id, **kwargs)  # type: ignore[arg-type]
        response: U.DeployUpdateResponse = await self.stub.DeployUpdate(
            request, metadata=self.metadata, timeout=30
        )
        return response

    async def status(
        self, deployment_id: str, *, details: bool = False
    ) -> U.GetDeploymentStatusResponse:
        response: U.GetDeploymentStatusResponse = await self.stub.GetDeploymentStatus(
            U.GetDeploymentStatusRequest(
                deployment_id=deployment_id, include_device_details=details
            ),
            metadata=self.metadata,
            timeout=10,
        )
        return response

    async def call(self, method: str, request: object) -> object:
        rpc: Callable[..., Awaitable[object]] = getattr(self.stub, method)
        return await rpc(request, metadata=self.metadata, timeout=30)

    async def refused(self, method: str, request: object) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.call(method, request)
        return err.value

    async def reaches(
        self, deployment_id: str, state: int, *, within: float = 30.0
    ) -> U.GetDeploymentStatusResponse:
        last: list[U.GetDeploymentStatusResponse] = []

        async def check() -> bool:
            last[:] = [await self.status(deployment_id)]
            return last[0].status.state == state

        try:
            await until(check, within=within)
        except AssertionError:
            raise AssertionError(
                f"deployment never reached {DS.State.Name(state)}: {last[0] if last else ''}"
            ) from None
        return last[0]


@pytest.fixture
async def operator(deployment: Deployment) -> AsyncIterator[Operator]:
    op = Operator(deployment)
    yield op
    await op.channel.close(None)


def ids(count: int, prefix: str = "rpi") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


async def test_all_at_once_deployment_completes_and_counters_match_device_rows(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    async with Simulator.running(deployment, pool, ca, ids(8)) as sim:
        created = await operator.deploy(
            update_id,
            device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(strategy=U.ALL_AT_ONCE),
        )
        assert created.target_device_count == 8
        assert created.deployment_id.startswith("dep-")
        done = await operator.reaches(created.deployment_id, DS.COMPLETED)
        assert done.metrics.healthy_count == 8
        assert done.status.progress_percentage == 100.0
        assert len(sim.received("2.0.0")) == 8  # each device got it exactly once
    details = await operator.status(created.deployment_id, details=True)
    assert {d.state for d in details.device_statuses} == {U.DeviceDeploymentStatus.HEALTHY}
    rows = await pool.fetch(
        """SELECT state, count(*) AS n FROM deployment_targets WHERE deployment_id = $1
           GROUP BY state""",
        created.deployment_id,
    )
    counters = await pool.fetch(
        """SELECT state, sum(count) AS n FROM deployment_counters WHERE deployment_id = $1
           GROUP BY state HAVING sum(count) <> 0""",
        created.deployment_id,
    )
    assert {r["state"]: r["n"] for r in rows} == {r["state"]: r["n"] for r in counters}
    audited = await pool.fetch(
        "SELECT outcome FROM audit_log WHERE method = $1 AND target = $2 ORDER BY seq",
        "fleetd.v1.UpdateService/DeployUpdate",
        created.deployment_id,
    )
    assert [r["outcome"] for r in audited] == ["OK"]  # the STARTED entry has no target yet


async def _events(redis: aioredis.Redis, fleet: str, deployment_id: str) -> list[events.Event]:
    """The deployment's events on the fleet's stream, in order."""
    entries = await redis.xrange(redis_keys.events(fleet))
    decoded = [events.decode(fields) for _, fields in entries or () if fields]
    return [e for e in decoded if e.fields.get("deployment_id") == deployment_id]


async def test_rolling_deployment_halts_at_the_failure_threshold(
    deployment: Deployment,
    pool: asyncpg.Pool,
    ca: CertificateAuthority,
    operator: Operator,
    redis: aioredis.Redis,
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    behaviour = Behaviour(failure_rate=0.5, seed=7)
    async with Simulator.running(deployment, pool, ca, ids(30), behaviour=behaviour):
        created = await operator.deploy(
            update_id,
            device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(
                strategy=U.ROLLING, max_parallel=3, max_failure_percentage=10
            ),
        )
        halted = await operator.reaches(created.deployment_id, DS.FAILED)
    metrics = halted.metrics
    finished = metrics.healthy_count + metrics.failed_count + metrics.rolled_back_count
    assert finished >= 10  # the minimum sample
    assert 100 * (metrics.failed_count + metrics.rolled_back_count) / finished > 10
    assert metrics.pending_count > 0  # devices left unassigned: the rollout stopped
    assert "max_failure_percentage" in halted.status.message
    kinds = [e.type for e in await _events(redis, deployment.settings.fleet, created.deployment_id)]
    assert kinds[:2] == ["deployment.started", "deployment.wave_started"]
    assert kinds[-1] == "deployment.failed"


async def test_canary_promotes_after_the_validation_window_when_healthy(
    deployment: Deployment,
    pool: asyncpg.Pool,
    ca: CertificateAuthority,
    operator: Operator,
    redis: aioredis.Redis,
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    async with Simulator.running(deployment, pool, ca, ids(10)) as sim:
        created = await operator.deploy(
            update_id,
            device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(
                strategy=U.CANARY,
                canary_percentage=20,
                auto_promote=True,
                validation_duration={"seconds": 1},
                health_gates=[U.HealthGate(metric="cpu_usage", aggregation="MAX", max_value=50)],
            ),
        )

        async def canary_validating() -> bool:
            row = await pool.fetchrow(
                "SELECT wave_settled_at FROM deployments WHERE deployment_id = $1",
                created.deployment_id,
            )
            return row is not None and row["wave_settled_at"] is not None

        await until(canary_validating)
        assert len(sim.received("2.0.0")) == 2  # only the canary, during validation
        done = await operator.reaches(created.deployment_id, DS.COMPLETED)
        assert done.metrics.healthy_count == 10
        assert len(sim.received("2.0.0")) == 10
    seen = await _events(redis, deployment.settings.fleet, created.deployment_id)
    waves = {int(e.fields["wave"]): e.at for e in seen if e.type == "deployment.wave_started"}
    assert [e.type for e in seen][-1] == "deployment.completed"
    settled = await pool.fetchval(
        "SELECT extract(epoch FROM started_at) FROM deployments WHERE deployment_id = $1",
        created.deployment_id,
    )
    assert waves[1] - waves[0] >= 1.0  # not promoted before the window passed
    assert waves[1] > float(settled)


async def test_canary_stops_when_its_devices_stop_heartbeating(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    behaviour = Behaviour(silent_after_versions=frozenset({"2.0.0"}))
    async with Simulator.running(deployment, pool, ca, ids(10), behaviour=behaviour) as sim:
        created = await operator.deploy(
            update_id,
            device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(
                strategy=U.CANARY,
                canary_percentage=20,
                auto_promote=True,
                validation_duration={"seconds": 1},
            ),
        )
        halted = await operator.reaches(created.deployment_id, DS.FAILED)
        assert "stopped heartbeating" in halted.status.message
        assert halted.status.current_wave == 0
        assert halted.metrics.healthy_count == 2
        assert len(sim.received("2.0.0")) == 2  # the rest never got it


async def test_canary_stops_when_a_health_gate_fails(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    behaviour = Behaviour(cpu_percent=95.0)
    async with Simulator.running(deployment, pool, ca, ids(10), behaviour=behaviour) as sim:
        created = await operator.deploy(
            update_id,
            device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(
                strategy=U.CANARY,
                canary_percentage=20,
                auto_promote=True,
                validation_duration={"seconds": 1},
                health_gates=[U.HealthGate(metric="cpu_usage", max_value=80)],
            ),
        )
        halted = await operator.reaches(created.deployment_id, DS.FAILED)
        assert "health gate AVG(cpu_usage)" in halted.status.message
        assert len(sim.received("2.0.0")) == 2


async def test_manual_approval_waits_for_approve_wave_of_the_next_wave(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    async with Simulator.running(deployment, pool, ca, ids(6)) as sim:
        created = await operator.deploy(
            update_id,
            device_ids=ids(6),
            config=U.DeploymentConfig(
                strategy=U.CANARY, canary_percentage=30, validation_duration={"seconds": 0}
            ),
        )
        waiting = await operator.reaches(created.deployment_id, DS.PAUSED)
        assert waiting.status.awaiting_approval
        assert waiting.status.current_wave == 0 and waiting.status.total_waves == 2
        assert len(sim.received("2.0.0")) == 2
        stale = await operator.refused(
            "ApproveWave", U.ApproveWaveRequest(deployment_id=created.deployment_id, wave=2)
        )
        assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
        resumed = await operator.refused(
            "ResumeDeployment", U.ResumeDeploymentRequest(deployment_id=created.deployment_id)
        )
        assert "ApproveWave" in (resumed.details() or "")
        approved = await operator.call(
            "ApproveWave", U.ApproveWaveRequest(deployment_id=created.deployment_id, wave=1)
        )
        assert isinstance(approved, U.ApproveWaveResponse)
        assert approved.status.state == DS.RUNNING and approved.status.current_wave == 1
        again = await operator.refused(
            "ApproveWave", U.ApproveWaveRequest(deployment_id=created.deployment_id, wave=1)
        )
        assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
        await operator.reaches(created.deployment_id, DS.COMPLETED)
        assert len(sim.received("2.0.0")) == 6


async def test_rollback_gives_devices_their_previous_version_back(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    first = await create_update(pool, version="1.0.0")
    second = await create_update(pool, version="2.0.0")
    async with Simulator.running(deployment, pool, ca, ids(6)) as sim:
        one = await operator.deploy(first, device_filter="type:raspberry-pi")
        await operator.reaches(one.deployment_id, DS.COMPLETED)
        two = await operator.deploy(second, device_filter="type:raspberry-pi")
        await operator.reaches(two.deployment_id, DS.COMPLETED)
        unforced = await operator.refused(
            "RollbackDeployment", U.RollbackDeploymentRequest(deployment_id=two.deployment_id)
        )
        assert unforced.code() == grpc.StatusCode.FAILED_PRECONDITION
        rollback = await operator.call(
            "RollbackDeployment",
            U.RollbackDeploymentRequest(
                deployment_id=two.deployment_id, reason="bad model", force=True
            ),
        )
        assert isinstance(rollback, U.RollbackDeploymentResponse)
        assert rollback.success and rollback.devices_rolled_back == 6
        done = await operator.reaches(two.deployment_id, DS.ROLLED_BACK)
        assert done.metrics.rolled_back_count == 6
        for device in sim.devices:
            assert device.installed["detector-model"] == "1.0.0"
            last = device.received[-1]
            assert (last.version, last.deployment_id) == ("1.0.0", two.deployment_id)
            assert last.previous.version == "2.0.0"
    details = await operator.status(two.deployment_id, details=True)
    assert {d.installed_version for d in details.device_statuses} == {"1.0.0"}
    assert {d.previous_version for d in details.device_statuses} == {"1.0.0"}
    # The first deployment's assignments were replaced since: rolling it back leaves
    # the devices' newer assignments alone.
    rollback_old = await operator.call(
        "RollbackDeployment",
        U.RollbackDeploymentRequest(deployment_id=one.deployment_id, force=True),
    )
    assert isinstance(rollback_old, U.RollbackDeploymentResponse)
    assert rollback_old.devices_rolled_back == 0
    old = await operator.reaches(one.deployment_id, DS.ROLLED_BACK)
    assert "6 device(s) have a newer assignment" in old.status.message


async def test_a_rollback_some_devices_cannot_complete_ends_failed(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    first = await create_update(pool, version="1.0.0")
    second = await create_update(pool, version="2.0.0")
    async with Simulator.running(deployment, pool, ca, ids(4)) as sim:
        one = await operator.deploy(first, device_filter="type:raspberry-pi")
        await operator.reaches(one.deployment_id, DS.COMPLETED)
        two = await operator.deploy(second, device_filter="type:raspberry-pi")
        await operator.reaches(two.deployment_id, DS.COMPLETED)
        # One device cannot go back: its 1.0.0 now fails to apply.
        sim.devices[0].behaviour = Behaviour(failure_rate=1.0, faulty_versions=frozenset({"1.0.0"}))
        await operator.call(
            "RollbackDeployment",
            U.RollbackDeploymentRequest(deployment_id=two.deployment_id, force=True),
        )
        failed = await operator.reaches(two.deployment_id, DS.FAILED)
    assert "rollback failed on 1 device(s)" in failed.status.message
    assert failed.metrics.rolled_back_count == 3 and failed.metrics.failed_count == 1


async def test_rollback_of_a_first_install_keeps_it_and_says_so(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, name="fresh-model", version="1.0.0")
    async with Simulator.running(deployment, pool, ca, ids(4)) as sim:
        created = await operator.deploy(update_id, device_filter="type:raspberry-pi")
        await operator.reaches(created.deployment_id, DS.COMPLETED)
        rollback = await operator.call(
            "RollbackDeployment",
            U.RollbackDeploymentRequest(deployment_id=created.deployment_id, force=True),
        )
        assert isinstance(rollback, U.RollbackDeploymentResponse)
        assert rollback.devices_rolled_back == 0
        kept = await operator.reaches(created.deployment_id, DS.ROLLED_BACK)
        assert "4 device(s) kept the update" in kept.status.message
        assert all(d.installed["fresh-model"] == "1.0.0" for d in sim.devices)
        assert len(sim.received()) == 4  # nothing new was assigned
    details = await operator.status(created.deployment_id, details=True)
    assert {d.reason for d in details.device_statuses} == {"NO_PREVIOUS_VERSION"}


async def test_control_api_restart_mid_rollout_resumes_without_double_assignment(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    behaviour = Behaviour(step_delay=0.15)
    async with Simulator.running(deployment, pool, ca, ids(12), behaviour=behaviour) as sim:
        created = await operator.deploy(
            update_id,
            device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(strategy=U.ROLLING, max_parallel=2),
        )

        async def some_assigned() -> bool:
            return len(sim.received("2.0.0")) >= 3

        await until(some_assigned)
        await restart_api(deployment)
        assert len(sim.received("2.0.0")) < 12  # stopped mid-rollout
        restarted = Operator(deployment)
        try:
            done = await restarted.reaches(created.deployment_id, DS.COMPLETED)
        finally:
            await restarted.channel.close(None)
        assert done.metrics.healthy_count == 12
        received = sim.received("2.0.0")
    assert sorted(d for d, _ in received) == ids(12)  # each device exactly once
    per_device = await pool.fetch(
        """SELECT device_id, count(*) AS n FROM assignments WHERE deployment_id = $1
           GROUP BY device_id""",
        created.deployment_id,
    )
    assert {r["n"] for r in per_device} == {1} and len(per_device) == 12


async def test_pause_resume_and_cancel(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    behaviour = Behaviour(step_delay=0.1)
    async with Simulator.running(deployment, pool, ca, ids(10), behaviour=behaviour) as sim:
        created = await operator.deploy(
            update_id,
            device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(strategy=U.ROLLING, max_parallel=1),
        )
        dep_id = created.deployment_id

        async def one_done() -> bool:
            return (await operator.status(dep_id)).metrics.healthy_count >= 1

        await until(one_done)
        paused = await operator.call(
            "PauseDeployment", U.PauseDeploymentRequest(deployment_id=dep_id, reason="lunch")
        )
        assert isinstance(paused, U.PauseDeploymentResponse)
        assert paused.status.state == DS.PAUSED and "lunch" in paused.status.message
        again = await operator.call(
            "PauseDeployment", U.PauseDeploymentRequest(deployment_id=dep_id)
        )
        assert isinstance(again, U.PauseDeploymentResponse)  # idempotent
        await until(lambda: _nothing_in_flight(pool, dep_id))  # assigned ones finish
        frozen = len(sim.received("2.0.0"))
        await asyncio.sleep(1.0)
        assert len(sim.received("2.0.0")) == frozen  # nothing assigned while paused
        assert (await operator.status(dep_id)).status.state == DS.PAUSED
        resumed = await operator.call(
            "ResumeDeployment", U.ResumeDeploymentRequest(deployment_id=dep_id)
        )
        assert isinstance(resumed, U.ResumeDeploymentResponse)
        assert resumed.status.state == DS.RUNNING
        await until(lambda: _received_more(sim, frozen))
        cancelled = await operator.call(
            "CancelDeployment", U.CancelDeploymentRequest(deployment_id=dep_id, reason="enough")
        )
        assert isinstance(cancelled, U.CancelDeploymentResponse)
        assert cancelled.status.state == DS.CANCELLED
        assert cancelled.devices_cancelled >= 1
        illegal = await operator.refused(
            "ResumeDeployment", U.ResumeDeploymentRequest(deployment_id=dep_id)
        )
        assert illegal.code() == grpc.StatusCode.FAILED_PRECONDITION
        count = len(sim.received("2.0.0"))
        await until(lambda: _nothing_in_flight(pool, dep_id))  # in flight ones finish
        await asyncio.sleep(0.5)
        assert len(sim.received("2.0.0")) == count
    final = await operator.status(dep_id)
    m = final.metrics
    assert m.skipped_count + m.cancelled_count == cancelled.devices_cancelled
    assert m.healthy_count + m.skipped_count + m.cancelled_count == 10
    waiting = await pool.fetchval(
        "SELECT count(*) FROM deployment_targets WHERE deployment_id = $1 AND state = 'waiting'",
        dep_id,
    )
    assert waiting == 0


async def _nothing_in_flight(pool: asyncpg.Pool, deployment_id: str) -> bool:
    busy: int = await pool.fetchval(
        """SELECT count(*) FROM deployment_targets WHERE deployment_id = $1
           AND state IN ('pending', 'downloading', 'verifying', 'applying')""",
        deployment_id,
    )
    return busy == 0


async def _received_more(sim: Simulator, count: int) -> bool:
    return len(sim.received("2.0.0")) > count


async def test_deploy_update_refuses_bad_requests_with_the_seed_codes(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool)
    async with Simulator.running(deployment, pool, ca, ids(2)):
        cases: list[tuple[U.DeployUpdateRequest, grpc.StatusCode, str]] = [
            (
                U.DeployUpdateRequest(update_id="upd-none", device_filter="type:x"),
                grpc.StatusCode.NOT_FOUND,
                "update upd-none",
            ),
            (
                U.DeployUpdateRequest(update_id=update_id),
                grpc.StatusCode.INVALID_ARGUMENT,
                "device_ids, device_filter",
            ),
            (
                U.DeployUpdateRequest(update_id=update_id, device_filter="type:jetson"),
                grpc.StatusCode.FAILED_PRECONDITION,
                "no device matches",
            ),
            (
                U.DeployUpdateRequest(update_id=update_id, device_ids=["rpi-000", "ghost"]),
                grpc.StatusCode.NOT_FOUND,
                "ghost",
            ),
            (
                U.DeployUpdateRequest(update_id=update_id, device_filter="type:"),
                grpc.StatusCode.INVALID_ARGUMENT,
                "device_filter",
            ),
            (
                U.DeployUpdateRequest(
                    update_id=update_id,
                    device_ids=["rpi-000"],
                    config=U.DeploymentConfig(max_failure_percentage=150),
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "config.max_failure_percentage",
            ),
            (
                U.DeployUpdateRequest(
                    update_id=update_id,
                    device_ids=["rpi-000"],
                    config=U.DeploymentConfig(
                        waves=[U.Wave(cumulative_percentage=60), U.Wave(cumulative_percentage=40)]
                    ),
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "config.waves[1]",
            ),
        ]
        for request, code, text in cases:
            error = await operator.refused("DeployUpdate", request)
            assert error.code() == code, (request, error.details())
            assert text in (error.details() or ""), (request, error.details())
        missing = await operator.refused(
            "GetDeploymentStatus", U.GetDeploymentStatusRequest(deployment_id="dep-none")
        )
        assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert await pool.fetchval("SELECT count(*) FROM deployments") == 0


async def test_list_deployments_pages_newest_first_and_filters_by_state(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool)
    async with Simulator.running(deployment, pool, ca, ids(1)):
        made = []
        for _ in range(3):
            created = await operator.deploy(
                update_id,
                device_ids=ids(1),
                config=U.DeploymentConfig(strategy=U.ROLLING),
            )
            await operator.call(
                "CancelDeployment", U.CancelDeploymentRequest(deployment_id=created.deployment_id)
            )
            made.append(created.deployment_id)
    first = await operator.call("ListDeployments", U.ListDeploymentsRequest(page_size=2))
    assert isinstance(first, U.ListDeploymentsResponse)
    assert [d.deployment_id for d in first.deployments] == made[::-1][:2]
    assert first.total_count == 3 and first.next_page_token
    second = await operator.call(
        "ListDeployments", U.ListDeploymentsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert isinstance(second, U.ListDeploymentsResponse)
    assert [d.deployment_id for d in second.deployments] == [made[0]]
    assert not second.next_page_token
    running = await operator.call(
        "ListDeployments", U.ListDeploymentsRequest(filter="state:running")
    )
    assert isinstance(running, U.ListDeploymentsResponse) and running.total_count == 0
    cancelled = await operator.call(
        "ListDeployments",
        U.ListDeploymentsRequest(filter=f"state:cancelled AND update_id:{update_id}"),
    )
    assert isinstance(cancelled, U.ListDeploymentsResponse) and cancelled.total_count == 3
    bad = await operator.refused("ListDeployments", U.ListDeploymentsRequest(filter="foo:bar"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
