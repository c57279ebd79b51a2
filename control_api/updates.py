"""UpdateService: the update catalogue (control_api/update_catalog.py: CreateUpdate,
GetUpdate, ListUpdates) and deployments (control_api/deployments.py: DeployUpdate,
GetDeploymentStatus, RollbackDeployment, ListDeployments, Pause/Resume/ApproveWave/Cancel),
joined into the one service the seed defines."""

from __future__ import annotations

from control_api.deployments import DeploymentMethods
from control_api.update_catalog import CatalogMethods
from fleetd.v1.update_connect import UpdateService


class UpdateServiceImpl(CatalogMethods, DeploymentMethods, UpdateService):
    """The catalogue's and the deployments' methods; anything neither defines answers
    UNIMPLEMENTED (UpdateService's default)."""
