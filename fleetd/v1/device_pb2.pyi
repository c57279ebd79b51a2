import datetime

from fleetd.v1 import common_pb2 as _common_pb2
from fleetd.v1 import update_pb2 as _update_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATE_UNSPECIFIED: _ClassVar[DeviceState]
    ONLINE: _ClassVar[DeviceState]
    OFFLINE: _ClassVar[DeviceState]
    MAINTENANCE: _ClassVar[DeviceState]
    UPDATING: _ClassVar[DeviceState]
    ERROR: _ClassVar[DeviceState]
    OFFBOARDED: _ClassVar[DeviceState]

class HealthStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATUS_UNSPECIFIED: _ClassVar[HealthStatus]
    HEALTHY: _ClassVar[HealthStatus]
    DEGRADED: _ClassVar[HealthStatus]
    UNHEALTHY: _ClassVar[HealthStatus]
    UNREACHABLE: _ClassVar[HealthStatus]

class HealthCheckType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_CHECK_TYPE_UNSPECIFIED: _ClassVar[HealthCheckType]
    BASIC: _ClassVar[HealthCheckType]
    RESOURCES: _ClassVar[HealthCheckType]
    COMPREHENSIVE: _ClassVar[HealthCheckType]
DEVICE_STATE_UNSPECIFIED: DeviceState
ONLINE: DeviceState
OFFLINE: DeviceState
MAINTENANCE: DeviceState
UPDATING: DeviceState
ERROR: DeviceState
OFFBOARDED: DeviceState
HEALTH_STATUS_UNSPECIFIED: HealthStatus
HEALTHY: HealthStatus
DEGRADED: HealthStatus
UNHEALTHY: HealthStatus
UNREACHABLE: HealthStatus
HEALTH_CHECK_TYPE_UNSPECIFIED: HealthCheckType
BASIC: HealthCheckType
RESOURCES: HealthCheckType
COMPREHENSIVE: HealthCheckType

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("device_id", "device_name", "device_type", "version", "system_info", "metadata", "csr", "enrollment_token")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_INFO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    device_name: str
    device_type: str
    version: str
    system_info: SystemInfo
    metadata: _containers.ScalarMap[str, str]
    csr: str
    enrollment_token: str
    def __init__(self, device_id: _Optional[str] = ..., device_name: _Optional[str] = ..., device_type: _Optional[str] = ..., version: _Optional[str] = ..., system_info: _Optional[_Union[SystemInfo, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., csr: _Optional[str] = ..., enrollment_token: _Optional[str] = ...) -> None: ...

class RegisterDeviceResponse(_message.Message):
    __slots__ = ("device_id", "api_key", "certificate", "registered_at", "ca_certificate", "tuf_root", "gateway_endpoint", "fleet")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    TUF_ROOT_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    api_key: str
    certificate: str
    registered_at: _timestamp_pb2.Timestamp
    ca_certificate: str
    tuf_root: bytes
    gateway_endpoint: str
    fleet: str
    def __init__(self, device_id: _Optional[str] = ..., api_key: _Optional[str] = ..., certificate: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ca_certificate: _Optional[str] = ..., tuf_root: _Optional[bytes] = ..., gateway_endpoint: _Optional[str] = ..., fleet: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices", "next_page_token", "total_count", "total_count_estimated")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    next_page_token: str
    total_count: int
    total_count_estimated: bool
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ..., total_count_estimated: _Optional[bool] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("device_id", "include_metrics", "include_health")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_METRICS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_HEALTH_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    include_metrics: bool
    include_health: bool
    def __init__(self, device_id: _Optional[str] = ..., include_metrics: _Optional[bool] = ..., include_health: _Optional[bool] = ...) -> None: ...

class GetDeviceResponse(_message.Message):
    __slots__ = ("device", "metrics", "health")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    device: Device
    metrics: DeviceMetrics
    health: DeviceHealth
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., metrics: _Optional[_Union[DeviceMetrics, _Mapping]] = ..., health: _Optional[_Union[DeviceHealth, _Mapping]] = ...) -> None: ...

class UpdateDeviceRequest(_message.Message):
    __slots__ = ("device_id", "update_mask", "device")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    update_mask: _field_mask_pb2.FieldMask
    device: Device
    def __init__(self, device_id: _Optional[str] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class UpdateDeviceResponse(_message.Message):
    __slots__ = ("device", "updated_at")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    device: Device
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeleteDeviceRequest(_message.Message):
    __slots__ = ("device_id", "force")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    force: bool
    def __init__(self, device_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteDeviceResponse(_message.Message):
    __slots__ = ("success", "deleted_at")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    success: bool
    deleted_at: _timestamp_pb2.Timestamp
    def __init__(self, success: _Optional[bool] = ..., deleted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("device_id", "status", "stats", "processes")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    status: DeviceStatus
    stats: SystemStats
    processes: _containers.RepeatedCompositeFieldContainer[ProcessInfo]
    def __init__(self, device_id: _Optional[str] = ..., status: _Optional[_Union[DeviceStatus, _Mapping]] = ..., stats: _Optional[_Union[SystemStats, _Mapping]] = ..., processes: _Optional[_Iterable[_Union[ProcessInfo, _Mapping]]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("acknowledged", "commands", "pending_update")
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    PENDING_UPDATE_FIELD_NUMBER: _ClassVar[int]
    acknowledged: bool
    commands: _containers.RepeatedCompositeFieldContainer[Command]
    pending_update: UpdateInfo
    def __init__(self, acknowledged: _Optional[bool] = ..., commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ..., pending_update: _Optional[_Union[UpdateInfo, _Mapping]] = ...) -> None: ...

class CreateEnrollmentTokenRequest(_message.Message):
    __slots__ = ("ttl", "max_uses", "description", "device_type", "tags", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TTL_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ttl: _duration_pb2.Duration
    max_uses: int
    description: str
    device_type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_uses: _Optional[int] = ..., description: _Optional[str] = ..., device_type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateEnrollmentTokenResponse(_message.Message):
    __slots__ = ("token", "secret")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    token: EnrollmentToken
    secret: str
    def __init__(self, token: _Optional[_Union[EnrollmentToken, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListEnrollmentTokensRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "include_inactive")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    include_inactive: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_inactive: _Optional[bool] = ...) -> None: ...

class ListEnrollmentTokensResponse(_message.Message):
    __slots__ = ("tokens", "next_page_token", "total_count")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[EnrollmentToken]
    next_page_token: str
    total_count: int
    def __init__(self, tokens: _Optional[_Iterable[_Union[EnrollmentToken, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class RevokeEnrollmentTokenRequest(_message.Message):
    __slots__ = ("token_id",)
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    def __init__(self, token_id: _Optional[str] = ...) -> None: ...

class RevokeEnrollmentTokenResponse(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: EnrollmentToken
    def __init__(self, token: _Optional[_Union[EnrollmentToken, _Mapping]] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("device_filter", "events", "resume_after")
    DEVICE_FILTER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_AFTER_FIELD_NUMBER: _ClassVar[int]
    device_filter: str
    events: _containers.RepeatedScalarFieldContainer[str]
    resume_after: str
    def __init__(self, device_filter: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., resume_after: _Optional[str] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("event_id", "type", "device_id", "timestamp", "status_change", "heartbeat", "deployment", "device")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    device_id: str
    timestamp: _timestamp_pb2.Timestamp
    status_change: StatusChangeEvent
    heartbeat: SystemStats
    deployment: DeploymentEvent
    device: Device
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., device_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_change: _Optional[_Union[StatusChangeEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[SystemStats, _Mapping]] = ..., deployment: _Optional[_Union[DeploymentEvent, _Mapping]] = ..., device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class StatusChangeEvent(_message.Message):
    __slots__ = ("previous_state", "state", "last_seen")
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    previous_state: DeviceState
    state: DeviceState
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, previous_state: _Optional[_Union[DeviceState, str]] = ..., state: _Optional[_Union[DeviceState, str]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeploymentEvent(_message.Message):
    __slots__ = ("deployment_id", "update_id", "status")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    update_id: str
    status: _update_pb2.DeviceDeploymentStatus
    def __init__(self, deployment_id: _Optional[str] = ..., update_id: _Optional[str] = ..., status: _Optional[_Union[_update_pb2.DeviceDeploymentStatus, _Mapping]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("id", "name", "type", "version", "status", "metadata", "tags", "system_info", "last_seen", "registered_at", "updated_at", "stats", "fleet", "agent_version", "certificate_serial", "certificate_expires_at", "ip_address", "last_boot", "desired_state_revision", "reported_state_revision", "installed_artifacts", "health")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_INFO_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LAST_BOOT_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_REVISION_FIELD_NUMBER: _ClassVar[int]
    REPORTED_STATE_REVISION_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    type: str
    version: str
    status: DeviceState
    metadata: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    system_info: SystemInfo
    last_seen: _timestamp_pb2.Timestamp
    registered_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    stats: SystemStats
    fleet: str
    agent_version: str
    certificate_serial: str
    certificate_expires_at: _timestamp_pb2.Timestamp
    ip_address: str
    last_boot: _timestamp_pb2.Timestamp
    desired_state_revision: int
    reported_state_revision: int
    installed_artifacts: _containers.RepeatedCompositeFieldContainer[InstalledArtifact]
    health: HealthStatus
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., version: _Optional[str] = ..., status: _Optional[_Union[DeviceState, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ..., system_info: _Optional[_Union[SystemInfo, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stats: _Optional[_Union[SystemStats, _Mapping]] = ..., fleet: _Optional[str] = ..., agent_version: _Optional[str] = ..., certificate_serial: _Optional[str] = ..., certificate_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ip_address: _Optional[str] = ..., last_boot: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., desired_state_revision: _Optional[int] = ..., reported_state_revision: _Optional[int] = ..., installed_artifacts: _Optional[_Iterable[_Union[InstalledArtifact, _Mapping]]] = ..., health: _Optional[_Union[HealthStatus, str]] = ...) -> None: ...

class InstalledArtifact(_message.Message):
    __slots__ = ("name", "version", "kind", "checksum", "assignment_id", "installed_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    kind: _update_pb2.Artifact.Kind
    checksum: str
    assignment_id: str
    installed_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., kind: _Optional[_Union[_update_pb2.Artifact.Kind, str]] = ..., checksum: _Optional[str] = ..., assignment_id: _Optional[str] = ..., installed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SystemInfo(_message.Message):
    __slots__ = ("os", "arch", "cpu_cores", "memory_mb", "hostname", "os_version", "kernel", "model", "serial", "disk_gb", "cpu_model")
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    os: str
    arch: str
    cpu_cores: int
    memory_mb: int
    hostname: str
    os_version: str
    kernel: str
    model: str
    serial: str
    disk_gb: float
    cpu_model: str
    def __init__(self, os: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., memory_mb: _Optional[int] = ..., hostname: _Optional[str] = ..., os_version: _Optional[str] = ..., kernel: _Optional[str] = ..., model: _Optional[str] = ..., serial: _Optional[str] = ..., disk_gb: _Optional[float] = ..., cpu_model: _Optional[str] = ...) -> None: ...

class DeviceStatus(_message.Message):
    __slots__ = ("state", "uptime_seconds", "last_boot", "message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_BOOT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: DeviceState
    uptime_seconds: int
    last_boot: _timestamp_pb2.Timestamp
    message: str
    def __init__(self, state: _Optional[_Union[DeviceState, str]] = ..., uptime_seconds: _Optional[int] = ..., last_boot: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class SystemStats(_message.Message):
    __slots__ = ("cpu_percent", "memory_used_mb", "disk_used_gb", "memory_total_mb", "memory_percent", "disk_total_gb", "disk_percent", "load_avg_1m", "load_avg_5m", "load_avg_15m", "temperature_celsius", "network_rx_bytes", "network_tx_bytes", "process_count", "collected_at")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_USED_GB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_GB_FIELD_NUMBER: _ClassVar[int]
    DISK_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_1M_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_5M_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_15M_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_used_mb: int
    disk_used_gb: float
    memory_total_mb: int
    memory_percent: float
    disk_total_gb: float
    disk_percent: float
    load_avg_1m: float
    load_avg_5m: float
    load_avg_15m: float
    temperature_celsius: float
    network_rx_bytes: int
    network_tx_bytes: int
    process_count: int
    collected_at: _timestamp_pb2.Timestamp
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_used_mb: _Optional[int] = ..., disk_used_gb: _Optional[float] = ..., memory_total_mb: _Optional[int] = ..., memory_percent: _Optional[float] = ..., disk_total_gb: _Optional[float] = ..., disk_percent: _Optional[float] = ..., load_avg_1m: _Optional[float] = ..., load_avg_5m: _Optional[float] = ..., load_avg_15m: _Optional[float] = ..., temperature_celsius: _Optional[float] = ..., network_rx_bytes: _Optional[int] = ..., network_tx_bytes: _Optional[int] = ..., process_count: _Optional[int] = ..., collected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProcessInfo(_message.Message):
    __slots__ = ("pid", "name", "cpu_percent", "memory_mb", "state", "user", "started_at")
    PID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    pid: int
    name: str
    cpu_percent: float
    memory_mb: float
    state: str
    user: str
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, pid: _Optional[int] = ..., name: _Optional[str] = ..., cpu_percent: _Optional[float] = ..., memory_mb: _Optional[float] = ..., state: _Optional[str] = ..., user: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("id", "type", "parameters", "issued_at", "expires_at")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Command.Type]
        SYNC: _ClassVar[Command.Type]
        COLLECT_LOGS: _ClassVar[Command.Type]
        RESTART_AGENT: _ClassVar[Command.Type]
        REBOOT: _ClassVar[Command.Type]
    TYPE_UNSPECIFIED: Command.Type
    SYNC: Command.Type
    COLLECT_LOGS: Command.Type
    RESTART_AGENT: Command.Type
    REBOOT: Command.Type
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: Command.Type
    parameters: _containers.ScalarMap[str, str]
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[Command.Type, str]] = ..., parameters: _Optional[_Mapping[str, str]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateInfo(_message.Message):
    __slots__ = ("update_id", "deployment_id", "name", "version", "description", "artifacts", "assigned_at")
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    update_id: str
    deployment_id: str
    name: str
    version: str
    description: str
    artifacts: _containers.RepeatedCompositeFieldContainer[_update_pb2.Artifact]
    assigned_at: _timestamp_pb2.Timestamp
    def __init__(self, update_id: _Optional[str] = ..., deployment_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[_update_pb2.Artifact, _Mapping]]] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeviceMetrics(_message.Message):
    __slots__ = ("device_id", "latest", "window_start", "window_end", "series")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    latest: SystemStats
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    series: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetricSeries]
    def __init__(self, device_id: _Optional[str] = ..., latest: _Optional[_Union[SystemStats, _Mapping]] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., series: _Optional[_Iterable[_Union[_common_pb2.MetricSeries, _Mapping]]] = ...) -> None: ...

class DeviceHealth(_message.Message):
    __slots__ = ("device_id", "status", "checks", "checked_at", "last_seen", "check_type")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    status: HealthStatus
    checks: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    checked_at: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    check_type: HealthCheckType
    def __init__(self, device_id: _Optional[str] = ..., status: _Optional[_Union[HealthStatus, str]] = ..., checks: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., check_type: _Optional[_Union[HealthCheckType, str]] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("name", "status", "message", "value", "threshold")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: HealthStatus
    message: str
    value: float
    threshold: float
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[HealthStatus, str]] = ..., message: _Optional[str] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class EnrollmentToken(_message.Message):
    __slots__ = ("id", "description", "fleet", "device_type", "tags", "metadata", "max_uses", "use_count", "created_at", "expires_at", "revoked_at", "created_by")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    USE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    fleet: str
    device_type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    max_uses: int
    use_count: int
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    created_by: str
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., fleet: _Optional[str] = ..., device_type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., max_uses: _Optional[int] = ..., use_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...
