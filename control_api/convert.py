"""PostgreSQL rows to fleetd.v1 messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from fleetd.storage.bearer_tokens import EnrollmentToken
from fleetd.v1 import device_pb2

STATUS_TO_STATE: dict[str, device_pb2.DeviceState] = {
    "unknown": device_pb2.DEVICE_STATE_UNSPECIFIED,
    "online": device_pb2.ONLINE,
    "offline": device_pb2.OFFLINE,
    "maintenance": device_pb2.MAINTENANCE,
    "updating": device_pb2.UPDATING,
    "error": device_pb2.ERROR,
    "offboarded": device_pb2.OFFBOARDED,
}


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def device(row: Any) -> device_pb2.Device:
    """A ``devices`` row (see fleetd.storage.devices.DEVICE_COLUMNS) as a Device."""
    msg = device_pb2.Device(
        id=row["device_id"],
        name=row["name"],
        type=row["device_type"],
        version=row["version"],
        status=STATUS_TO_STATE.get(row["status"], device_pb2.DEVICE_STATE_UNSPECIFIED),
        metadata=row["metadata"],
        tags=row["tags"],
        fleet=row["fleet"],
        agent_version=row["agent_version"],
        registered_at=timestamp(row["registered_at"]),
        updated_at=timestamp(row["updated_at"]),
    )
    if row["system_info"]:
        json_format.ParseDict(row["system_info"], msg.system_info, ignore_unknown_fields=True)
    if row["last_seen"] is not None:
        msg.last_seen.CopyFrom(timestamp(row["last_seen"]))
    if row["cpu_usage"] is not None:
        msg.stats.cpu_percent = row["cpu_usage"]
        msg.stats.memory_percent = row["memory_usage"] or 0.0
        msg.stats.disk_percent = row["disk_usage"] or 0.0
    if row["ip_address"] is not None:
        msg.ip_address = str(row["ip_address"])
    return msg


def enrollment_token(token: EnrollmentToken) -> device_pb2.EnrollmentToken:
    msg = device_pb2.EnrollmentToken(
        id=token.token_id,
        description=token.description,
        fleet=token.fleet,
        max_uses=token.max_uses,
        use_count=token.uses,
        created_at=timestamp(token.created_at),
        expires_at=timestamp(token.expires_at),
        created_by=token.created_by,
    )
    if token.revoked_at is not None:
        msg.revoked_at.CopyFrom(timestamp(token.revoked_at))
    return msg
