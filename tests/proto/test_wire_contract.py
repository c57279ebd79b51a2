"""Conformance of the generated code to the two API documents (the seeds).

* Every message and field the operator API reference shows exists with the
  seed's name, number and type. The seed's message blocks are transcribed
  verbatim below and compared with the descriptors.
* Every grpcurl JSON example of the seed parses (strictly) into its request
  message, and so do the JS SDK example's camelCase requests; the Python SDK
  examples work as written.
* The fleetd.v1 services and fleetd.device.v1.AgentService have the methods
  (with request/response types and streaming kinds) the documents name.
* The checked-in generated code is not stale.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from fleetd.device.v1 import agent_pb2
from fleetd.v1 import analytics_pb2, binary_pb2, common_pb2, device_pb2, update_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]

FLEETD_V1_FILES = (common_pb2, device_pb2, update_pb2, analytics_pb2, binary_pb2)

# ---------------------------------------------------------------------------
# The seed's message definitions, transcribed verbatim from
# shared/seeds/000_1738d61bce90bb0e.txt (operator API reference). The generic
# "UpdateRequest { FieldMask update_mask = 1; Resource resource = 2; }" of the
# "Field Masks" section is illustrative only (its example is an
# UpdateDeviceRequest) and is not transcribed.
# ---------------------------------------------------------------------------
SEED_MESSAGES = """
message RegisterDeviceRequest {
  string device_id = 1;
  string device_name = 2;
  string device_type = 3;
  string version = 4;
  SystemInfo system_info = 5;
  map<string, string> metadata = 6;
}
message RegisterDeviceResponse {
  string device_id = 1;
  string api_key = 2;
  string certificate = 3;
  google.protobuf.Timestamp registered_at = 4;
}
message ListDevicesRequest {
  int32 page_size = 1;
  string page_token = 2;
  string filter = 3;
  string order_by = 4;
}
message ListDevicesResponse {
  repeated Device devices = 1;
  string next_page_token = 2;
  int32 total_count = 3;
}
message GetDeviceRequest {
  string device_id = 1;
  bool include_metrics = 2;
  bool include_health = 3;
}
message GetDeviceResponse {
  Device device = 1;
  DeviceMetrics metrics = 2;
  DeviceHealth health = 3;
}
message UpdateDeviceRequest {
  string device_id = 1;
  google.protobuf.FieldMask update_mask = 2;
  Device device = 3;
}
message UpdateDeviceResponse {
  Device device = 1;
  google.protobuf.Timestamp updated_at = 2;
}
message DeleteDeviceRequest {
  string device_id = 1;
  bool force = 2;
}
message DeleteDeviceResponse {
  bool success = 1;
  google.protobuf.Timestamp deleted_at = 2;
}
message HeartbeatRequest {
  string device_id = 1;
  DeviceStatus status = 2;
  SystemStats stats = 3;
  repeated ProcessInfo processes = 4;
}
message HeartbeatResponse {
  bool acknowledged = 1;
  repeated Command commands = 2;
  UpdateInfo pending_update = 3;
}
message CreateUpdateRequest {
  string name = 1;
  string version = 2;
  string description = 3;
  repeated Artifact artifacts = 4;
  UpdateStrategy strategy = 5;
  map<string, string> metadata = 6;
}
message CreateUpdateResponse {
  Update update = 1;
  string update_id = 2;
  google.protobuf.Timestamp created_at = 3;
}
message DeployUpdateRequest {
  string update_id = 1;
  repeated string device_ids = 2;
  string device_filter = 3;
  DeploymentConfig config = 4;
}
message DeployUpdateResponse {
  string deployment_id = 1;
  int32 target_device_count = 2;
  google.protobuf.Timestamp started_at = 3;
}
message GetDeploymentStatusRequest {
  string deployment_id = 1;
  bool include_device_details = 2;
}
message GetDeploymentStatusResponse {
  DeploymentStatus status = 1;
  repeated DeviceDeploymentStatus device_statuses = 2;
  DeploymentMetrics metrics = 3;
}
message RollbackDeploymentRequest {
  string deployment_id = 1;
  string reason = 2;
  bool force = 3;
}
message RollbackDeploymentResponse {
  bool success = 1;
  int32 devices_rolled_back = 2;
  google.protobuf.Timestamp rolled_back_at = 3;
}
message GetMetricsRequest {
  google.protobuf.Timestamp start_time = 1;
  google.protobuf.Timestamp end_time = 2;
  repeated string metric_names = 3;
  string aggregation = 4;
  google.protobuf.Duration interval = 5;
  map<string, string> labels = 6;
}
message GetMetricsResponse {
  repeated MetricSeries series = 1;
  MetricSummary summary = 2;
}
message GetDeviceHealthRequest {
  repeated string device_ids = 1;
  string device_filter = 2;
  HealthCheckType check_type = 3;
}
message GetDeviceHealthResponse {
  map<string, DeviceHealth> device_health = 1;
  HealthSummary summary = 2;
}
message ExportDataRequest {
  ExportFormat format = 1;
  DataType data_type = 2;
  google.protobuf.Timestamp start_time = 3;
  google.protobuf.Timestamp end_time = 4;
  repeated string fields = 5;
}
message ExportDataResponse {
  string export_url = 1;
  int64 size_bytes = 2;
  google.protobuf.Timestamp expires_at = 3;
}
message UploadBinaryRequest {
  oneof data {
    BinaryMetadata metadata = 1;
    bytes chunk = 2;
  }
}
message UploadBinaryResponse {
  string binary_id = 1;
  string checksum = 2;
  int64 size_bytes = 3;
  google.protobuf.Timestamp uploaded_at = 4;
}
message DownloadBinaryRequest {
  string binary_id = 1;
  int64 offset = 2;
  int64 chunk_size = 3;
}
message DownloadBinaryResponse {
  oneof data {
    BinaryMetadata metadata = 1;
    bytes chunk = 2;
  }
}
message PageRequest {
  int32 page_size = 1;   // Number of items per page (max: 100)
  string page_token = 2;  // Token from previous response
}
message PageResponse {
  string next_page_token = 1;  // Token for next page
  int32 total_count = 2;       // Total number of items
}
"""

# Fields the brief adds to seed messages for enrolment (numbers after the
# seed's), in the same notation.
ENROLMENT_EXTENSIONS = """
message RegisterDeviceRequest {
  string csr = 7;
  string enrollment_token = 8;
}
message RegisterDeviceResponse {
  string ca_certificate = 5;
  bytes tuf_root = 6;
  string gateway_endpoint = 7;
  string fleet = 8;
}
"""

# Types the seed names without defining them, and whether each is an enum.
SEED_NAMED_TYPES: dict[str, bool] = {
    "Device": False,
    "DeviceStatus": False,
    "SystemInfo": False,
    "SystemStats": False,
    "ProcessInfo": False,
    "Command": False,
    "UpdateInfo": False,
    "DeviceMetrics": False,
    "DeviceHealth": False,
    "Update": False,
    "Artifact": False,
    "UpdateStrategy": False,
    "DeploymentConfig": False,
    "DeploymentStatus": False,
    "DeviceDeploymentStatus": False,
    "DeploymentMetrics": False,
    "MetricSeries": False,
    "MetricSummary": False,
    "HealthSummary": False,
    "BinaryMetadata": False,
    "HealthCheckType": True,
    "ExportFormat": True,
    "DataType": True,
}


@dataclass(frozen=True)
class SeedField:
    message: str
    name: str
    number: int
    type: str  # as written in the seed, e.g. "repeated Device", "map<string, string>"
    oneof: str | None


_FIELD_RE = re.compile(
    r"^(?P<type>(?:repeated\s+)?[\w.]+|map<\s*\w+\s*,\s*[\w.]+\s*>)\s+"
    r"(?P<name>\w+)\s*=\s*(?P<number>\d+)\s*;"
)


def parse_seed(text: str) -> list[SeedField]:
    """Parse the transcribed message blocks (flat messages, oneofs, comments)."""
    fields: list[SeedField] = []
    message: str | None = None
    oneof: str | None = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if m := re.fullmatch(r"message (\w+) \{", line):
            message = m[1]
        elif m := re.fullmatch(r"oneof (\w+) \{", line):
            oneof = m[1]
        elif line == "}":
            if oneof is not None:
                oneof = None
            else:
                message = None
        elif m := _FIELD_RE.fullmatch(line):
            assert message is not None, raw
            type_ = re.sub(r"\s+", " ", m["type"]).replace("<string,string>", "<string, string>")
            fields.append(SeedField(message, m["name"], int(m["number"]), type_, oneof))
        else:
            raise AssertionError(f"unparsed seed line: {raw!r}")
    return fields


_SCALAR_NAMES = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


def _base_type(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        full_name = field.message_type.full_name
    elif field.enum_type is not None:
        full_name = field.enum_type.full_name
    else:
        return _SCALAR_NAMES[field.type]
    return full_name.removeprefix("fleetd.v1.")


def render_type(field: FieldDescriptor) -> str:
    """A field's type in .proto notation, relative to package fleetd.v1."""
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        return f"map<{_base_type(key)}, {_base_type(value)}>"
    if field.is_repeated:
        return f"repeated {_base_type(field)}"
    return _base_type(field)


