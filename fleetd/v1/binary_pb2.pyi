import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadBinaryRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: BinaryMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[BinaryMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadBinaryResponse(_message.Message):
    __slots__ = ("binary_id", "checksum", "size_bytes", "uploaded_at")
    BINARY_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_AT_FIELD_NUMBER: _ClassVar[int]
    binary_id: str
    checksum: str
    size_bytes: int
    uploaded_at: _timestamp_pb2.Timestamp
    def __init__(self, binary_id: _Optional[str] = ..., checksum: _Optional[str] = ..., size_bytes: _Optional[int] = ..., uploaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DownloadBinaryRequest(_message.Message):
    __slots__ = ("binary_id", "offset", "chunk_size")
    BINARY_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    binary_id: str
    offset: int
    chunk_size: int
    def __init__(self, binary_id: _Optional[str] = ..., offset: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class DownloadBinaryResponse(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: BinaryMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[BinaryMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class BinaryMetadata(_message.Message):
    __slots__ = ("name", "version", "platform", "size_bytes", "checksum", "content_type", "arch", "description", "metadata", "binary_id", "uploaded_at")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    BINARY_ID_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    platform: str
    size_bytes: int
    checksum: str
    content_type: str
    arch: str
    description: str
    metadata: _containers.ScalarMap[str, str]
    binary_id: str
    uploaded_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., platform: _Optional[str] = ..., size_bytes: _Optional[int] = ..., checksum: _Optional[str] = ..., content_type: _Optional[str] = ..., arch: _Optional[str] = ..., description: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., binary_id: _Optional[str] = ..., uploaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
