"""The gateway against an earlier version of itself, side by side, under the same load.

    python -m bench.load.gateway_ab --baseline-tree DIR [--devices 400] [--rounds 3]
        [--current-env NAME=VALUE ...]

``DIR`` is another checkout of this repository (``git worktree add /tmp/old <commit>``,
with the compiled ``core_ext/_batcher*.so`` copied in when its sources are unchanged). Both
gateways run at once (``python -m gateway``, one process each, on the same stores and
certificates, the per-device limit off), and the same generator saturates them in turn,
interleaved: heartbeat streams (what the agent uses) and unary heartbeats. Figures are
the server CPU per heartbeat and the throughput, as ratios current / baseline, so that a
change's cost is measured on a shared, noisy machine rather than against a number
recorded another day. ``--current-env`` sets variables for the current gateway only (e.g.
``FLEETD_SAMPLE_INTERVAL=0``: every heartbeat persisted as a sample, the worst case).

Both gateways share one database, migrated by the current tree first: a baseline older than
a migration must have that migration's file copied into its tree (same checksum), and when
the migration dropped a table the baseline still writes (0009 dropped ``fleet_rollups``), a
bench-only migration in the baseline's tree recreating it (numbered after the current
tree's last), so that the baseline's flush does the work it did.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path

from bench.harness import Report
from bench.load.ceiling import Measured, measure
from bench.load.stack import load_stack

GROUP = "gateway_ab"
"""Rows and JSON are kept per baseline: ``gateway_ab_<commit>``."""


def _describe(tree: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return str(tree)
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-tree", type=Path, required=True)
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--max-cost-ratio", type=float, default=1.10)
    parser.add_argument("--current-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    current_env = dict(item.split("=", 1) for item in args.current_env)
    baseline_rev = _describe(args.baseline_tree)
    current_rev = _describe(Path(__file__).resolve().parents[2])
    extra = "".join(f" --current-env {k}={v}" for k, v in current_env.items())
    command = f"python -m bench.load.gateway_ab --baseline-tree <{baseline_rev}>{extra}"
    suffix = "_" + "_".join(f"{k}={v}" for k, v in current_env.items()) if current_env else ""
    report = Report(f"{GROUP}_{baseline_rev}{suffix}", command)
    load = os.getloadavg()[0]
    with load_stack(args.devices) as stack:
        unlimited = {"FLEETD_GATEWAY_DEVICE_RATE": "off"}
        gateways = {
            "current": stack.start_gateway_from(
                None, "gw-current", None, {**unlimited, **current_env}
            ),
            "baseline": stack.start_gateway_from(
                args.baseline_tree, "gw-baseline", None, unlimited
            ),
        }
        # Correctness first: both answer every device.
        for server in gateways.values():
            warm = measure(stack, server, "grpc", devices=args.devices, duration=2.0, stream=True)
            assert warm.result.ok > 0 and not warm.result.errors, (server.name, warm.result)
        for stream in (True, False):
            kind = "HeartbeatStream" if stream else "unary Heartbeat"
            runs: dict[str, list[Measured]] = {name: [] for name in gateways}
            for _ in range(args.rounds):
                for name, server in gateways.items():
                    runs[name].append(
                        measure(
                            stack,
                            server,
                            "grpc",
                            devices=args.devices,
                            duration=args.duration,
                            stream=stream,
                        )
                    )
            for name, ms in runs.items():
                errors = [m.result.errors for m in ms if m.result.errors]
                assert not errors, f"{name}: errors {errors}"
            cpu = {n: statistics.median(m.cpu_us_per_hb for m in ms) for n, ms in runs.items()}
            rate = {n: statistics.median(m.result.throughput for m in ms) for n, ms in runs.items()}
            ratio = cpu["current"] / cpu["baseline"]
            report.add(
                f"gateway {current_rev}{extra} vs {baseline_rev}, {kind} at saturation "
                f"({args.devices} devices, median of {args.rounds} interleaved "
                f"{args.duration:g} s rounds)",
                f"server CPU per heartbeat {cpu['current']:.0f} vs {cpu['baseline']:.0f} us "
                f"= {ratio:.2f}x; throughput {rate['current']:,.0f} vs "
                f"{rate['baseline']:,.0f}/s = {rate['current'] / rate['baseline']:.2f}x "
                f"(load average {load:.1f})",
                f"CPU ratio <= {args.max_cost_ratio:.2f}",
                ratio <= args.max_cost_ratio,
                current_cpu_us=cpu["current"],
                baseline_cpu_us=cpu["baseline"],
                current_rate=rate["current"],
                baseline_rate=rate["baseline"],
            )
    report.write()


if __name__ == "__main__":
    main()