def fleetd_v1_message(name: str) -> Descriptor:
    for module in FLEETD_V1_FILES:
        messages: dict[str, Descriptor] = module.DESCRIPTOR.message_types_by_name
        if name in messages:
            return messages[name]
    raise AssertionError(f"fleetd.v1.{name} is not defined")


def descriptor_of(message_type: type[Message]) -> Descriptor:
    # The stubs type DESCRIPTOR as the pure-Python or upb class; both behave alike.
    return cast("Descriptor", message_type.DESCRIPTOR)


SEED_FIELDS = parse_seed(SEED_MESSAGES)
EXTENSION_FIELDS = parse_seed(ENROLMENT_EXTENSIONS)


SEED_DOCUMENT = REPO_ROOT.parent / "shared" / "seeds" / "000_1738d61bce90bb0e.txt"


def test_seed_transcription_is_complete() -> None:
    messages = {f.message for f in SEED_FIELDS}
    assert len(messages) == 32
    assert len(SEED_FIELDS) == 102


@pytest.mark.skipif(not SEED_DOCUMENT.is_file(), reason="seed document not alongside the repo")
def test_seed_transcription_matches_document() -> None:
    """Where the seed document is at hand, the transcription equals its blocks."""
    text = SEED_DOCUMENT.read_text(encoding="utf-8")
    blocks = re.findall(r"^message \w+ \{\n.*?^\}", text, re.MULTILINE | re.DOTALL)
    documented = parse_seed("\n".join(b for b in blocks if "Resource resource" not in b))
    assert documented == SEED_FIELDS


