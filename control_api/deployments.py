"""Deployments: DeployUpdate, GetDeploymentStatus, RollbackDeployment and the rest."""

from __future__ import annotations


class DeploymentMethods:
    """UpdateService methods about deployments (mixed into UpdateServiceImpl)."""
