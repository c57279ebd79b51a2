"""Deployments end to end: the control API (pyvoy, its rollout engine inside) over real
gRPC, the gateway over mTLS, simulated devices (tests/support/simulator.py) reporting
lifecycle statuses, real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from fleetd.pki import CertificateAuthority
from fleetd.v1 import update_pb2, update_pb2_grpc
from tests.support.deployment import Deployment, running_deployment
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
    await op.channel.close()


def ids(count: int, prefix: str = "rpi") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


async def test_all_at_once_deployment_completes_and_counters_match_device_rows(
    deployment: Deployment, pool: asyncpg.Pool, ca: CertificateAuthority, operator: Operator
) -> None:
    update_id = await create_update(pool, version="2.0.0")
    async with Simulator.running(deployment, pool, ca, ids(8)) as sim:
        created = await operator.deploy(
            update_id, device_filter="type:raspberry-pi",
            config=U.DeploymentConfig(strategy=U.ALL_AT_ONCE),
        )  # fmt: skip
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