@pytest.mark.parametrize(
    "seed", [*SEED_FIELDS, *EXTENSION_FIELDS], ids=lambda f: f"{f.message}.{f.name}"
)
def test_seed_field(seed: SeedField) -> None:
    message = fleetd_v1_message(seed.message)
    field = message.fields_by_name.get(seed.name)
    assert field is not None, f"{message.full_name} lacks field {seed.name}"
    assert field.number == seed.number
    assert render_type(field) == seed.type
    oneof = field.containing_oneof
    assert (oneof.name if oneof is not None else None) == seed.oneof


@pytest.mark.parametrize("name", sorted({f.message for f in SEED_FIELDS}))
def test_seed_message_numbers_not_reused(name: str) -> None:
    """Fields fleetd adds to seed messages use numbers the seed does not."""
    seed_numbers = {f.number: f.name for f in SEED_FIELDS if f.message == name}
    for field in fleetd_v1_message(name).fields:
        if field.number in seed_numbers:
            assert field.name == seed_numbers[field.number]


@pytest.mark.parametrize(("name", "is_enum"), sorted(SEED_NAMED_TYPES.items()))
def test_seed_named_types_exist(name: str, is_enum: bool) -> None:
    enums = {n for m in FLEETD_V1_FILES for n in m.DESCRIPTOR.enum_types_by_name}
    messages = {n for m in FLEETD_V1_FILES for n in m.DESCRIPTOR.message_types_by_name}
    assert name in (enums if is_enum else messages)


