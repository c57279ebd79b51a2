"""The lean generator: ``bench/loadgen`` (Rust: tokio, rustls, h2), built and driven from here.

    python -m bench.load.rust_generator --target 127.0.0.1:9443 --devices 2000 --rate 500

The Python generator (``generator.py``) spends as much CPU per reconnecting heartbeat as
the gateway does (grpc Python's client builds a channel, a subchannel and a handshaker
per connection), so on one machine it measures itself as much as the server. This one
makes the same calls (the provisioned devices' own certificates, a new TCP + mTLS +
HTTP/2 connection per heartbeat, TLS 1.3 session resumption per device with
``resume=True``, the same serialized ``HeartbeatRequest``) for a fraction of that, and
reports resumed vs full handshakes, so a reconnect benchmark charges the handshakes to
the gateway. ``mode="agent"`` keeps each device's connection and heartbeats at an
interval with the agent's full-jitter backoff after errors (the reconnect storm), and
returns every device's success times.

``build()`` runs ``cargo build --release`` (cargo is a prerequisite of the project:
core_ext's Rust half needs it) into ``build/loadgen``; ``run()`` writes the CA, the
devices' certificates and keys and the request for it, starts it, calls ``on_start`` /
``on_end`` at the measured window's edges (where a benchmark reads the servers' CPU
time) and returns its figures with its own CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

from bench.load.generator import _heartbeat_request
from bench.load.provision import ROOT as LOAD_ROOT
from bench.load.provision import Population, read_devices

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "bench" / "loadgen" / "Cargo.toml"
TARGET_DIR = REPO / "build" / "loadgen"
BINARY = TARGET_DIR / "release" / "fleetd-loadgen"


def build() -> Path:
    """Build (or find up to date) the generator; its path."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(MANIFEST)],
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(TARGET_DIR)},
    )
    return BINARY


@dataclass(frozen=True)
class RustPlan:
    """One run: who to call, how often, for how long."""

    target: str
    mode: Literal["open", "closed", "agent"] = "open"
    rate: float = 100.0
    concurrency: int = 64
    duration: float = 10.0
    timeout: float = 10.0
    resume: bool = True
    threads: int = 1
    server_name: str = "localhost"
    interval: float = 30.0
    """Agent mode: seconds between a device's heartbeats (+/- 5 %)."""
    connect_rate: float = 300.0
    """Agent mode: devices connecting per second at the start."""


Credentials = Sequence[tuple[bytes, bytes]]
"""Per device: (certificate PEM, private key PEM)."""


def population_devices(population: Population, first: int, count: int) -> Credentials:
    """Provisioned devices ``first..first+count-1`` (``bench.load.provision``)."""
    population.ensure(first + count)
    return [(d.cert_pem, d.key_pem) for d in read_devices(population.cache, first, count)]


def write_inputs(ca_pem: bytes, devices: Credentials, request: bytes, into: Path) -> None:
    """The generator's inputs: ca.pem, certs.pem + keys.pem (the n-th key belongs to the
    n-th certificate) and the serialized request."""
    with open(into / "certs.pem", "wb") as certs, open(into / "keys.pem", "wb") as keys:
        for cert_pem, key_pem in devices:
            certs.write(cert_pem)
            keys.write(key_pem)
    (into / "ca.pem").write_bytes(ca_pem)
    (into / "request.bin").write_bytes(request)


def run(
    plan: RustPlan,
    ca_pem: bytes,
    devices: Credentials,
    *,
    request: bytes | None = None,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the generator once (blocking; from asyncio, use a thread); its JSON figures
    plus ``generator_cpu_s``, its CPU time inside the window. ``request`` defaults to the
    load benchmarks' ``HeartbeatRequest``."""
    binary = build()
    if request is None:
        request = _heartbeat_request().SerializeToString()
    LOAD_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loadgen-", dir=LOAD_ROOT) as tmp:
        work = Path(tmp)
        write_inputs(ca_pem, devices, request, work)
        out = work / "out.json"
        argv = [str(binary), "--target", plan.target, "--server-name", plan.server_name]
        argv += ["--ca", str(work / "ca.pem"), "--certs", str(work / "certs.pem")]
        argv += ["--keys", str(work / "keys.pem"), "--request", str(work / "request.bin")]
        argv += ["--mode", plan.mode, "--rate", str(plan.rate)]
        argv += ["--concurrency", str(plan.concurrency), "--duration", str(plan.duration)]
        argv += ["--timeout", str(plan.timeout), "--threads", str(plan.threads)]
        argv += ["--interval", str(plan.interval), "--connect-rate", str(plan.connect_rate)]
        argv += ["--out", str(out)]
        if plan.resume:
            argv.append("--resume")
        marks: list[float] = []
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
            process = psutil.Process(child.pid)
            assert child.stdout is not None
            for line in child.stdout:
                edge = line.strip()
                if edge in ("window-start", "window-end"):
                    times = process.cpu_times()
                    marks.append(times.user + times.system)
                    callback = on_start if edge == "window-start" else on_end
                    if callback is not None:
                        callback()
            if child.wait() != 0:
                raise RuntimeError(f"fleetd-loadgen exited with {child.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
    result["generator_cpu_s"] = marks[1] - marks[0] if len(marks) == 2 else float("nan")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="IP:PORT of the gateway")
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--first-device", type=int, default=0)
    parser.add_argument("--mode", choices=["open", "closed", "agent"], default="open")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--no-resume", action="store_true", help="full handshakes only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--interval", type=float, default=30.0, help="agent mode")
    parser.add_argument("--connect-rate", type=float, default=300.0, help="agent mode")
    args = parser.parse_args()
    plan = RustPlan(
        target=args.target,
        mode=args.mode,
        rate=args.rate,
        concurrency=args.concurrency,
        duration=args.duration,
        resume=not args.no_resume,
        threads=args.threads,
        interval=args.interval,
        connect_rate=args.connect_rate,
    )
    population = Population()
    devices = population_devices(population, args.first_device, args.devices)
    result = run(plan, population.ca_pem, devices)
    for bulky in ("timeline_ok", "timeline_err", "successes", "error_log"):
        result.pop(bulky, None)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
