"""The reasons a deployment target carries (``deployment_targets.reason``), and what they
tell an operator.

A target is SKIPPED with a reason when it gets nothing to do (at creation or when its wave
is assigned); a rollback notes why a device was left alone or could not return; a timeout
fails a device. Operators see the reason in ``DeviceDeploymentStatus.reason``.
"""

from __future__ import annotations

NO_ARTIFACT_FOR_TYPE = "NO_ARTIFACT_FOR_TYPE"
"""Skipped: the update has no artifact that fits the device's type."""
ALREADY_RUNNING = "ALREADY_RUNNING"
"""Skipped: the device already runs every artifact at the update's version."""
DEVICE_OFFBOARDED = "DEVICE_OFFBOARDED"
"""Skipped: the device was offboarded before its wave was assigned."""
TIMEOUT = "TIMEOUT"
"""Failed: no terminal state within ``device_timeout`` of the assignment."""
NO_PREVIOUS_VERSION = "NO_PREVIOUS_VERSION"
"""Rollback: a first install has nothing to return to; the device keeps the update."""
SUPERSEDED = "SUPERSEDED"
"""Rollback: a newer assignment replaced this one; it is left alone."""
CANCELLED = "CANCELLED"
"""Cancelled: CancelDeployment skipped the waiting device or withdrew its assignment."""
ROLLED_BACK = "ROLLED_BACK"
"""Rollback: the device's work for the deployment was withdrawn or undone."""
ROLLBACK_FAILED = "ROLLBACK_FAILED"
"""Rollback: the device could not return to its previous version."""

SKIP_MESSAGES = {
    NO_ARTIFACT_FOR_TYPE: "the update has no artifact for this device's type",
    ALREADY_RUNNING: "the device already runs this version of every artifact",
}
"""A skipped device's status message, when it has none of its own."""
SKIP_SUMMARY = {
    NO_ARTIFACT_FOR_TYPE: "have no artifact for their type",
    ALREADY_RUNNING: "already run this version",
}
"""How DeployUpdate's refusal counts the matching devices it would skip."""
