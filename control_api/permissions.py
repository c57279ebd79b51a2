"""RBAC: which permission each method needs, and which roles hold which permissions.

The permission names are the seed's (``device:list``...), plus ``device:enroll`` for
managing enrolment tokens. Every method of every served service appears in
``METHOD_PERMISSIONS`` exactly once; tests check that table against the protos.
"""

from __future__ import annotations

from typing import Final

ALL_PERMISSIONS: Final = frozenset(
    {
        "device:register",
        "device:list",
        "device:view",
        "device:update",
        "device:delete",
        "device:heartbeat",
        "device:enroll",
        "update:create",
        "update:deploy",
        "update:view",
        "update:rollback",
        "analytics:view",
        "analytics:export",
    }
)

ROLE_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "admin": ALL_PERMISSIONS,
    "operator": ALL_PERMISSIONS,
    "service": frozenset(
        {
            "device:register",
            "device:list",
            "device:view",
            "device:update",
            "device:heartbeat",
            "update:create",
            "update:deploy",
            "update:view",
            "analytics:view",
            "analytics:export",
        }
    ),
    "viewer": frozenset({"device:list", "device:view", "update:view", "analytics:view"}),
    # Not update:view: that would let a device read every update and DownloadBinary every
    # artifact's content. A device gets its own artifacts from /tuf/targets/, which checks
    # its assignments (control_api/tuf_files.py).
    "device": frozenset({"device:heartbeat", "device:view"}),
}

METHOD_PERMISSIONS: Final[dict[str, str]] = {
    "fleetd.v1.DeviceService/RegisterDevice": "device:register",
    "fleetd.v1.DeviceService/ListDevices": "device:list",
    "fleetd.v1.DeviceService/GetDevice": "device:view",
    "fleetd.v1.DeviceService/UpdateDevice": "device:update",
    "fleetd.v1.DeviceService/DeleteDevice": "device:delete",
    "fleetd.v1.DeviceService/Heartbeat": "device:heartbeat",
    "fleetd.v1.DeviceService/CreateEnrollmentToken": "device:enroll",
    "fleetd.v1.DeviceService/ListEnrollmentTokens": "device:enroll",
    "fleetd.v1.DeviceService/RevokeEnrollmentToken": "device:enroll",
    "fleetd.v1.DeviceService/StreamEvents": "device:list",
    "fleetd.v1.UpdateService/CreateUpdate": "update:create",
    "fleetd.v1.UpdateService/GetUpdate": "update:view",
    "fleetd.v1.UpdateService/ListUpdates": "update:view",
    "fleetd.v1.UpdateService/DeployUpdate": "update:deploy",
    "fleetd.v1.UpdateService/GetDeploymentStatus": "update:view",
    "fleetd.v1.UpdateService/ListDeployments": "update:view",
    "fleetd.v1.UpdateService/RollbackDeployment": "update:rollback",
    "fleetd.v1.UpdateService/PauseDeployment": "update:deploy",
    "fleetd.v1.UpdateService/ResumeDeployment": "update:deploy",
    "fleetd.v1.UpdateService/ApproveWave": "update:deploy",
    "fleetd.v1.UpdateService/CancelDeployment": "update:deploy",
    "fleetd.v1.AnalyticsService/GetMetrics": "analytics:view",
    "fleetd.v1.AnalyticsService/GetDeviceHealth": "analytics:view",
    "fleetd.v1.AnalyticsService/ExportData": "analytics:export",
    "fleetd.v1.BinaryService/UploadBinary": "update:create",
    "fleetd.v1.BinaryService/DownloadBinary": "update:view",
}

# Methods that change nothing; every other method is audited (fleetd.storage.audit).
READ_ONLY_METHODS: Final = frozenset(
    {
        "fleetd.v1.DeviceService/ListDevices",
        "fleetd.v1.DeviceService/GetDevice",
        "fleetd.v1.DeviceService/ListEnrollmentTokens",
        "fleetd.v1.DeviceService/StreamEvents",
        "fleetd.v1.UpdateService/GetUpdate",
        "fleetd.v1.UpdateService/ListUpdates",
        "fleetd.v1.UpdateService/GetDeploymentStatus",
        "fleetd.v1.UpdateService/ListDeployments",
        "fleetd.v1.AnalyticsService/GetMetrics",
        "fleetd.v1.AnalyticsService/GetDeviceHealth",
        "fleetd.v1.BinaryService/DownloadBinary",
    }
)

# Methods an unauthenticated caller may reach: the handler itself checks the credential
# in the body (an enrolment token) and otherwise requires the permission above.
TOKEN_AUTHENTICATED_METHODS: Final = frozenset({"fleetd.v1.DeviceService/RegisterDevice"})


def allows(role: str, permission: str) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
