"""A running deployment (gateway only) and its CA, for tests of the device API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleetd.services.pki import CertificateAuthority
from tests.support.deployment import Deployment, running_deployment


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, with_api=False) as dep:
        yield dep


@pytest.fixture
def ca(deployment: Deployment) -> CertificateAuthority:
    return CertificateAuthority.load(deployment.settings.paths, deployment.settings.fleet)
