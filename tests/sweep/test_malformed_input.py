"""Malformed input never breaks a server (issue #14, item 6).

For every method of every service — found in the generated descriptors, so a new method is
swept without a change here — and every transport that reaches it (Connect JSON and gRPC to
the control API, gRPC to the device gateway as an enrolled device), send requests that are
valid but for one hostile value, and bodies that are no request at all (tests/sweep/cases.py).
Each must be answered within 5 s with a status that blames the request, not the server:
never INTERNAL, UNKNOWN or UNAVAILABLE (there is no outage during the sweep), and with a
message that shows neither Python internals nor SQL. After its cases, each method's server
still answers a valid call.

The cases are the same on every run (Hypothesis, derandomized, no example database), and a
failing method reports every failing case, grouped by answer, not just the first.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import defaultdict
from dataclasses import dataclass
from types import ModuleType
from typing import Final

import pytest
from google.protobuf.descriptor import MethodDescriptor

import fleetd.device.v1
import fleetd.v1
from tests.sweep.cases import Case, draw, json_cases, json_fixed, wire_cases, wire_fixed
from tests.sweep.conftest import Sweep
from tests.sweep.transports import Answer, Kind, connect_call, grpc_call

EXAMPLES: Final = {Kind.UNARY: 50, Kind.CLIENT_STREAM: 30, Kind.SERVER_STREAM: 20, Kind.BIDI: 20}
"""Generated cases per method and transport (besides the fixed ones), by call shape:
a quiet stream costs STREAM_QUIET_SECONDS per case."""
MAX_HANGS: Final = 2
"""Stop a method's sweep after this many hangs: each costs 5 s, and one is enough to know."""


def _methods(package: ModuleType) -> list[MethodDescriptor]:
    found: list[MethodDescriptor] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                found.extend(service.methods)
    return found


@dataclass(frozen=True, slots=True)
class Target:
    """One method over one transport."""

    transport: str
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def kind(self) -> Kind:
        return Kind.of(self.method)

    @property
    def json(self) -> bool:
        return self.transport == "connect-json"

    def __str__(self) -> str:
        return f"{self.transport}:{self.method.containing_service.name}.{self.method.name}"


OPERATOR: Final = _methods(fleetd.v1)
DEVICE: Final = _methods(fleetd.device.v1)
TARGETS: Final = [
    *(Target("connect-json", m) for m in OPERATOR),
    *(Target("grpc", m) for m in OPERATOR),
    *(Target("device-grpc", m) for m in DEVICE),
]


async def _send(sweep: Sweep, target: Target, body: bytes) -> Answer:
    if target.transport == "connect-json":
        url = f"{sweep.deployment.api_endpoint}{target.path}"
        return await connect_call(sweep.http, url, target.kind, body, dict([sweep.auth]))
    if target.transport == "grpc":
        return await grpc_call(sweep.operator, target.path, target.kind, body, (sweep.auth,))
    return await grpc_call(sweep.device, target.path, target.kind, body)


async def _still_alive(sweep: Sweep, target: Target) -> Answer:
    """A valid call to the server ``target`` swept: ListDevices, or a device Heartbeat."""
    if target.transport == "device-grpc":
        probe = Target(target.transport, _find(DEVICE, "fleetd.device.v1.AgentService.Heartbeat"))
    else:
        probe = Target(target.transport, _find(OPERATOR, "fleetd.v1.DeviceService.ListDevices"))
    return await _send(sweep, probe, b"{}" if probe.json else b"")


def _find(methods: list[MethodDescriptor], full_name: str) -> MethodDescriptor:
    return next(m for m in methods if m.full_name == full_name)


def _cases(target: Target) -> list[Case]:
    request = target.method.input_type
    count = EXAMPLES[target.kind]
    if target.json:
        return json_fixed(request) + draw(json_cases(request), count)
    return wire_fixed(request) + draw(wire_cases(request), count)


def _shape(message: str) -> str:
    """A message with its variable parts (numbers, quoted values) folded, to group by."""
    folded = re.sub(r"\b[0-9a-f]{8,}\b", "ID", message)
    folded = re.sub(r"\d+", "N", folded)
    folded = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", folded)
    return folded[:160]


def _report(target: Target, failures: list[tuple[Case, Answer]], total: int) -> str:
    groups: dict[tuple[str, str, str], list[tuple[Case, Answer]]] = defaultdict(list)
    for case, answer in failures:
        problems = ", ".join(answer.problems())
        groups[(problems, answer.code, _shape(answer.message))].append((case, answer))
    lines = [f"{target}: {len(failures)} of {total} malformed requests broke the server"]
    for (problems, code, _), members in sorted(groups.items(), key=lambda g: -len(g[1])):
        case, answer = min(members, key=lambda m: len(m[0].body))
        lines.append(
            f"- {problems} ({len(members)}*): code={code} message={answer.message[:300]!r}"
            f" ({answer.seconds:.2f} s)\n    e.g. input: {case.note}"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("target", TARGETS, ids=str)
async def test_malformed_input_is_refused_not_fatal(sweep: Sweep, target: Target) -> None:
    cases = _cases(target)
    failures: list[tuple[Case, Answer]] = []
    hangs = 0
    for case in cases:
        answer = await _send(sweep, target, case.body)
        if answer.problems():
            failures.append((case, answer))
        hangs += answer.code == "hang"
        if hangs >= MAX_HANGS:
            break
    alive = await _still_alive(sweep, target)
    assert not failures, _report(target, failures, len(cases))
    assert alive.code == "ok", f"after the sweep of {target}, a valid call answers {alive}"


def test_every_service_is_swept() -> None:
    """The descriptors were found: an import mistake must not make the sweep vacuous."""
    services = {m.containing_service.full_name for m in OPERATOR + DEVICE}
    assert {"fleetd.v1.DeviceService", "fleetd.device.v1.AgentService"} <= services