def test_fleetd_v1_enum_values_unprefixed_and_zero_unspecified() -> None:
    """Bare value names (the seed's JSON uses them); zero is <ENUM>_UNSPECIFIED."""
    for module in FLEETD_V1_FILES:
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            expected = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_UNSPECIFIED"
            assert zero == expected
            for value in enum.values[1:]:
                assert not value.name.startswith(expected.removesuffix("UNSPECIFIED"))


# ---------------------------------------------------------------------------
# JSON examples.
# ---------------------------------------------------------------------------

# (request message, JSON exactly as in the seed's grpcurl -d / Field Masks example)
GRPCURL_EXAMPLES: list[tuple[str, type[Message], str]] = [
    (
        "RegisterDevice",
        device_pb2.RegisterDeviceRequest,
        """{
  "device_id": "rpi-001",
  "device_name": "Raspberry Pi 001",
  "device_type": "raspberry-pi",
  "version": "1.0.0",
  "system_info": {
    "os": "Linux",
    "arch": "arm64",
    "cpu_cores": 4,
    "memory_mb": 4096
  }
}""",
    ),
    (
        "ListDevices",
        device_pb2.ListDevicesRequest,
        """{
  "page_size": 20,
  "filter": "status:online",
  "order_by": "last_seen DESC"
}""",
    ),
    (
        "GetDevice",
        device_pb2.GetDeviceRequest,
        """{
  "device_id": "rpi-001",
  "include_metrics": true,
  "include_health": true
}""",
    ),
    (
        "UpdateDevice",
        device_pb2.UpdateDeviceRequest,
        """{
  "device_id": "rpi-001",
  "update_mask": {
    "paths": ["name", "metadata"]
  },
  "device": {
    "name": "Raspberry Pi Production",
    "metadata": {
      "location": "datacenter-1"
    }
  }
}""",
    ),
    (
        "DeleteDevice",
        device_pb2.DeleteDeviceRequest,
        """{
  "device_id": "rpi-001",
  "force": false
}""",
    ),
    (
        "Heartbeat",
        device_pb2.HeartbeatRequest,
        """{
  "device_id": "rpi-001",
  "status": {
    "state": "ONLINE",
    "uptime_seconds": 3600,
    "last_boot": "2024-01-01T12:00:00Z"
  },
  "stats": {
    "cpu_percent": 25.5,
    "memory_used_mb": 1024,
    "disk_used_gb": 10.5
  }
}""",
    ),
    (
        "CreateUpdate",
        update_pb2.CreateUpdateRequest,
        """{
  "name": "Firmware Update v2.0",
  "version": "2.0.0",
  "description": "Security patches and performance improvements",
  "artifacts": [{
    "platform": "raspberry-pi",
    "url": "https://updates.fleetd.io/firmware-2.0.0-rpi.tar.gz",
    "checksum": "sha256:abc123...",
    "size_bytes": 104857600
  }],
  "strategy": {
    "type": "ROLLING",
    "max_parallel": 10,
    "max_failure_percentage": 5
  }
}""",
    ),
    (
        "DeployUpdate",
        update_pb2.DeployUpdateRequest,
        """{
  "update_id": "update-001",
  "device_filter": "type:raspberry-pi AND status:online",
  "config": {
    "strategy": "CANARY",
    "canary_percentage": 10,
    "validation_duration": "3600s",
    "auto_promote": true
  }
}""",
    ),
    (
        "GetDeploymentStatus",
        update_pb2.GetDeploymentStatusRequest,
        """{
  "deployment_id": "deploy-001",
  "include_device_details": true
}""",
    ),
    (
        "RollbackDeployment",
        update_pb2.RollbackDeploymentRequest,
        """{
  "deployment_id": "deploy-001",
  "reason": "High error rate detected",
  "force": false
}""",
    ),
    (
        "GetMetrics",
        analytics_pb2.GetMetricsRequest,
        """{
  "start_time": "2024-01-01T00:00:00Z",
  "end_time": "2024-01-02T00:00:00Z",
  "metric_names": ["cpu_usage", "memory_usage", "device_online_count"],
  "aggregation": "AVG",
  "interval": "3600s"
}""",
    ),
    (
        "GetDeviceHealth",
        analytics_pb2.GetDeviceHealthRequest,
        """{
  "device_filter": "type:raspberry-pi",
  "check_type": "COMPREHENSIVE"
}""",
    ),
    (
        "ExportData",
        analytics_pb2.ExportDataRequest,
        """{
  "format": "CSV",
  "data_type": "DEVICE_METRICS",
  "start_time": "2024-01-01T00:00:00Z",
  "end_time": "2024-01-31T23:59:59Z",
  "fields": ["device_id", "timestamp", "cpu_usage", "memory_usage"]
}""",
    ),
    ("Pagination first page", device_pb2.ListDevicesRequest, '{"page_size": 20}'),
    (
        "Pagination next page",
        device_pb2.ListDevicesRequest,
        '{"page_size": 20, "page_token": "next-token-from-response"}',
    ),
    (
        "Field Masks",
        device_pb2.UpdateDeviceRequest,
        """{
  "update_mask": {
    "paths": ["name", "metadata.location", "status"]
  },
  "device": {
    "name": "New Name",
    "metadata": {
      "location": "Building A"
    },
    "status": "MAINTENANCE"
  }
}""",
    ),
]


