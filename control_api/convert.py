"""Storage records to fleetd.v1 messages."""

from __future__ import annotations

import datetime as dt

from google.protobuf import json_format, timestamp_pb2

from fleetd.storage.bearer_tokens import EnrollmentToken
from fleetd.storage.devices import DeviceRecord
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


def device(record: DeviceRecord) -> device_pb2.Device:
    """A stored device as a Device (stats only once it has heartbeated)."""
    msg = device_pb2.Device(
        id=record.device_id,
        name=record.name,
        type=record.device_type,
        version=record.version,
        status=STATUS_TO_STATE.get(record.status, device_pb2.DEVICE_STATE_UNSPECIFIED),
        metadata=record.metadata,
        tags=record.tags,
        fleet=record.fleet,
        agent_version=record.agent_version,
        registered_at=timestamp(record.registered_at),
        updated_at=timestamp(record.updated_at),
    )
    if record.system_info:
        json_format.ParseDict(record.system_info, msg.system_info, ignore_unknown_fields=True)
    if record.last_seen is not None:
        msg.last_seen.CopyFrom(timestamp(record.last_seen))
    if record.cpu_usage is not None:
        msg.stats.cpu_percent = record.cpu_usage
        msg.stats.memory_percent = record.memory_usage or 0.0
        msg.stats.disk_percent = record.disk_usage or 0.0
    if record.ip_address is not None:
        msg.ip_address = str(record.ip_address)
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
