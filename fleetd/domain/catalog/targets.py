"""What an artifact becomes once its content is known: its TUF target path, its signed
custom metadata, the container pin document and the device assignment template (pure).

Target paths are ``<artifact name>/<version>/<platform or "any">/r<release counter>/<file>``,
e.g. ``firmware/2.0.0/raspberry-pi/r3/firmware-2.0.0-rpi.tar.gz``. The release counter
makes every path unique for ever: two updates may ship an artifact of the same name and
version (say a re-issued build), and a target signed by a create that then failed (see
docs/updates.md) is never reused for other content. ``any`` is reserved (no platform may
be named so) and stands for artifacts of every platform.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from fleetd.device.v1 import agent_pb2
from fleetd.domain.catalog.spec import RESERVED_PLATFORM, ArtifactPlan
from fleetd.domain.signed_target import ANY_HARDWARE, TargetCustom

CONTAINER_FILE = "image.json"
DEFAULT_FILE = "content"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")

DEVICE_KINDS: dict[str, agent_pb2.ArtifactKind] = {
    "file": agent_pb2.ARTIFACT_KIND_FILE,
    "model": agent_pb2.ARTIFACT_KIND_MODEL,
    "config": agent_pb2.ARTIFACT_KIND_CONFIG,
    "container": agent_pb2.ARTIFACT_KIND_CONTAINER,
}


@dataclass(frozen=True, slots=True)
class Content:
    """An artifact's resolved content: the blob's digest and length, and a file name
    for its target path."""

    sha256: str
    length: int
    file_name: str


def file_name(candidate: str) -> str:
    """A target-path-safe file name from a URL's last segment or a binary's name."""
    safe = _UNSAFE.sub("-", candidate).lstrip("._+-")[:128].rstrip("-")
    return safe or DEFAULT_FILE


def url_file_name(url: str) -> str:
    """The file name a URL's path ends with (``.../firmware-2.0.0-rpi.tar.gz``)."""
    return file_name(unquote(urlsplit(url).path.rpartition("/")[2]))


def container_document(image: str, digest: str) -> bytes:
    """The content of a CONTAINER artifact's target: canonical JSON (sorted keys, no
    spaces, UTF-8) naming the image and the manifest digest it is pinned to, so the pin
    is what TUF signs and the device verifies."""
    return json.dumps(
        {"digest": digest, "image": image}, sort_keys=True, separators=(",", ":")
    ).encode()


def target_path(plan: ArtifactPlan, release_counter: int, content: Content) -> str:
    platform = plan.platform or RESERVED_PLATFORM
    return f"{plan.name}/{plan.version}/{platform}/r{release_counter}/{content.file_name}"


def target_custom(plan: ArtifactPlan, release_counter: int) -> TargetCustom:
    """The signed custom metadata: hardware (the platform, ``*`` for every one), the
    anti-rollback counter, the kind and the artifact name the counter belongs to."""
    return TargetCustom(
        hardware=plan.platform or ANY_HARDWARE,
        release_counter=release_counter,
        kind=plan.kind,
        name=plan.name,
    )


def hardware(platform: str) -> str:
    """The TUF ``hardware`` of an artifact platform ('' = every type = ``*``)."""
    return platform or ANY_HARDWARE


def platform_of(hardware: str) -> str:
    """The artifact platform of a TUF ``hardware`` (the inverse of :func:`hardware`)."""
    return "" if hardware == ANY_HARDWARE else hardware


def assignment_template(
    plan: ArtifactPlan, path: str, content: Content
) -> agent_pb2.ArtifactAssignment:
    """The ArtifactAssignment a device of the artifact's platform receives, without
    assignment_id, deployment_id and previous (the rollout engine adds them).

    fleetd.v1's ConfigSpec, ContainerSpec and HealthProbe have the same field numbers,
    types and enum values as fleetd.device.v1's (tests/fleetd/domain/catalog/test_targets.py
    checks the descriptors), so they are copied through the wire format.
    """
    spec = plan.spec
    template = agent_pb2.ArtifactAssignment(
        name=plan.name,
        version=plan.version,
        kind=DEVICE_KINDS[plan.kind],
        target_path=path,
        sha256=content.sha256,
        length=content.length,
    )
    if spec.HasField("config"):
        template.config.ParseFromString(spec.config.SerializeToString())
    if spec.HasField("container"):
        template.container.ParseFromString(spec.container.SerializeToString())
    if spec.HasField("health_probe"):
        template.health_probe.ParseFromString(spec.health_probe.SerializeToString())
    return template
