"""gRPC server reflection (v1 and v1alpha) over our google-protobuf descriptors.

connectrpc_grpcreflect works on protobuf-py descriptors; this module converts
google-protobuf ``FileDescriptor``s. It is the only place that touches protobuf-py's
private ``_file_registry`` module, so an upgrade that moves it breaks here alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from connectrpc_grpcreflect import (
    ServerReflectionAlphaASGIApplication,
    ServerReflectionAlphaService,
    ServerReflectionASGIApplication,
    ServerReflectionService,
)
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from protobuf import DescFile, merge_from_binary
from protobuf._file_registry import create_file_registry
from protobuf.wkt.google.protobuf.descriptor_pb import FileDescriptorProto

_cache: dict[str, DescFile] = {}


def _proto_of(serialized: bytes) -> FileDescriptorProto:
    proto = FileDescriptorProto()
    merge_from_binary(proto, serialized)
    return proto


def _resolve(path: str) -> DescFile | FileDescriptorProto | None:
    cached = _cache.get(path)
    if cached is not None:  # one object per file, so shared imports stay consistent
        return cached
    return _proto_of(descriptor_pool.Default().FindFileByName(path).serialized_pb)


def to_desc_file(file: FileDescriptor) -> DescFile:
    if file.name not in _cache:
        registry = create_file_registry(_proto_of(file.serialized_pb), _resolve)
        for desc in registry._files.values():
            _cache.setdefault(desc.name, desc)
    return _cache[file.name]


def reflection_apps(
    files: Iterable[FileDescriptor],
) -> tuple[ServerReflectionASGIApplication, ServerReflectionAlphaASGIApplication]:
    """Both reflection versions: grpcurl 1.8 speaks only v1alpha, newer clients v1."""
    descs = [to_desc_file(f) for f in files]
    return (
        ServerReflectionASGIApplication(ServerReflectionService(*descs)),
        ServerReflectionAlphaASGIApplication(ServerReflectionAlphaService(*descs)),
    )
