import datetime

from fleetd.v1 import common_pb2 as _common_pb2
from fleetd.v1 import device_pb2 as _device_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    CSV: _ClassVar[ExportFormat]
    JSONL: _ClassVar[ExportFormat]

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DEVICE_METRICS: _ClassVar[DataType]
    DEVICE_INVENTORY: _ClassVar[DataType]
    DEVICE_EVENTS: _ClassVar[DataType]
    DEPLOYMENT_HISTORY: _ClassVar[DataType]
    AUDIT_LOG: _ClassVar[DataType]
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
CSV: ExportFormat
JSONL: ExportFormat
DATA_TYPE_UNSPECIFIED: DataType
DEVICE_METRICS: DataType
DEVICE_INVENTORY: DataType
DEVICE_EVENTS: DataType
DEPLOYMENT_HISTORY: DataType
AUDIT_LOG: DataType

class GetMetricsRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "metric_names", "aggregation", "interval", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    METRIC_NAMES_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    metric_names: _containers.RepeatedScalarFieldContainer[str]
    aggregation: str
    interval: _duration_pb2.Duration
    labels: _containers.ScalarMap[str, str]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metric_names: _Optional[_Iterable[str]] = ..., aggregation: _Optional[str] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("series", "summary")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[_common_pb2.MetricSeries]
    summary: MetricSummary
    def __init__(self, series: _Optional[_Iterable[_Union[_common_pb2.MetricSeries, _Mapping]]] = ..., summary: _Optional[_Union[MetricSummary, _Mapping]] = ...) -> None: ...

class GetDeviceHealthRequest(_message.Message):
    __slots__ = ("device_ids", "device_filter", "check_type")
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FILTER_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    device_filter: str
    check_type: _device_pb2.HealthCheckType
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., device_filter: _Optional[str] = ..., check_type: _Optional[_Union[_device_pb2.HealthCheckType, str]] = ...) -> None: ...

class GetDeviceHealthResponse(_message.Message):
    __slots__ = ("device_health", "summary")
    class DeviceHealthEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _device_pb2.DeviceHealth
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_device_pb2.DeviceHealth, _Mapping]] = ...) -> None: ...
    DEVICE_HEALTH_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    device_health: _containers.MessageMap[str, _device_pb2.DeviceHealth]
    summary: HealthSummary
    def __init__(self, device_health: _Optional[_Mapping[str, _device_pb2.DeviceHealth]] = ..., summary: _Optional[_Union[HealthSummary, _Mapping]] = ...) -> None: ...

class ExportDataRequest(_message.Message):
    __slots__ = ("format", "data_type", "start_time", "end_time", "fields")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    format: ExportFormat
    data_type: DataType
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, format: _Optional[_Union[ExportFormat, str]] = ..., data_type: _Optional[_Union[DataType, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportDataResponse(_message.Message):
    __slots__ = ("export_url", "size_bytes", "expires_at")
    EXPORT_URL_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    export_url: str
    size_bytes: int
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, export_url: _Optional[str] = ..., size_bytes: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricSummary(_message.Message):
    __slots__ = ("start_time", "end_time", "device_count", "online_count", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricStatistics
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricStatistics, _Mapping]] = ...) -> None: ...
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ONLINE_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    device_count: int
    online_count: int
    metrics: _containers.MessageMap[str, MetricStatistics]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., device_count: _Optional[int] = ..., online_count: _Optional[int] = ..., metrics: _Optional[_Mapping[str, MetricStatistics]] = ...) -> None: ...

class MetricStatistics(_message.Message):
    __slots__ = ("min", "max", "avg", "p50", "p95", "p99", "sample_count")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    AVG_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    avg: float
    p50: float
    p95: float
    p99: float
    sample_count: int
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., avg: _Optional[float] = ..., p50: _Optional[float] = ..., p95: _Optional[float] = ..., p99: _Optional[float] = ..., sample_count: _Optional[int] = ...) -> None: ...

class HealthSummary(_message.Message):
    __slots__ = ("total_devices", "healthy_count", "degraded_count", "unhealthy_count", "unreachable_count", "failing_checks", "check_type", "generated_at")
    class FailingChecksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_DEVICES_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILING_CHECKS_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    total_devices: int
    healthy_count: int
    degraded_count: int
    unhealthy_count: int
    unreachable_count: int
    failing_checks: _containers.ScalarMap[str, int]
    check_type: _device_pb2.HealthCheckType
    generated_at: _timestamp_pb2.Timestamp
    def __init__(self, total_devices: _Optional[int] = ..., healthy_count: _Optional[int] = ..., degraded_count: _Optional[int] = ..., unhealthy_count: _Optional[int] = ..., unreachable_count: _Optional[int] = ..., failing_checks: _Optional[_Mapping[str, int]] = ..., check_type: _Optional[_Union[_device_pb2.HealthCheckType, str]] = ..., generated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
