"""What the gateway answers a heartbeat whose revision is stale: read in one snapshot.

Separate from ``fleetd.storage.desired`` (which ``log_requests`` and ``assignments`` import
to bump revisions) so that it can use ``log_requests``' own query and conversion.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetd.device.v1 import agent_pb2
from fleetd.storage.log_requests import pending_log_requests_of
from fleetd.storage.types import Pool


async def load_heartbeat_answers(
    pool: Pool, device_ids: Sequence[str]
) -> dict[str, tuple[int, bytes]]:
    """Per device: its revision and the heartbeat answer's body, read in one snapshot
    (a read-only repeatable-read transaction, so revision, assignments and log requests
    agree).

    The body is a serialized ``HeartbeatResponse`` with only ``desired_state`` (active
    assignments by name) and ``log_requests`` (pending, oldest first) set. Unknown devices
    are absent.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(
            """SELECT d.device_id, d.desired_revision,
                      ARRAY(SELECT a.spec FROM assignments a
                            WHERE a.device_id = d.device_id AND a.active
                            ORDER BY a.name) AS specs
               FROM devices d WHERE d.device_id = ANY($1::text[])""",
            list(device_ids),
        )
        log_requests = await pending_log_requests_of(conn, [r["device_id"] for r in rows])
    answers: dict[str, tuple[int, bytes]] = {}
    for row in rows:
        response = agent_pb2.HeartbeatResponse()
        response.desired_state.revision = row["desired_revision"]
        for spec in row["specs"]:
            response.desired_state.assignments.add().MergeFromString(spec)
        response.log_requests.extend(log_requests.get(row["device_id"], []))
        answers[row["device_id"]] = (row["desired_revision"], response.SerializeToString())
    return answers
