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

class RolloutStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLLOUT_STRATEGY_UNSPECIFIED: _ClassVar[RolloutStrategy]
    ALL_AT_ONCE: _ClassVar[RolloutStrategy]
    ROLLING: _ClassVar[RolloutStrategy]
    CANARY: _ClassVar[RolloutStrategy]
ROLLOUT_STRATEGY_UNSPECIFIED: RolloutStrategy
ALL_AT_ONCE: RolloutStrategy
ROLLING: RolloutStrategy
CANARY: RolloutStrategy

class CreateUpdateRequest(_message.Message):
    __slots__ = ("name", "version", "description", "artifacts", "strategy", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    strategy: UpdateStrategy
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., strategy: _Optional[_Union[UpdateStrategy, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateUpdateResponse(_message.Message):
    __slots__ = ("update", "update_id", "created_at")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    update: Update
    update_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, update: _Optional[_Union[Update, _Mapping]] = ..., update_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeployUpdateRequest(_message.Message):
    __slots__ = ("update_id", "device_ids", "device_filter", "config")
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FILTER_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    update_id: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    device_filter: str
    config: DeploymentConfig
    def __init__(self, update_id: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., device_filter: _Optional[str] = ..., config: _Optional[_Union[DeploymentConfig, _Mapping]] = ...) -> None: ...

class DeployUpdateResponse(_message.Message):
    __slots__ = ("deployment_id", "target_device_count", "started_at")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    target_device_count: int
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, deployment_id: _Optional[str] = ..., target_device_count: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetDeploymentStatusRequest(_message.Message):
    __slots__ = ("deployment_id", "include_device_details")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DEVICE_DETAILS_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    include_device_details: bool
    def __init__(self, deployment_id: _Optional[str] = ..., include_device_details: _Optional[bool] = ...) -> None: ...

class GetDeploymentStatusResponse(_message.Message):
    __slots__ = ("status", "device_statuses", "metrics")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_STATUSES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    status: DeploymentStatus
    device_statuses: _containers.RepeatedCompositeFieldContainer[DeviceDeploymentStatus]
    metrics: DeploymentMetrics
    def __init__(self, status: _Optional[_Union[DeploymentStatus, _Mapping]] = ..., device_statuses: _Optional[_Iterable[_Union[DeviceDeploymentStatus, _Mapping]]] = ..., metrics: _Optional[_Union[DeploymentMetrics, _Mapping]] = ...) -> None: ...

class RollbackDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "reason", "force")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    reason: str
    force: bool
    def __init__(self, deployment_id: _Optional[str] = ..., reason: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RollbackDeploymentResponse(_message.Message):
    __slots__ = ("success", "devices_rolled_back", "rolled_back_at")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_AT_FIELD_NUMBER: _ClassVar[int]
    success: bool
    devices_rolled_back: int
    rolled_back_at: _timestamp_pb2.Timestamp
    def __init__(self, success: _Optional[bool] = ..., devices_rolled_back: _Optional[int] = ..., rolled_back_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUpdateRequest(_message.Message):
    __slots__ = ("update_id",)
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    update_id: str
    def __init__(self, update_id: _Optional[str] = ...) -> None: ...

class GetUpdateResponse(_message.Message):
    __slots__ = ("update",)
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    update: Update
    def __init__(self, update: _Optional[_Union[Update, _Mapping]] = ...) -> None: ...

class ListUpdatesRequest(_message.Message):
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

class ListUpdatesResponse(_message.Message):
    __slots__ = ("updates", "next_page_token", "total_count")
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[Update]
    next_page_token: str
    total_count: int
    def __init__(self, updates: _Optional[_Iterable[_Union[Update, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by", "update_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    update_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ..., update_id: _Optional[str] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments", "next_page_token", "total_count")
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[DeploymentStatus]
    next_page_token: str
    total_count: int
    def __init__(self, deployments: _Optional[_Iterable[_Union[DeploymentStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class PauseDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "reason")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    reason: str
    def __init__(self, deployment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseDeploymentResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: DeploymentStatus
    def __init__(self, status: _Optional[_Union[DeploymentStatus, _Mapping]] = ...) -> None: ...

class ResumeDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id",)
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    def __init__(self, deployment_id: _Optional[str] = ...) -> None: ...

class ResumeDeploymentResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: DeploymentStatus
    def __init__(self, status: _Optional[_Union[DeploymentStatus, _Mapping]] = ...) -> None: ...

class ApproveWaveRequest(_message.Message):
    __slots__ = ("deployment_id", "wave", "comment")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    WAVE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    wave: int
    comment: str
    def __init__(self, deployment_id: _Optional[str] = ..., wave: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class ApproveWaveResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: DeploymentStatus
    def __init__(self, status: _Optional[_Union[DeploymentStatus, _Mapping]] = ...) -> None: ...

class CancelDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "reason")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    reason: str
    def __init__(self, deployment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelDeploymentResponse(_message.Message):
    __slots__ = ("status", "devices_cancelled")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    status: DeploymentStatus
    devices_cancelled: int
    def __init__(self, status: _Optional[_Union[DeploymentStatus, _Mapping]] = ..., devices_cancelled: _Optional[int] = ...) -> None: ...

class Update(_message.Message):
    __slots__ = ("id", "name", "version", "description", "artifacts", "strategy", "metadata", "created_at", "created_by")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    version: str
    description: str
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    strategy: UpdateStrategy
    metadata: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., strategy: _Optional[_Union[UpdateStrategy, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("platform", "url", "checksum", "size_bytes", "binary_id", "name", "kind", "version", "config", "container", "health_probe", "id", "tuf_target_path")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Artifact.Kind]
        FILE: _ClassVar[Artifact.Kind]
        MODEL: _ClassVar[Artifact.Kind]
        CONFIG: _ClassVar[Artifact.Kind]
        CONTAINER: _ClassVar[Artifact.Kind]
    KIND_UNSPECIFIED: Artifact.Kind
    FILE: Artifact.Kind
    MODEL: Artifact.Kind
    CONFIG: Artifact.Kind
    CONTAINER: Artifact.Kind
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    BINARY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    HEALTH_PROBE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TUF_TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    platform: str
    url: str
    checksum: str
    size_bytes: int
    binary_id: str
    name: str
    kind: Artifact.Kind
    version: str
    config: ConfigSpec
    container: ContainerSpec
    health_probe: HealthProbe
    id: str
    tuf_target_path: str
    def __init__(self, platform: _Optional[str] = ..., url: _Optional[str] = ..., checksum: _Optional[str] = ..., size_bytes: _Optional[int] = ..., binary_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[Artifact.Kind, str]] = ..., version: _Optional[str] = ..., config: _Optional[_Union[ConfigSpec, _Mapping]] = ..., container: _Optional[_Union[ContainerSpec, _Mapping]] = ..., health_probe: _Optional[_Union[HealthProbe, _Mapping]] = ..., id: _Optional[str] = ..., tuf_target_path: _Optional[str] = ...) -> None: ...

class ConfigSpec(_message.Message):
    __slots__ = ("destination_path", "file_mode", "reload_action", "systemd_unit", "reload_command")
    class ReloadAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RELOAD_ACTION_UNSPECIFIED: _ClassVar[ConfigSpec.ReloadAction]
        NONE: _ClassVar[ConfigSpec.ReloadAction]
        SYSTEMD_RESTART: _ClassVar[ConfigSpec.ReloadAction]
        COMMAND: _ClassVar[ConfigSpec.ReloadAction]
    RELOAD_ACTION_UNSPECIFIED: ConfigSpec.ReloadAction
    NONE: ConfigSpec.ReloadAction
    SYSTEMD_RESTART: ConfigSpec.ReloadAction
    COMMAND: ConfigSpec.ReloadAction
    DESTINATION_PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    RELOAD_ACTION_FIELD_NUMBER: _ClassVar[int]
    SYSTEMD_UNIT_FIELD_NUMBER: _ClassVar[int]
    RELOAD_COMMAND_FIELD_NUMBER: _ClassVar[int]
    destination_path: str
    file_mode: int
    reload_action: ConfigSpec.ReloadAction
    systemd_unit: str
    reload_command: ExecAction
    def __init__(self, destination_path: _Optional[str] = ..., file_mode: _Optional[int] = ..., reload_action: _Optional[_Union[ConfigSpec.ReloadAction, str]] = ..., systemd_unit: _Optional[str] = ..., reload_command: _Optional[_Union[ExecAction, _Mapping]] = ...) -> None: ...

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

class UpdateStrategy(_message.Message):
    __slots__ = ("type", "max_parallel", "max_failure_percentage", "canary_percentage", "validation_duration", "auto_promote")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILURE_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    CANARY_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DURATION_FIELD_NUMBER: _ClassVar[int]
    AUTO_PROMOTE_FIELD_NUMBER: _ClassVar[int]
    type: RolloutStrategy
    max_parallel: int
    max_failure_percentage: float
    canary_percentage: float
    validation_duration: _duration_pb2.Duration
    auto_promote: bool
    def __init__(self, type: _Optional[_Union[RolloutStrategy, str]] = ..., max_parallel: _Optional[int] = ..., max_failure_percentage: _Optional[float] = ..., canary_percentage: _Optional[float] = ..., validation_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., auto_promote: _Optional[bool] = ...) -> None: ...

class DeploymentConfig(_message.Message):
    __slots__ = ("strategy", "canary_percentage", "validation_duration", "auto_promote", "max_parallel", "max_failure_percentage", "waves", "health_gates", "device_timeout", "auto_rollback")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CANARY_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DURATION_FIELD_NUMBER: _ClassVar[int]
    AUTO_PROMOTE_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILURE_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    WAVES_FIELD_NUMBER: _ClassVar[int]
    HEALTH_GATES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    AUTO_ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    strategy: RolloutStrategy
    canary_percentage: float
    validation_duration: _duration_pb2.Duration
    auto_promote: bool
    max_parallel: int
    max_failure_percentage: float
    waves: _containers.RepeatedCompositeFieldContainer[Wave]
    health_gates: _containers.RepeatedCompositeFieldContainer[HealthGate]
    device_timeout: _duration_pb2.Duration
    auto_rollback: bool
    def __init__(self, strategy: _Optional[_Union[RolloutStrategy, str]] = ..., canary_percentage: _Optional[float] = ..., validation_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., auto_promote: _Optional[bool] = ..., max_parallel: _Optional[int] = ..., max_failure_percentage: _Optional[float] = ..., waves: _Optional[_Iterable[_Union[Wave, _Mapping]]] = ..., health_gates: _Optional[_Iterable[_Union[HealthGate, _Mapping]]] = ..., device_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., auto_rollback: _Optional[bool] = ...) -> None: ...

class Wave(_message.Message):
    __slots__ = ("name", "cumulative_percentage", "approval")
    class Approval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        APPROVAL_UNSPECIFIED: _ClassVar[Wave.Approval]
        AUTO: _ClassVar[Wave.Approval]
        MANUAL: _ClassVar[Wave.Approval]
    APPROVAL_UNSPECIFIED: Wave.Approval
    AUTO: Wave.Approval
    MANUAL: Wave.Approval
    NAME_FIELD_NUMBER: _ClassVar[int]
    CUMULATIVE_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    cumulative_percentage: float
    approval: Wave.Approval
    def __init__(self, name: _Optional[str] = ..., cumulative_percentage: _Optional[float] = ..., approval: _Optional[_Union[Wave.Approval, str]] = ...) -> None: ...

class HealthGate(_message.Message):
    __slots__ = ("metric", "aggregation", "min_value", "max_value")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    aggregation: str
    min_value: float
    max_value: float
    def __init__(self, metric: _Optional[str] = ..., aggregation: _Optional[str] = ..., min_value: _Optional[float] = ..., max_value: _Optional[float] = ...) -> None: ...

class DeploymentStatus(_message.Message):
    __slots__ = ("deployment_id", "update_id", "update_name", "update_version", "state", "config", "device_filter", "target_device_count", "current_wave", "total_waves", "awaiting_approval", "progress_percentage", "message", "created_by", "created_at", "started_at", "updated_at", "completed_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[DeploymentStatus.State]
        PENDING: _ClassVar[DeploymentStatus.State]
        RUNNING: _ClassVar[DeploymentStatus.State]
        PAUSED: _ClassVar[DeploymentStatus.State]
        COMPLETED: _ClassVar[DeploymentStatus.State]
        FAILED: _ClassVar[DeploymentStatus.State]
        CANCELLED: _ClassVar[DeploymentStatus.State]
        ROLLING_BACK: _ClassVar[DeploymentStatus.State]
        ROLLED_BACK: _ClassVar[DeploymentStatus.State]
    STATE_UNSPECIFIED: DeploymentStatus.State
    PENDING: DeploymentStatus.State
    RUNNING: DeploymentStatus.State
    PAUSED: DeploymentStatus.State
    COMPLETED: DeploymentStatus.State
    FAILED: DeploymentStatus.State
    CANCELLED: DeploymentStatus.State
    ROLLING_BACK: DeploymentStatus.State
    ROLLED_BACK: DeploymentStatus.State
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATE_NAME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FILTER_FIELD_NUMBER: _ClassVar[int]
    TARGET_DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WAVE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_WAVES_FIELD_NUMBER: _ClassVar[int]
    AWAITING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    update_id: str
    update_name: str
    update_version: str
    state: DeploymentStatus.State
    config: DeploymentConfig
    device_filter: str
    target_device_count: int
    current_wave: int
    total_waves: int
    awaiting_approval: bool
    progress_percentage: float
    message: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, deployment_id: _Optional[str] = ..., update_id: _Optional[str] = ..., update_name: _Optional[str] = ..., update_version: _Optional[str] = ..., state: _Optional[_Union[DeploymentStatus.State, str]] = ..., config: _Optional[_Union[DeploymentConfig, _Mapping]] = ..., device_filter: _Optional[str] = ..., target_device_count: _Optional[int] = ..., current_wave: _Optional[int] = ..., total_waves: _Optional[int] = ..., awaiting_approval: _Optional[bool] = ..., progress_percentage: _Optional[float] = ..., message: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeviceDeploymentStatus(_message.Message):
    __slots__ = ("device_id", "device_name", "state", "wave", "assignment_id", "previous_version", "installed_version", "reason", "message", "assigned_at", "updated_at", "completed_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[DeviceDeploymentStatus.State]
        PENDING: _ClassVar[DeviceDeploymentStatus.State]
        DOWNLOADING: _ClassVar[DeviceDeploymentStatus.State]
        VERIFYING: _ClassVar[DeviceDeploymentStatus.State]
        APPLYING: _ClassVar[DeviceDeploymentStatus.State]
        HEALTHY: _ClassVar[DeviceDeploymentStatus.State]
        ROLLED_BACK: _ClassVar[DeviceDeploymentStatus.State]
        FAILED: _ClassVar[DeviceDeploymentStatus.State]
        CANCELLED: _ClassVar[DeviceDeploymentStatus.State]
        SKIPPED: _ClassVar[DeviceDeploymentStatus.State]
    STATE_UNSPECIFIED: DeviceDeploymentStatus.State
    PENDING: DeviceDeploymentStatus.State
    DOWNLOADING: DeviceDeploymentStatus.State
    VERIFYING: DeviceDeploymentStatus.State
    APPLYING: DeviceDeploymentStatus.State
    HEALTHY: DeviceDeploymentStatus.State
    ROLLED_BACK: DeviceDeploymentStatus.State
    FAILED: DeviceDeploymentStatus.State
    CANCELLED: DeviceDeploymentStatus.State
    SKIPPED: DeviceDeploymentStatus.State
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WAVE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    device_name: str
    state: DeviceDeploymentStatus.State
    wave: int
    assignment_id: str
    previous_version: str
    installed_version: str
    reason: str
    message: str
    assigned_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., device_name: _Optional[str] = ..., state: _Optional[_Union[DeviceDeploymentStatus.State, str]] = ..., wave: _Optional[int] = ..., assignment_id: _Optional[str] = ..., previous_version: _Optional[str] = ..., installed_version: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeploymentMetrics(_message.Message):
    __slots__ = ("total_devices", "pending_count", "downloading_count", "verifying_count", "applying_count", "healthy_count", "rolled_back_count", "failed_count", "cancelled_count", "skipped_count", "success_percentage", "failure_percentage", "median_apply_duration", "p95_apply_duration", "estimated_completion")
    TOTAL_DEVICES_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADING_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERIFYING_COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLYING_COUNT_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_APPLY_DURATION_FIELD_NUMBER: _ClassVar[int]
    P95_APPLY_DURATION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    total_devices: int
    pending_count: int
    downloading_count: int
    verifying_count: int
    applying_count: int
    healthy_count: int
    rolled_back_count: int
    failed_count: int
    cancelled_count: int
    skipped_count: int
    success_percentage: float
    failure_percentage: float
    median_apply_duration: _duration_pb2.Duration
    p95_apply_duration: _duration_pb2.Duration
    estimated_completion: _timestamp_pb2.Timestamp
    def __init__(self, total_devices: _Optional[int] = ..., pending_count: _Optional[int] = ..., downloading_count: _Optional[int] = ..., verifying_count: _Optional[int] = ..., applying_count: _Optional[int] = ..., healthy_count: _Optional[int] = ..., rolled_back_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., cancelled_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., success_percentage: _Optional[float] = ..., failure_percentage: _Optional[float] = ..., median_apply_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., p95_apply_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., estimated_completion: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