def grpcurl_to_protojson(value: Any, descriptor: Descriptor) -> Any:
    """Rewrite the seed's FieldMask object form to protobuf JSON's string form.

    grpcurl accepts ``"update_mask": {"paths": [...]}``; canonical protobuf
    JSON (google.protobuf.json_format, Connect JSON) only accepts
    ``"update_mask": "name,metadata"``. This is the one rewrite the seed's
    JSON needs; every other value is parsed exactly as written.
    """
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = descriptor.fields_by_name.get(key) or next(
            (f for f in descriptor.fields if f.json_name == key), None
        )
        sub = field.message_type if field is not None else None
        if sub is None or sub.GetOptions().map_entry:
            out[key] = item
        elif sub.full_name == "google.protobuf.FieldMask" and isinstance(item, dict):
            out[key] = ",".join(item["paths"])
        elif isinstance(item, list):
            out[key] = [grpcurl_to_protojson(i, sub) for i in item]
        else:
            out[key] = grpcurl_to_protojson(item, sub)
    return out


@pytest.mark.parametrize(
    ("example", "message_type", "text"), GRPCURL_EXAMPLES, ids=[e[0] for e in GRPCURL_EXAMPLES]
)
def test_grpcurl_example_parses(example: str, message_type: type[Message], text: str) -> None:
    seed_json = json.loads(text)
    normalized = grpcurl_to_protojson(seed_json, descriptor_of(message_type))
    message = json_format.Parse(json.dumps(normalized), message_type())
    # Nothing was dropped: every key of the example is present in the message.
    round_trip = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert _keys(round_trip) >= _keys(normalized) - _default_valued_keys(normalized)


