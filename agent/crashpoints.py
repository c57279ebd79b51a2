"""Crash points for the crash-safety tests: ``FLEETD_AGENT_CRASH_AT=<name>`` makes the
agent die (``os._exit``, like kill -9: no cleanup, no flush) when it reaches ``<name>``.

Every step of apply and rollback calls :func:`crash_point` with a name listed in
:data:`POINTS`; tests/agent/test_crash_safety.py kills the agent at each one, restarts
it and checks the device is on exactly the old or the new version with no leftovers.
Unset (always, in production) it is one dictionary lookup.
"""

from __future__ import annotations

import os

ENV = "FLEETD_AGENT_CRASH_AT"
EXIT_CODE = 137  # what a shell reports for kill -9

FILE_POINTS = (
    "stage:opened",
    "stage:written",
    "stage:recorded",
    "swap:previous-linked",
    "swap:previous-kept",
    "swap:renamed",
    "swap:recorded",
    "probe:started",
    "rollback:recorded",
    "rollback:restored",
    "rollback:reloaded",
    "healthy:reported",
)
CONTAINER_POINTS = (
    "container:pulled",
    "container:previous-stopped",
    "container:previous-renamed",
    "container:started",
    "container:new-removed",
    "container:previous-restored",
)
POINTS = FILE_POINTS + CONTAINER_POINTS


def crash_point(name: str) -> None:
    """Exit at once, without cleanup, if the environment names this point."""
    if os.environ.get(ENV) == name:
        os._exit(EXIT_CODE)
