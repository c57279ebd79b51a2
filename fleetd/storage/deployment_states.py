"""A deployment's guarded state changes.

Every write here names the state it expects and changes nothing otherwise (an
``UPDATE ... WHERE state = ...``), so two writers (an operator and the engine, or two
engines for a moment) can never both win; each returns whether it did. Callers map a
refusal to FAILED_PRECONDITION or simply move on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetd.storage.types import Connection

ENDED_STATES = ("completed", "failed", "cancelled", "rolled_back")
"""States a deployment ends in: entering one sets ``completed_at``."""


async def transition(
    conn: Connection,
    deployment_id: str,
    from_states: Sequence[str],
    to_state: str,
    **changes: Any,
) -> bool:
    """Move the deployment to ``to_state`` only if it is in one of ``from_states``; set
    the named columns too (``completed_at`` is set on entering an ended state). False when
    it was not in one of those states (or does not exist)."""
    sets = ["state = $3", "updated_at = now()"]
    params: list[Any] = [deployment_id, list(from_states), to_state]
    for column, value in changes.items():
        params.append(value)
        sets.append(f"{column} = ${len(params)}")
    if to_state in ENDED_STATES and "completed_at" not in changes:
        sets.append("completed_at = now()")
    # Column names come from the callers' keywords (code, never input); values are bound.
    row = await conn.fetchrow(
        f"""UPDATE deployments SET {", ".join(sets)}
            WHERE deployment_id = $1 AND state = ANY($2::text[])
            RETURNING deployment_id, state""",  # noqa: S608
        *params,
    )
    return row is not None


async def settle_wave(conn: Connection, deployment_id: str, wave: int) -> None:
    """Start the validation window of ``wave`` (every device of it ended), once: only
    while the deployment is running that wave and it was not settled yet."""
    await conn.execute(
        """UPDATE deployments SET wave_settled_at = now(), updated_at = now()
           WHERE deployment_id = $1 AND state = 'running' AND current_wave = $2
             AND wave_settled_at IS NULL""",
        deployment_id,
        wave,
    )


async def promote_wave(conn: Connection, deployment_id: str, wave: int) -> bool:
    """Start ``wave`` if the deployment is running the one before it."""
    done = await conn.fetchval(
        """UPDATE deployments SET current_wave = $2, wave_settled_at = NULL,
                  updated_at = now(), message = ''
           WHERE deployment_id = $1 AND state = 'running' AND current_wave = $3
           RETURNING 1""",
        deployment_id,
        wave,
        wave - 1,
    )
    return bool(done)


async def state_for_share(conn: Connection, deployment_id: str) -> str | None:
    """The deployment's state, its row share-locked until the transaction ends (no state
    change meanwhile); None when there is no such deployment."""
    state: str | None = await conn.fetchval(
        "SELECT state FROM deployments WHERE deployment_id = $1 FOR SHARE", deployment_id
    )
    return state
