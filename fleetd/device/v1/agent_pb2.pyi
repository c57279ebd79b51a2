import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArtifactKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_KIND_UNSPECIFIED: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_FILE: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_MODEL: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_CONFIG: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_CONTAINER: _ClassVar[ArtifactKind]

class ReloadAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELOAD_ACTION_UNSPECIFIED: _ClassVar[ReloadAction]
    RELOAD_ACTION_NONE: _ClassVar[ReloadAction]
    RELOAD_ACTION_SYSTEMD_RESTART: _ClassVar[ReloadAction]
    RELOAD_ACTION_COMMAND: _ClassVar[ReloadAction]

class ArtifactState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_STATE_UNSPECIFIED: _ClassVar[ArtifactState]
    ARTIFACT_STATE_DOWNLOADING: _ClassVar[ArtifactState]
    ARTIFACT_STATE_VERIFYING: _ClassVar[ArtifactState]
    ARTIFACT_STATE_APPLYING: _ClassVar[ArtifactState]
    ARTIFACT_STATE_HEALTHY: _ClassVar[ArtifactState]
    ARTIFACT_STATE_ROLLED_BACK: _ClassVar[ArtifactState]
    ARTIFACT_STATE_FAILED: _ClassVar[ArtifactState]

class LogSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_SOURCE_UNSPECIFIED: _ClassVar[LogSource]
    LOG_SOURCE_AGENT_JOURNAL: _ClassVar[LogSource]
    LOG_SOURCE_AGENT_LOG_FILE: _ClassVar[LogSource]
ARTIFACT_KIND_UNSPECIFIED: ArtifactKind
ARTIFACT_KIND_FILE: ArtifactKind
ARTIFACT_KIND_MODEL: ArtifactKind
ARTIFACT_KIND_CONFIG: ArtifactKind
ARTIFACT_KIND_CONTAINER: ArtifactKind
RELOAD_ACTION_UNSPECIFIED: ReloadAction
RELOAD_ACTION_NONE: ReloadAction
RELOAD_ACTION_SYSTEMD_RESTART: ReloadAction
RELOAD_ACTION_COMMAND: ReloadAction
ARTIFACT_STATE_UNSPECIFIED: ArtifactState
ARTIFACT_STATE_DOWNLOADING: ArtifactState
ARTIFACT_STATE_VERIFYING: ArtifactState
ARTIFACT_STATE_APPLYING: ArtifactState
ARTIFACT_STATE_HEALTHY: ArtifactState
ARTIFACT_STATE_ROLLED_BACK: ArtifactState
ARTIFACT_STATE_FAILED: ArtifactState
LOG_SOURCE_UNSPECIFIED: LogSource
LOG_SOURCE_AGENT_JOURNAL: LogSource
LOG_SOURCE_AGENT_LOG_FILE: LogSource

