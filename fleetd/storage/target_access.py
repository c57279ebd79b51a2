"""Which TUF targets a device may download: those its own assignments name.

The control API serves a target file to a device (``control_api/tuf_files.py``) only when
one of the device's *active* assignments (its current desired state, which includes the
assignments RollbackDeployment gave it, pointing at the re-signed previous content) names
the target's path, either as what to install (``target_path``) or as the version it
replaces (``previous.target_path``: the rollback source, which the agent may re-fetch if
its local copy is gone). An assignment that was superseded or cancelled no longer grants
anything: the agent stops fetching it as soon as it leaves the desired state.

One indexed read (``assignments_active_name_idx`` covers ``device_id ... WHERE active``);
a device holds one active assignment per artifact name, so a handful of rows.
"""

from __future__ import annotations

from fleetd.device.v1 import agent_pb2
from fleetd.storage.types import Queryable


def names_target(spec: agent_pb2.ArtifactAssignment, target_path: str) -> bool:
    """Whether ``spec`` names ``target_path`` (as its target or as its previous one)."""
    if spec.target_path == target_path:
        return True
    return spec.HasField("previous") and spec.previous.target_path == target_path


async def device_may_fetch(conn: Queryable, device_id: str, target_path: str) -> bool:
    """Whether an active assignment of ``device_id`` names ``target_path``."""
    rows = await conn.fetch(
        "SELECT spec FROM assignments WHERE device_id = $1 AND active",
        device_id,
    )
    return any(
        names_target(agent_pb2.ArtifactAssignment.FromString(row["spec"]), target_path)
        for row in rows
    )
