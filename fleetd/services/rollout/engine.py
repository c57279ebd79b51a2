"""The rollout engine's adapter: reads deployments, asks ``fleetd.domain.rollout.decide``, and
carries each decision out through storage (PostgreSQL: ``fleetd.storage.deployment_*``;
Redis: desired-state changes, events). Each kind of decision maps to one named storage
call in :meth:`Engine._carry_out`; the rules (gates, rollback plans) are the domain's.

:class:`Engine` does one round (:meth:`Engine.tick`) over the active deployments.
:class:`EngineRunner` runs rounds every ``rollout_tick`` seconds inside a control API
process, only while it holds the PostgreSQL advisory lock :data:`LOCK_KEY` on a
dedicated connection: exactly one engine is active across replicas, and when its process
or connection dies the lock is released and another replica takes over. Nothing is held
in memory between rounds that PostgreSQL does not also hold, so a new holder resumes
where the last one stopped; every write is guarded by the state it expects (waiting ->
pending under ``FOR UPDATE SKIP LOCKED``, state transitions from named states), so even
two engines running at once for a moment (a lock lost mid-round) could not assign a
device twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from fleetd.domain.rollout import gates
from fleetd.domain.rollout.artifacts import Artifact
from fleetd.domain.rollout.decide import (
    Assign,
    AwaitApproval,
    CheckGates,
    Complete,
    Decision,
    FinishRollback,
    GateResult,
    Halt,
    Promote,
    Settle,
    Snapshot,
    Start,
    Wait,
    decide,
)
from fleetd.domain.rollout.policy import Policy
from fleetd.domain.rollout.rollback import OUTCOME_REASONS, rollback_outcome
from fleetd.services.periodic import stop_task
from fleetd.services.rollout import operations
from fleetd.services.rollout.rollback import rollback_batch
from fleetd.services.rollout.rollback_targets import RollbackTargets, Signer
from fleetd.storage import deployment_batches, deployment_gates, deployment_rollbacks, deployments
from fleetd.storage.deployment_states import promote_wave, settle_wave, transition
from fleetd.storage.deployments import DeploymentRecord
from fleetd.storage.desired import mark_changed
from fleetd.storage.errors import POSTGRES_ERRORS
from fleetd.storage.rollout_lock import AdvisoryLock
from fleetd.storage.types import Connection, Pool, Redis

log = logging.getLogger(__name__)

LOCK_KEY = 0x666C656574640003  # "fleetd" + 3: the rollout engine's advisory lock
BATCH = 1000
"""Devices per assignment / timeout / rollback transaction."""
BATCHES_PER_STEP = 20
"""At most this many batches per deployment per round, so one large deployment cannot
starve the others (the next round continues)."""
DECISIONS_PER_STEP = 8


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Engine:
    """One round of the rollout engine over every active deployment."""

    def __init__(
        self,
        pool: Pool,
        redis: Redis,
        fleet: str,
        *,
        heartbeat_interval: float,
        offline_after: float,
        clock: Callable[[], dt.datetime] = _utcnow,
        rollback_targets: RollbackTargets | None = None,
    ) -> None:
        self._rollback_targets = rollback_targets
        self._pool = pool
        self._redis = redis
        self._fleet = fleet
        self._heartbeat_interval = heartbeat_interval
        self._offline_after = offline_after
        self._clock = clock
        self._artifacts: dict[str, list[Artifact]] = {}
        self._rollback_cursor: dict[str, str] = {}
        # Where each wave's walk over its waiting devices is (memory only: a restart
        # walks again from the start, which finds the devices still waiting).
        self._assign_cursor: dict[tuple[str, int], str] = {}

    async def tick(self) -> None:
        """One round: each active deployment steps as far as it can right now."""
        for deployment_id in await deployments.active_deployment_ids(self._pool):
            try:
                await self.step(deployment_id)
            except POSTGRES_ERRORS as exc:
                log.warning(
                    "rollout of %s: round failed, retried next round: %s", deployment_id, exc
                )

    async def step(self, deployment_id: str) -> None:
        deployment = await deployments.get_deployment(self._pool, deployment_id)
        if deployment is None:
            return
        policy = Policy.of(deployment.config)
        if deployment.state in ("running", "paused"):
            await self._expire_timeouts(deployment_id, policy)
        if deployment.state == "rolling_back" and not await self._roll_back(deployment_id):
            return  # rollback assignments not all written yet: continue next round
        for _ in range(DECISIONS_PER_STEP):
            deployment = await deployments.get_deployment(self._pool, deployment_id)
            if deployment is None:
                return
            snapshot = Snapshot(
                state=deployment.state,
                current_wave=deployment.current_wave,
                total_waves=deployment.total_waves,
                wave_settled_at=deployment.wave_settled_at,
                now=await deployments.database_now(self._pool),
                counts=await deployments.counts(self._pool, deployment_id),
                acknowledged_failures=deployment.acknowledged_failures,
                acknowledged_rolled_back=deployment.acknowledged_rolled_back,
            )
            decision: Decision = decide(snapshot, policy)
            if isinstance(decision, CheckGates):
                result = await self._gates(deployment, decision.wave, policy, snapshot)
                decision = decide(snapshot, policy, result)
            if isinstance(decision, Wait):
                return
            if not await self._carry_out(deployment, decision):
                return

    async def _carry_out(self, deployment: DeploymentRecord, decision: Decision) -> bool:
        """Apply one decision; False to stop stepping this deployment this round."""
        deployment_id, update_id = deployment.deployment_id, deployment.update_id
        wave = deployment.current_wave

        async def tell(kind: str, state: str, message: str = "", at: int = wave) -> None:
            await operations.announce(
                self._redis,
                self._fleet,
                kind,
                deployment_id,
                update_id=update_id,
                state=state,
                wave=at,
                message=message,
            )

        async with self._pool.acquire() as conn:
            if isinstance(decision, Start):
                if await transition(conn, deployment_id, ["pending"], "running"):
                    await tell(operations.STARTED, "running")
                    await tell(operations.WAVE_STARTED, "running", at=0)
                return True
            if isinstance(decision, Assign):
                return await self._assign(conn, deployment_id, decision, update_id)
            if isinstance(decision, Settle):
                await settle_wave(conn, deployment_id, decision.wave)
                return True
            if isinstance(decision, Promote):
                if await promote_wave(conn, deployment_id, decision.wave):
                    await tell(operations.WAVE_STARTED, "running", at=decision.wave)
                return True
            if isinstance(decision, AwaitApproval):
                message = f"wave {decision.wave} awaits approval (ApproveWave)"
                if await transition(
                    conn,
                    deployment_id,
                    ["running"],
                    "paused",
                    awaiting_approval=True,
                    message=message,
                ):
                    await tell(operations.AWAITING_APPROVAL, "paused", message)
                return False
            if isinstance(decision, Complete):
                if await transition(conn, deployment_id, ["running"], "completed", message=""):
                    await tell(operations.COMPLETED, "completed")
                return False
            if isinstance(decision, FinishRollback):
                outcome = rollback_outcome(
                    await deployment_rollbacks.reason_counts(conn, deployment_id, OUTCOME_REASONS)
                )
                if await transition(
                    conn, deployment_id, ["rolling_back"], outcome.state, message=outcome.message
                ):
                    event = (
                        operations.FAILED if outcome.state == "failed" else operations.ROLLED_BACK
                    )
                    await tell(event, outcome.state, outcome.message)
                self._rollback_cursor.pop(deployment_id, None)
                return False
        if isinstance(decision, Halt):
            if decision.rollback:
                async with self._pool.acquire() as conn:
                    await transition(
                        conn, deployment_id, ["running"], "failed", message=decision.reason
                    )
                await tell(operations.FAILED, "failed", decision.reason)
                with contextlib.suppress(operations.IllegalState):
                    await operations.start_rollback(
                        self._pool,
                        self._redis,
                        self._fleet,
                        deployment_id,
                        f"auto_rollback after: {decision.reason}",
                        force=False,
                    )
                return True
            async with self._pool.acquire() as conn:
                if await transition(
                    conn, deployment_id, ["running"], "failed", message=decision.reason
                ):
                    await tell(operations.FAILED, "failed", decision.reason)
            return False
        raise AssertionError(f"unhandled decision {decision!r}")

    async def _assign(
        self, conn: Connection, deployment_id: str, decision: Assign, update_id: str
    ) -> bool:
        artifacts = self._artifacts.get(update_id)
        if artifacts is None:
            artifacts = await deployments.update_artifacts(conn, update_id) or []
            self._artifacts[update_id] = artifacts
        remaining = decision.count
        key = (deployment_id, decision.wave)
        for _ in range(BATCHES_PER_STEP):
            if remaining <= 0:
                return True
            after = self._assign_cursor.get(key, "")
            batch = await deployment_batches.assign_batch(
                conn,
                deployment_id,
                decision.wave,
                min(BATCH, remaining),
                artifacts,
                after_device_id=after,
            )
            await mark_changed(self._redis, batch.revisions)
            if batch.processed == 0:
                # Past the last waiting device: start over (devices locked by another
                # writer were skipped); nothing left at all ends this step.
                self._assign_cursor.pop(key, None)
                return bool(after)
            self._assign_cursor[key] = batch.last_device_id
            remaining -= batch.processed
        return False

    async def _expire_timeouts(self, deployment_id: str, policy: Policy) -> None:
        async with self._pool.acquire() as conn:
            for _ in range(BATCHES_PER_STEP):
                batch = await deployment_batches.expire_timeouts(
                    conn, deployment_id, policy.device_timeout_seconds, BATCH
                )
                await mark_changed(self._redis, batch.revisions)
                if batch.processed < BATCH:
                    return

    async def _roll_back(self, deployment_id: str) -> bool:
        """Write rollback assignments in batches; True once every device was handled."""
        async with self._pool.acquire() as conn:
            for _ in range(BATCHES_PER_STEP):
                after = self._rollback_cursor.get(deployment_id, "")
                batch = await rollback_batch(
                    conn, deployment_id, after, BATCH, self._rollback_targets
                )
                await mark_changed(self._redis, batch.revisions)
                if batch.processed == 0:
                    if after:  # one more pass from the start catches devices skipped
                        self._rollback_cursor[deployment_id] = ""  # while locked elsewhere
                        continue
                    return True
                self._rollback_cursor[deployment_id] = batch.last_device_id
        return False

    async def _gates(
        self,
        deployment: DeploymentRecord,
        wave: int,
        policy: Policy,
        snapshot: Snapshot,
    ) -> GateResult:
        """The IO-bound gates of a validated wave, judged by ``fleetd.domain.rollout.gates``:
        its updated devices still heartbeat, and every HealthGate holds (in order; a
        device metric is fetched only when its gate is reached)."""
        settled = deployment.wave_settled_at
        assert settled is not None  # CheckGates comes only after the wave settled
        since = gates.heartbeat_since(
            policy,
            settled,
            snapshot.now,
            heartbeat_interval=self._heartbeat_interval,
            offline_after=self._offline_after,
        )
        deployment_id = deployment.deployment_id
        heard = await deployment_gates.wave_heartbeats(self._pool, deployment_id, wave, since)
        reason = gates.heartbeat_failure(heard, policy)
        if reason is not None:
            return GateResult(False, reason)
        for gate in policy.health_gates:
            if gate.metric == "offline_percentage":
                value: float | None = heard.offline_percentage
            elif gate.metric == "failure_percentage":
                value = gates.failure_percentage(snapshot.counts, wave)
            else:
                value = await deployment_gates.wave_stat(
                    self._pool, deployment_id, wave, gate.metric, gate.aggregation
                )
            reason = gates.gate_failure(gate, value)
            if reason is not None:
                return GateResult(False, reason)
        return GateResult(True)


class EngineRunner:
    """Runs :class:`Engine` rounds while holding the engine's advisory lock."""

    def __init__(
        self, engine: Engine, database_url: str, *, tick: float, lock_retry: float = 1.0
    ) -> None:
        self._engine = engine
        self._database_url = database_url
        self._tick = tick
        self._lock_retry = lock_retry
        self.active = False
        """Whether this runner holds the lock (for tests and logs)."""

    async def run(self) -> None:
        """Until cancelled: take the lock when free, then run rounds while it is held."""
        while True:
            try:
                await self._hold_and_run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken connection, PostgreSQL restarting: try again
                log.exception("rollout engine stopped; retrying")
            self.active = False
            await asyncio.sleep(self._lock_retry)

    async def _hold_and_run(self) -> None:
        lock = await AdvisoryLock.connect(self._database_url, LOCK_KEY)
        try:
            # Polling PostgreSQL: there is nothing local to wait on.
            while not await lock.try_acquire():  # noqa: ASYNC110
                await asyncio.sleep(self._lock_retry)
            self.active = True
            log.info("rollout engine active in this process")
            while True:
                await self._engine.tick()
                # The lock lives as long as its connection: a dead one means another
                # replica may hold it now, so stop (the check raises).
                await lock.check()
                await asyncio.sleep(self._tick)
        finally:
            self.active = False
            await lock.close()


_runners: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def start(
    pool: Pool,
    redis: Redis,
    *,
    database_url: str,
    fleet: str,
    tick: float,
    heartbeat_interval: float,
    offline_after: float,
    tuf: Signer | None = None,
) -> None:
    """Start this event loop's engine runner (a control API start-up hook). ``tuf``
    re-signs previous versions for rollbacks (fleetd/services/rollout/rollback_targets.py)."""
    loop = asyncio.get_running_loop()
    if loop in _runners:
        return
    engine = Engine(
        pool,
        redis,
        fleet,
        heartbeat_interval=heartbeat_interval,
        offline_after=offline_after,
        rollback_targets=RollbackTargets(tuf),
    )
    runner = EngineRunner(engine, database_url, tick=tick)
    _runners[loop] = loop.create_task(runner.run())


async def stop() -> None:
    """Stop this event loop's runner (releases the lock with its connection)."""
    await stop_task(_runners.pop(asyncio.get_running_loop(), None))
