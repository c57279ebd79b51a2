"""Every core_ext test runs against both the compiled and the reference implementation."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


@pytest.fixture(params=["compiled", "reference"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test, as a module exposing the seam's names.

    The compiled one must be built: a missing build fails the test instead of skipping it.
    """
    return importlib.import_module(f"core_ext.{request.param}")
