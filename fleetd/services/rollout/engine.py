"""The rollout engine's adapter: reads deployments, asks ``fleetd.domain.rollout.decide``, and
carries the decisions out in PostgreSQL (and Redis: desired-state changes, events).

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

import asyncpg
import redis.asyncio as aioredis

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
from fleetd.services.rollout import operations
from fleetd.services.rollout.rollback_targets import RollbackTargets, Signer
from fleetd.storage import deployment_batches, deployments
from fleetd.storage.deployments import Artifact
from fleetd.storage.desired import mark_changed
from fleetd.storage.types import Connection
from fleetd.v1 import update_pb2

log = logging.getLogger(__name__)

LOCK_KEY = 0x666C656574640003  # "fleetd" + 3: the rollout engine's advisory lock
BATCH = 1000
"""Devices per assignment / timeout / rollback transaction."""
BATCHES_PER_STEP = 20
"""At most this many batches per deployment per round, so one large deployment cannot
starve the others (the next round continues)."""
DECISIONS_PER_STEP = 8

_AGGREGATE = {
    "AVG": "avg({c})",
    "MIN": "min({c})",
    "MAX": "max({c})",
    "P50": "percentile_cont(0.5) WITHIN GROUP (ORDER BY {c})",
    "P90": "percentile_cont(0.9) WITHIN GROUP (ORDER BY {c})",
    "P95": "percentile_cont(0.95) WITHIN GROUP (ORDER BY {c})",
    "P99": "percentile_cont(0.99) WITHIN GROUP (ORDER BY {c})",
}
_STAT_COLUMNS = {
    "cpu_usage": "d.cpu_usage",
    "memory_usage": "d.memory_usage",
    "disk_usage": "d.disk_usage",
}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Engine:
    """One round of the rollout engine over every active deployment."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
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
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning(
                    "rollout of %s: round failed, retried next round: %s", deployment_id, exc
                )

    async def step(self, deployment_id: str) -> None:
        row = await deployments.get_deployment(self._pool, deployment_id)
        if row is None:
            return
        config = update_pb2.DeploymentConfig.FromString(row["config"])
        policy = Policy.of(config)
        if row["state"] in ("running", "paused"):
            await self._expire_timeouts(deployment_id, policy)
        if row["state"] == "rolling_back" and not await self._roll_back(deployment_id):
            return  # rollback assignments not all written yet: continue next round
        for _ in range(DECISIONS_PER_STEP):
            row = await deployments.get_deployment(self._pool, deployment_id)
            if row is None:
                return
            snapshot = Snapshot(
                state=row["state"],
                current_wave=row["current_wave"],
                total_waves=len(row["wave_ends"]),
                wave_settled_at=row["wave_settled_at"],
                now=await self._pool.fetchval("SELECT now()"),
                counts=await deployments.counts(self._pool, deployment_id),
                acknowledged_failures=row["acknowledged_failures"],
                acknowledged_rolled_back=row["acknowledged_rolled_back"],
            )
            decision: Decision = decide(snapshot, policy)
            if isinstance(decision, CheckGates):
                gates = await self._gates(deployment_id, decision.wave, row, policy, snapshot)
                decision = decide(snapshot, policy, gates)
            if isinstance(decision, Wait):
                return
            if not await self._carry_out(row, decision):
                return

    async def _carry_out(self, row: asyncpg.Record, decision: Decision) -> bool:
        """Apply one decision; False to stop stepping this deployment this round."""
        deployment_id, update_id = row["deployment_id"], row["update_id"]
        wave = row["current_wave"]

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
                if await deployments.transition(conn, deployment_id, ["pending"], "running"):
                    await tell(operations.STARTED, "running")
                    await tell(operations.WAVE_STARTED, "running", at=0)
                return True
            if isinstance(decision, Assign):
                return await self._assign(conn, deployment_id, decision, update_id)
            if isinstance(decision, Settle):
                await conn.execute(
                    """UPDATE deployments SET wave_settled_at = now(), updated_at = now()
                       WHERE deployment_id = $1 AND state = 'running' AND current_wave = $2
                         AND wave_settled_at IS NULL""",
                    deployment_id,
                    decision.wave,
                )
                return True
            if isinstance(decision, Promote):
                done = await conn.fetchval(
                    """UPDATE deployments SET current_wave = $2, wave_settled_at = NULL,
                              updated_at = now(), message = ''
                       WHERE deployment_id = $1 AND state = 'running' AND current_wave = $3
                       RETURNING 1""",
                    deployment_id,
                    decision.wave,
                    decision.wave - 1,
                )
                if done:
                    await tell(operations.WAVE_STARTED, "running", at=decision.wave)
                return True
            if isinstance(decision, AwaitApproval):
                message = f"wave {decision.wave} awaits approval (ApproveWave)"
                if await deployments.transition(
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
                if await deployments.transition(
                    conn, deployment_id, ["running"], "completed", message=""
                ):
                    await tell(operations.COMPLETED, "completed")
                return False
            if isinstance(decision, FinishRollback):
                rows = await conn.fetch(
                    """SELECT reason, count(*) AS n FROM deployment_targets
                       WHERE deployment_id = $1
                         AND reason IN ('NO_PREVIOUS_VERSION', 'SUPERSEDED',
                                        'ROLLBACK_FAILED')
                       GROUP BY reason""",
                    deployment_id,
                )
                notes = {r["reason"]: r["n"] for r in rows}
                message = "rolled back"
                if notes.get("NO_PREVIOUS_VERSION"):
                    message += (
                        f"; {notes['NO_PREVIOUS_VERSION']} device(s) kept the update "
                        "(first install, no previous version)"
                    )
                if notes.get("SUPERSEDED"):
                    message += (
                        f"; {notes['SUPERSEDED']} device(s) have a newer assignment "
                        "and were left alone"
                    )
                failed = notes.get("ROLLBACK_FAILED", 0)
                if failed:
                    # ROLLED_BACK promises every touched device is back on its previous
                    # version; when some could not be, the rollback failed.
                    message = (
                        f"rollback failed on {failed} device(s) (see their statuses); {message}"
                    )
                    if await deployments.transition(
                        conn, deployment_id, ["rolling_back"], "failed", message=message
                    ):
                        await tell(operations.FAILED, "failed", message)
                elif await deployments.transition(
                    conn, deployment_id, ["rolling_back"], "rolled_back", message=message
                ):
                    await tell(operations.ROLLED_BACK, "rolled_back", message)
                self._rollback_cursor.pop(deployment_id, None)
                return False
        if isinstance(decision, Halt):
            if decision.rollback:
                async with self._pool.acquire() as conn:
                    await deployments.transition(
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
                if await deployments.transition(
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
                batch = await deployment_batches.rollback_batch(
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
        deployment_id: str,
        wave: int,
        row: asyncpg.Record,
        policy: Policy,
        snapshot: Snapshot,
    ) -> GateResult:
        """The IO-bound gates of a validated wave: its updated devices still heartbeat,
        and every HealthGate holds."""
        settled: dt.datetime = row["wave_settled_at"]
        if policy.validation_seconds >= self._heartbeat_interval:
            since = settled  # every updated device heartbeated during the window
        else:
            since = snapshot.now - dt.timedelta(seconds=self._offline_after)
        heard = await self._pool.fetchrow(
            """SELECT count(*) AS n,
                      count(*) FILTER (WHERE d.last_seen IS NULL OR d.last_seen < $3
                                          OR d.status = 'offline') AS silent
               FROM deployment_targets t JOIN devices d USING (device_id)
               WHERE t.deployment_id = $1 AND t.wave = $2 AND t.state = 'healthy'""",
            deployment_id,
            wave,
            since,
        )
        assert heard is not None  # an aggregate always returns a row
        n, silent = heard["n"], heard["silent"]
        offline_pct = 100.0 * silent / n if n else 0.0
        if silent and offline_pct > policy.max_failure_percentage:
            return GateResult(False, f"{silent} of {n} updated devices stopped heartbeating")
        counts = snapshot.counts
        finished = sum(counts.get(s, wave) for s in ("healthy", "failed", "rolled_back"))
        failures = counts.get("failed", wave) + counts.get("rolled_back", wave)
        for gate in policy.health_gates:
            if gate.metric == "offline_percentage":
                value: float | None = offline_pct
            elif gate.metric == "failure_percentage":
                value = 100.0 * failures / finished if finished else 0.0
            else:
                expression = _AGGREGATE[gate.aggregation].format(c=_STAT_COLUMNS[gate.metric])
                value = await self._pool.fetchval(
                    f"""SELECT {expression}::float8
                        FROM deployment_targets t JOIN devices d USING (device_id)
                        WHERE t.deployment_id = $1 AND t.wave = $2 AND t.state = 'healthy'""",
                    deployment_id,
                    wave,
                )
            if value is None:
                return GateResult(
                    False,
                    f"health gate {gate.aggregation}({gate.metric}): "
                    "no data from the wave's devices",
                )
            if (gate.HasField("min_value") and value < gate.min_value) or (
                gate.HasField("max_value") and value > gate.max_value
            ):
                low = gate.min_value if gate.HasField("min_value") else "-inf"
                high = gate.max_value if gate.HasField("max_value") else "inf"
                return GateResult(
                    False,
                    f"health gate {gate.aggregation}({gate.metric}) = {value:.2f} "
                    f"outside [{low}, {high}]",
                )
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
        lock = await asyncpg.connect(self._database_url)
        try:
            # Polling PostgreSQL: there is nothing local to wait on.
            while not await lock.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):  # noqa: ASYNC110
                await asyncio.sleep(self._lock_retry)
            self.active = True
            log.info("rollout engine active in this process")
            while True:
                await self._engine.tick()
                # The lock lives as long as its connection: a dead one means another
                # replica may hold it now, so stop (the query raises).
                await lock.fetchval("SELECT 1")
                await asyncio.sleep(self._tick)
        finally:
            self.active = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lock.close(), 5.0)


_runners: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def start(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
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
    task = _runners.pop(asyncio.get_running_loop(), None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
