"""What checking every request message costs the gateway (``fleetd.domain.message_rules``).

``python -m bench.message_rules`` builds the messages the gateway receives most (a
heartbeat as the agent sends it: stats and three installed artifacts; a registration with
hardware, tags and metadata), checks that the rules accept them and refuse a NUL, then
times, interleaved in one run:

- protobuf decoding alone (``FromString``: what grpcio's deserializer did before);
- decoding and checking (``message_rules.parse``: what the gateway's deserializer does now).

The figure is the cost the check adds per message; the target keeps it a small part of
a heartbeat's server CPU (169 us per streamed heartbeat in ``make bench-load-ceiling``).
"""

from __future__ import annotations

import argparse
import functools
import os

from bench.harness import Report, interleaved
from fleetd.device.v1 import agent_pb2
from fleetd.domain import message_rules

HEARTBEAT_SERVER_CPU_US = 169.0
"""Server CPU per streamed heartbeat (bench/RESULTS.md, load_ceiling), for scale."""
ADDED_TARGET_US = 5.0


def heartbeat() -> agent_pb2.HeartbeatRequest:
    return agent_pb2.HeartbeatRequest(
        desired_state_revision=42,
        stats=agent_pb2.DeviceStats(
            cpu_percent=12.5,
            memory_percent=40.0,
            disk_percent=70.0,
            memory_used_mb=1600,
            memory_total_mb=4096,
            disk_used_gb=20.5,
            disk_total_gb=64.0,
            load_avg_1m=0.4,
            load_avg_5m=0.3,
            load_avg_15m=0.2,
            temperature_celsius=51.0,
            uptime_seconds=86_400,
        ),
        installed_artifacts=[
            agent_pb2.InstalledArtifact(
                name=name, version="1.2.3", sha256="ab" * 32, assignment_id=f"asg-{name}"
            )
            for name in ("firmware", "detector-model", "detector-config")
        ],
        agent_version="1.4.0",
    )


def registration() -> agent_pb2.RegisterRequest:
    return agent_pb2.RegisterRequest(
        device_type="raspberry-pi",
        hardware=agent_pb2.HardwareProfile(
            os="linux", arch="arm64", cpu_cores=4, memory_mb=4096, disk_gb=64.0
        ),
        tags=["production", "building-a", "floor-2"],
        metadata={"rack": "r12", "owner": "ops", "site": "lyon"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per sample")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    report = Report("message_rules", "python -m bench.message_rules")
    load = os.getloadavg()[0]

    for label, message in (("HeartbeatRequest", heartbeat()), ("RegisterRequest", registration())):
        cls = type(message)
        data = message.SerializeToString()
        # Correctness first: the rules accept the message and refuse it with a NUL.
        assert message_rules.parse(cls, data) == message
        try:
            message_rules.parse(cls, data.replace(b"1.2.3", b"1\x00.3").replace(b"r12", b"r\x002"))
        except message_rules.Violation:
            pass
        else:
            raise AssertionError(f"a NUL in a {label} was not refused")

        times = interleaved(
            {
                "decode": functools.partial(cls.FromString, data),
                "decode+check": functools.partial(message_rules.parse, cls, data),
            },
            repeat=args.repeat,
            number=args.number,
        )
        decode_us = times["decode"] * 1e6
        checked_us = times["decode+check"] * 1e6
        added_us = checked_us - decode_us
        report.add(
            f"gateway deserializer, {label} ({len(data)} bytes): decode+check vs decode alone",
            f"{checked_us:.2f} us vs {decode_us:.2f} us ({checked_us / decode_us:.1f}x); the "
            f"check adds {added_us:.2f} us = {added_us / HEARTBEAT_SERVER_CPU_US:.1%} of the "
            f"{HEARTBEAT_SERVER_CPU_US:g} us server CPU per streamed heartbeat "
            f"(load average {load:.1f})",
            f"check adds <= {ADDED_TARGET_US:g} us",
            added_us <= ADDED_TARGET_US,
            decode_us=decode_us,
            checked_us=checked_us,
            added_us=added_us,
            bytes=len(data),
            load_average=load,
        )
    report.write()


if __name__ == "__main__":
    main()
