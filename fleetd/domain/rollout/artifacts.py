"""An update's artifacts as targeting sees them, and which of them fit a device type.

Per artifact name a device receives the artifact built for its type, else the one for
every type (platform ``''``); a type with neither gets nothing of that name. DeployUpdate
applies the same rule in SQL when it classifies targets
(``fleetd.storage.deployments.create_deployment``); the engine applies it per device when
it assigns (:func:`fleetd.domain.rollout.assign.plan_assignments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Artifact:
    """What targeting and assignment need of one artifact of the update."""

    artifact_id: str
    name: str
    platform: str
    """The device type it is built for; ``''`` for every type."""
    version: str
    assignment_template: bytes
    """A serialized ``fleetd.device.v1.ArtifactAssignment`` without assignment_id,
    deployment_id and previous (the engine fills those in)."""


def applicable(artifacts: Sequence[Artifact], device_type: str) -> list[Artifact]:
    """The artifacts a device of ``device_type`` receives: per name, the one for its
    type, else the one for every type (platform '')."""
    exact = {a.name for a in artifacts if a.platform == device_type}
    return [
        a
        for a in artifacts
        if a.platform == device_type or (a.platform == "" and a.name not in exact)
    ]