class RegisterRequest(_message.Message):
    __slots__ = ("hardware", "device_type", "agent_version", "tags", "metadata", "installed_artifacts")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    hardware: HardwareProfile
    device_type: str
    agent_version: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    installed_artifacts: _containers.RepeatedCompositeFieldContainer[InstalledArtifact]
    def __init__(self, hardware: _Optional[_Union[HardwareProfile, _Mapping]] = ..., device_type: _Optional[str] = ..., agent_version: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., installed_artifacts: _Optional[_Iterable[_Union[InstalledArtifact, _Mapping]]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("device_id", "fleet", "registered_at", "heartbeat_interval")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    fleet: str
    registered_at: _timestamp_pb2.Timestamp
    heartbeat_interval: _duration_pb2.Duration
    def __init__(self, device_id: _Optional[str] = ..., fleet: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HardwareProfile(_message.Message):
    __slots__ = ("model", "arch", "cpu_cores", "memory_mb", "disk_gb", "os", "os_version", "kernel", "hostname", "serial")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    model: str
    arch: str
    cpu_cores: int
    memory_mb: int
    disk_gb: float
    os: str
    os_version: str
    kernel: str
    hostname: str
    serial: str
    def __init__(self, model: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., memory_mb: _Optional[int] = ..., disk_gb: _Optional[float] = ..., os: _Optional[str] = ..., os_version: _Optional[str] = ..., kernel: _Optional[str] = ..., hostname: _Optional[str] = ..., serial: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("desired_state_revision", "stats", "installed_artifacts", "agent_version", "boot_id")
    DESIRED_STATE_REVISION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    desired_state_revision: int
    stats: DeviceStats
    installed_artifacts: _containers.RepeatedCompositeFieldContainer[InstalledArtifact]
    agent_version: str
    boot_id: str
    def __init__(self, desired_state_revision: _Optional[int] = ..., stats: _Optional[_Union[DeviceStats, _Mapping]] = ..., installed_artifacts: _Optional[_Iterable[_Union[InstalledArtifact, _Mapping]]] = ..., agent_version: _Optional[str] = ..., boot_id: _Optional[str] = ...) -> None: ...

class HeartbeatStreamRequest(_message.Message):
    __slots__ = ("heartbeat",)
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    heartbeat: HeartbeatRequest
    def __init__(self, heartbeat: _Optional[_Union[HeartbeatRequest, _Mapping]] = ...) -> None: ...

class HeartbeatStreamResponse(_message.Message):
    __slots__ = ("heartbeat", "pushed")
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    PUSHED_FIELD_NUMBER: _ClassVar[int]
    heartbeat: HeartbeatResponse
    pushed: bool
    def __init__(self, heartbeat: _Optional[_Union[HeartbeatResponse, _Mapping]] = ..., pushed: _Optional[bool] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("unchanged", "desired_state", "log_requests", "next_heartbeat_interval", "offboarded", "server_time")
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    LOG_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    OFFBOARDED_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    unchanged: bool
    desired_state: DesiredState
    log_requests: _containers.RepeatedCompositeFieldContainer[LogRequest]
    next_heartbeat_interval: _duration_pb2.Duration
    offboarded: bool
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, unchanged: _Optional[bool] = ..., desired_state: _Optional[_Union[DesiredState, _Mapping]] = ..., log_requests: _Optional[_Iterable[_Union[LogRequest, _Mapping]]] = ..., next_heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., offboarded: _Optional[bool] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeviceStats(_message.Message):
    __slots__ = ("cpu_percent", "memory_percent", "memory_used_mb", "memory_total_mb", "disk_percent", "disk_used_gb", "disk_total_gb", "uptime_seconds", "load_avg_1m", "load_avg_5m", "load_avg_15m", "temperature_celsius", "network_rx_bytes", "network_tx_bytes")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_MB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISK_USED_GB_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_GB_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_1M_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_5M_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVG_15M_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_CELSIUS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_percent: float
    memory_used_mb: int
    memory_total_mb: int
    disk_percent: float
    disk_used_gb: float
    disk_total_gb: float
    uptime_seconds: int
    load_avg_1m: float
    load_avg_5m: float
    load_avg_15m: float
    temperature_celsius: float
    network_rx_bytes: int
    network_tx_bytes: int
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_percent: _Optional[float] = ..., memory_used_mb: _Optional[int] = ..., memory_total_mb: _Optional[int] = ..., disk_percent: _Optional[float] = ..., disk_used_gb: _Optional[float] = ..., disk_total_gb: _Optional[float] = ..., uptime_seconds: _Optional[int] = ..., load_avg_1m: _Optional[float] = ..., load_avg_5m: _Optional[float] = ..., load_avg_15m: _Optional[float] = ..., temperature_celsius: _Optional[float] = ..., network_rx_bytes: _Optional[int] = ..., network_tx_bytes: _Optional[int] = ...) -> None: ...

class InstalledArtifact(_message.Message):
    __slots__ = ("name", "version", "kind", "sha256", "assignment_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    kind: ArtifactKind
    sha256: str
    assignment_id: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., sha256: _Optional[str] = ..., assignment_id: _Optional[str] = ...) -> None: ...

class DesiredState(_message.Message):
    __slots__ = ("revision", "assignments")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    assignments: _containers.RepeatedCompositeFieldContainer[ArtifactAssignment]
    def __init__(self, revision: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[ArtifactAssignment, _Mapping]]] = ...) -> None: ...

class ArtifactAssignment(_message.Message):
    __slots__ = ("assignment_id", "deployment_id", "name", "version", "kind", "target_path", "sha256", "length", "config", "container", "health_probe", "previous")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    HEALTH_PROBE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    deployment_id: str
    name: str
    version: str
    kind: ArtifactKind
    target_path: str
    sha256: str
    length: int
    config: ConfigSpec
    container: ContainerSpec
    health_probe: HealthProbe
    previous: PreviousVersion
    def __init__(self, assignment_id: _Optional[str] = ..., deployment_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., target_path: _Optional[str] = ..., sha256: _Optional[str] = ..., length: _Optional[int] = ..., config: _Optional[_Union[ConfigSpec, _Mapping]] = ..., container: _Optional[_Union[ContainerSpec, _Mapping]] = ..., health_probe: _Optional[_Union[HealthProbe, _Mapping]] = ..., previous: _Optional[_Union[PreviousVersion, _Mapping]] = ...) -> None: ...

class PreviousVersion(_message.Message):
    __slots__ = ("version", "sha256", "target_path")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    version: str
    sha256: str
    target_path: str
    def __init__(self, version: _Optional[str] = ..., sha256: _Optional[str] = ..., target_path: _Optional[str] = ...) -> None: ...

class ConfigSpec(_message.Message):
    __slots__ = ("destination_path", "file_mode", "reload_action", "systemd_unit", "reload_command")
    DESTINATION_PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    RELOAD_ACTION_FIELD_NUMBER: _ClassVar[int]
    SYSTEMD_UNIT_FIELD_NUMBER: _ClassVar[int]
    RELOAD_COMMAND_FIELD_NUMBER: _ClassVar[int]
    destination_path: str
    file_mode: int
    reload_action: ReloadAction
    systemd_unit: str
    reload_command: ExecAction
    def __init__(self, destination_path: _Optional[str] = ..., file_mode: _Optional[int] = ..., reload_action: _Optional[_Union[ReloadAction, str]] = ..., systemd_unit: _Optional[str] = ..., reload_command: _Optional[_Union[ExecAction, _Mapping]] = ...) -> None: ...

class ContainerSpec(_message.Message):
    __slots__ = ("image", "digest", "container_name")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_NAME_FIELD_NUMBER: _ClassVar[int]
    image: str
    digest: str
    container_name: str
    def __init__(self, image: _Optional[str] = ..., digest: _Optional[str] = ..., container_name: _Optional[str] = ...) -> None: ...

class ExecAction(_message.Message):
    __slots__ = ("path", "args")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    path: str
    args: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, path: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ...) -> None: ...

class HealthProbe(_message.Message):
    __slots__ = ("exec", "http", "file", "timeout", "attempts", "initial_delay", "interval")
    class Http(_message.Message):
        __slots__ = ("url",)
        URL_FIELD_NUMBER: _ClassVar[int]
        url: str
        def __init__(self, url: _Optional[str] = ...) -> None: ...
    class File(_message.Message):
        __slots__ = ("path",)
        PATH_FIELD_NUMBER: _ClassVar[int]
        path: str
        def __init__(self, path: _Optional[str] = ...) -> None: ...
    EXEC_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_DELAY_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    exec: ExecAction
    http: HealthProbe.Http
    file: HealthProbe.File
    timeout: _duration_pb2.Duration
    attempts: int
    initial_delay: _duration_pb2.Duration
    interval: _duration_pb2.Duration
    def __init__(self, exec: _Optional[_Union[ExecAction, _Mapping]] = ..., http: _Optional[_Union[HealthProbe.Http, _Mapping]] = ..., file: _Optional[_Union[HealthProbe.File, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., attempts: _Optional[int] = ..., initial_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReportArtifactStatusRequest(_message.Message):
    __slots__ = ("assignment_id", "state", "sequence", "reason", "message", "observed_at", "installed_version")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_VERSION_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    state: ArtifactState
    sequence: int
    reason: str
    message: str
    observed_at: _timestamp_pb2.Timestamp
    installed_version: str
    def __init__(self, assignment_id: _Optional[str] = ..., state: _Optional[_Union[ArtifactState, str]] = ..., sequence: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., installed_version: _Optional[str] = ...) -> None: ...

class ReportArtifactStatusResponse(_message.Message):
    __slots__ = ("accepted", "duplicate")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    duplicate: bool
    def __init__(self, accepted: _Optional[bool] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("log_request_id", "source", "since", "until", "max_bytes")
    LOG_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    log_request_id: str
    source: LogSource
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    max_bytes: int
    def __init__(self, log_request_id: _Optional[str] = ..., source: _Optional[_Union[LogSource, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class UploadLogsRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: LogBundleHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[LogBundleHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class LogBundleHeader(_message.Message):
    __slots__ = ("log_request_id", "content_encoding", "source", "uncompressed_size")
    LOG_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_ENCODING_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UNCOMPRESSED_SIZE_FIELD_NUMBER: _ClassVar[int]
    log_request_id: str
    content_encoding: str
    source: LogSource
    uncompressed_size: int
    def __init__(self, log_request_id: _Optional[str] = ..., content_encoding: _Optional[str] = ..., source: _Optional[_Union[LogSource, str]] = ..., uncompressed_size: _Optional[int] = ...) -> None: ...

class UploadLogsResponse(_message.Message):
    __slots__ = ("bundle_id", "size_bytes", "stored_at")
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORED_AT_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    size_bytes: int
    stored_at: _timestamp_pb2.Timestamp
    def __init__(self, bundle_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., stored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RenewCertificateRequest(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: str
    def __init__(self, csr: _Optional[str] = ...) -> None: ...

class RenewCertificateResponse(_message.Message):
    __slots__ = ("certificate", "ca_certificate", "not_after")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    certificate: str
    ca_certificate: str
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, certificate: _Optional[str] = ..., ca_certificate: _Optional[str] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