def _keys(value: Any, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    keys: set[str] = set()
    for key, item in value.items():
        keys.add(prefix + key)
        keys |= _keys(item, f"{prefix}{key}.")
        if isinstance(item, list):
            for element in item:
                keys |= _keys(element, f"{prefix}{key}[].")
    return keys


def _default_valued_keys(value: Any, prefix: str = "") -> set[str]:
    """Keys whose value is a proto3 default (false, 0) and so is not emitted."""
    if not isinstance(value, dict):
        return set()
    keys: set[str] = set()
    for key, item in value.items():
        if item is False or item == 0:
            keys.add(prefix + key)
        keys |= _default_valued_keys(item, f"{prefix}{key}.")
    return keys


def test_grpcurl_example_values() -> None:
    """Spot-check that the examples' values land in the intended fields/types."""
    heartbeat = json_format.Parse(GRPCURL_EXAMPLES[5][2], device_pb2.HeartbeatRequest())
    assert heartbeat.status.state == device_pb2.ONLINE
    assert heartbeat.status.uptime_seconds == 3600
    assert heartbeat.status.last_boot.ToJsonString() == "2024-01-01T12:00:00Z"
    assert heartbeat.stats.cpu_percent == 25.5
    assert heartbeat.stats.memory_used_mb == 1024
    assert heartbeat.stats.disk_used_gb == 10.5

    create = json_format.Parse(GRPCURL_EXAMPLES[6][2], update_pb2.CreateUpdateRequest())
    assert create.artifacts[0].size_bytes == 104857600
    assert create.strategy.type == update_pb2.ROLLING
    assert create.strategy.max_failure_percentage == 5

    deploy = json_format.Parse(GRPCURL_EXAMPLES[7][2], update_pb2.DeployUpdateRequest())
    assert deploy.config.strategy == update_pb2.CANARY
    assert deploy.config.validation_duration.seconds == 3600
    assert deploy.config.canary_percentage == 10

    masked = json_format.Parse(
        json.dumps(
            grpcurl_to_protojson(
                json.loads(GRPCURL_EXAMPLES[-1][2]), descriptor_of(device_pb2.UpdateDeviceRequest)
            )
        ),
        device_pb2.UpdateDeviceRequest(),
    )
    assert list(masked.update_mask.paths) == ["name", "metadata.location", "status"]
    assert masked.device.status == device_pb2.MAINTENANCE
    assert masked.device.metadata["location"] == "Building A"

    export = json_format.Parse(GRPCURL_EXAMPLES[12][2], analytics_pb2.ExportDataRequest())
    assert export.format == analytics_pb2.CSV
    assert export.data_type == analytics_pb2.DEVICE_METRICS

    health = json_format.Parse(GRPCURL_EXAMPLES[11][2], analytics_pb2.GetDeviceHealthRequest())
    assert health.check_type == device_pb2.COMPREHENSIVE


def test_js_sdk_example_requests_parse() -> None:
    """The JavaScript SDK example's camelCase requests (protobuf JSON names)."""
    listing = json_format.Parse(
        '{"pageSize": 10, "filter": "status:online"}', device_pb2.ListDevicesRequest()
    )
    assert listing.page_size == 10
    events = json_format.Parse(
        '{"deviceFilter": "type:raspberry-pi", "events": ["status_change", "heartbeat"]}',
        device_pb2.StreamEventsRequest(),
    )
    assert events.device_filter == "type:raspberry-pi"
    assert list(events.events) == ["status_change", "heartbeat"]


def test_python_sdk_examples_as_written() -> None:
    """The seed's Python snippets, against the generated classes."""
    first = binary_pb2.UploadBinaryRequest(
        metadata=binary_pb2.BinaryMetadata(
            name="firmware.bin", version="2.0.0", platform="raspberry-pi"
        )
    )
    assert first.WhichOneof("data") == "metadata"
    chunk = binary_pb2.UploadBinaryRequest(chunk=b"\x00" * 16)
    assert chunk.WhichOneof("data") == "chunk"

    request = binary_pb2.DownloadBinaryRequest(binary_id="bin-001", chunk_size=1024 * 1024)
    assert request.chunk_size == 1024 * 1024
    response = binary_pb2.DownloadBinaryResponse(chunk=b"abc")
    assert response.HasField("chunk")
    assert not binary_pb2.DownloadBinaryResponse().HasField("chunk")

    register = device_pb2.RegisterDeviceRequest(
        device_id="rpi-001",
        device_name="Raspberry Pi 001",
        device_type="raspberry-pi",
        version="1.0.0",
    )
    assert register.device_name == "Raspberry Pi 001"
    assert device_pb2.RegisterDeviceResponse(api_key="k").api_key == "k"

    devices = device_pb2.ListDevicesResponse(devices=[device_pb2.Device(id="rpi-001", name="Pi")])
    assert [(d.id, d.name) for d in devices.devices] == [("rpi-001", "Pi")]


# ---------------------------------------------------------------------------
# Services.
# ---------------------------------------------------------------------------

UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI = "unary", "client_stream", "server_stream", "bidi"

# service -> method -> streaming kind. Request/response types are checked to be
# <Method>Request / <Method>Response in the service's package.
SERVICES: dict[str, dict[str, str]] = {
    "fleetd.v1.DeviceService": {
        # seed
        "RegisterDevice": UNARY,
        "ListDevices": UNARY,
        "GetDevice": UNARY,
        "UpdateDevice": UNARY,
        "DeleteDevice": UNARY,
        "Heartbeat": UNARY,
        # fleetd additions (enrolment; the JS SDK's streamEvents)
        "CreateEnrollmentToken": UNARY,
        "ListEnrollmentTokens": UNARY,
        "RevokeEnrollmentToken": UNARY,
        "StreamEvents": SERVER_STREAM,
    },
    "fleetd.v1.UpdateService": {
        # seed
        "CreateUpdate": UNARY,
        "DeployUpdate": UNARY,
        "GetDeploymentStatus": UNARY,
        "RollbackDeployment": UNARY,
        # fleetd additions
        "GetUpdate": UNARY,
        "ListUpdates": UNARY,
        "ListDeployments": UNARY,
        "PauseDeployment": UNARY,
        "ResumeDeployment": UNARY,
        "ApproveWave": UNARY,
        "CancelDeployment": UNARY,
    },
    "fleetd.v1.AnalyticsService": {
        "GetMetrics": UNARY,
        "GetDeviceHealth": UNARY,
        "ExportData": UNARY,
    },
    "fleetd.v1.BinaryService": {
        "UploadBinary": CLIENT_STREAM,
        "DownloadBinary": SERVER_STREAM,
    },
    "fleetd.device.v1.AgentService": {
        "Register": UNARY,
        "Heartbeat": UNARY,
        "HeartbeatStream": BIDI,
        "ReportArtifactStatus": UNARY,
        "UploadLogs": CLIENT_STREAM,
        "RenewCertificate": UNARY,
    },
}

SERVICE_FILES: dict[str, ModuleType] = {
    "fleetd.v1.DeviceService": device_pb2,
    "fleetd.v1.UpdateService": update_pb2,
    "fleetd.v1.AnalyticsService": analytics_pb2,
    "fleetd.v1.BinaryService": binary_pb2,
    "fleetd.device.v1.AgentService": agent_pb2,
}


@pytest.mark.parametrize("service_name", sorted(SERVICES))
def test_service_methods(service_name: str) -> None:
    package, _, short = service_name.rpartition(".")
    service: ServiceDescriptor = SERVICE_FILES[service_name].DESCRIPTOR.services_by_name[short]
    assert set(service.methods_by_name) == set(SERVICES[service_name])
    for name, kind in SERVICES[service_name].items():
        method = service.methods_by_name[name]
        assert method.input_type.full_name == f"{package}.{name}Request"
        assert method.output_type.full_name == f"{package}.{name}Response"
        assert method.client_streaming is (kind in (CLIENT_STREAM, BIDI)), name
        assert method.server_streaming is (kind in (SERVER_STREAM, BIDI)), name


def test_device_api_requests_carry_no_identity() -> None:
    """The device's identity comes from its certificate, never from a request."""
    for service in agent_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            stack = [method.input_type]
            seen: set[str] = set()
            while stack:
                message = stack.pop()
                if message.full_name in seen:
                    continue
                seen.add(message.full_name)
                assert "device_id" not in message.fields_by_name, message.full_name
                stack.extend(f.message_type for f in message.fields if f.message_type is not None)


# ---------------------------------------------------------------------------
# Staleness of the generated code.
# ---------------------------------------------------------------------------


def _load_gen_proto() -> ModuleType:
    path = REPO_ROOT / "scripts" / "gen_proto.py"
    spec = importlib.util.spec_from_file_location("fleetd_gen_proto", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current() -> None:
    gen_proto = _load_gen_proto()
    staleness = gen_proto.check()
    assert not staleness.stale, "\n".join(
        ["generated code is stale; run `python scripts/gen_proto.py`:", *staleness.lines()]
    )
