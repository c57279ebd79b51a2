"""Concurrent mTLS device connections held by one gateway process, and its memory per device.

    python -m bench.load.connections [--devices 10000] [--hold 30]   (make bench-load-connections)

One gateway process (``python -m gateway``; its open-file limit raised to the hard limit
by this process, which starts it) and ``--devices`` simulated devices in 2 generator
processes, each device with its own certificate and its own kept mTLS channel. Devices
connect at a bounded rate (each connection is a full handshake plus a first heartbeat),
then hold their channels and heartbeat as the agent does (the server's interval, 15 s
here, jittered) for ``--hold`` seconds. Sampled every 2 s: the gateway's established
connections on its port and its RSS. Memory per connected device is
(RSS connected - RSS idle) / devices, so it includes the per-device caches (identity,
standing, batcher) as well as grpc's per-connection buffers.

Asserted: every device's connection is established at the gateway at once, every
heartbeat in the hold window succeeds, and every device reached Redis.
"""

from __future__ import annotations

import argparse
import threading
import time

import redis

from bench.harness import RESULTS_DIR, Report
from bench.load import plots
from bench.load.generator import Plan, run
from bench.load.stack import ServerProcess, load_stack
from fleetd.storage import redis_keys

GROUP = "load_connections"


class Sampler(threading.Thread):
    """(seconds since start, established connections, RSS bytes) every ``step`` seconds."""

    def __init__(self, server: ServerProcess, step: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.step = step
        self.samples: list[tuple[float, int, int]] = []
        self.stopping = threading.Event()
        self.start_time = time.time()

    def run(self) -> None:
        while not self.stopping.is_set():
            t = time.time() - self.start_time
            self.samples.append((t, self.server.connections(), self.server.rss()))
            self.stopping.wait(self.step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--connect-rate", type=float, default=150.0, help="per generator process")
    args = parser.parse_args()
    report = Report(GROUP, "make bench-load-connections")
    with load_stack(args.devices, heartbeat_interval=15.0) as stack:
        gateway = stack.start_gateway()
        time.sleep(2.0)
        idle_rss = gateway.rss()
        sampler = Sampler(gateway)
        sampler.start()
        plan = Plan(
            target=gateway.target,
            devices=args.devices,
            processes=2,
            mode="agent",
            duration=args.hold,
            connect_rate=args.connect_rate,
            cache_dir=str(stack.population.cache),
            ca_pem=stack.ca_pem,
        )
        held: list[tuple[int, int]] = []

        def on_start(start_wall: float) -> None:
            # All devices have connected (and heartbeated once) before the window opens.
            time.sleep(max(0.0, start_wall - time.time()) + args.hold / 2)
            held.append((gateway.connections(), gateway.rss()))

        result = run(plan, on_start=on_start)
        sampler.stopping.set()
        sampler.join()
        assert stack.settings.redis_url
        r = redis.Redis.from_url(stack.settings.redis_url)
        in_redis = int(r.zcard(redis_keys.last_seen(stack.settings.fleet)))
        r.close()
    connections, rss = held[0]
    per_device = (rss - idle_rss) / args.devices
    errors = sum(result.errors.values()) + sum(result.connect_errors.values())
    print(result.summary())
    assert in_redis == args.devices, f"{in_redis} of {args.devices} devices reached Redis"
    ok = connections >= args.devices and errors == 0
    report.add(
        "concurrent mTLS device connections held by one gateway process",
        f"{connections:,} established at the gateway ({args.devices:,} devices, each its own "
        f"certificate and channel; connected in {result.connect_seconds:.0f} s; "
        f"{result.ok:,} heartbeats in a {args.hold:.0f} s hold at a 15 s interval, "
        f"errors {result.errors or 0}, connect errors {result.connect_errors or 0})",
        ">= 10,000",
        ok and connections >= 10_000,
        connections=connections,
        connect_seconds=round(result.connect_seconds, 1),
        heartbeats=result.ok,
    )
    report.add(
        "gateway memory per connected device (RSS connected - RSS idle) / devices",
        f"{per_device / 1024:.1f} KiB (RSS {rss / 2**20:.0f} MiB with {connections:,} "
        f"connections vs {idle_rss / 2**20:.0f} MiB idle)",
        "informational",
        True,
        rss_bytes=rss,
        idle_rss_bytes=idle_rss,
        bytes_per_device=round(per_device),
    )
    report.write()
    _plot(sampler.samples, idle_rss)


def _plot(samples: list[tuple[float, int, int]], idle_rss: int) -> None:
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ts = [s[0] for s in samples]
    ax.plot(ts, [s[1] for s in samples], color="#2b6cb0", label="established connections")
    ax.set_xlabel("seconds")
    ax.set_ylabel("connections")
    ax2 = ax.twinx()
    ax2.plot(ts, [s[2] / 2**20 for s in samples], color="#dd6b20", label="gateway RSS (MiB)")
    ax2.axhline(idle_rss / 2**20, color="#dd6b20", linestyle=":", linewidth=1)
    ax2.set_ylabel("RSS (MiB)")
    ax.set_title("One gateway process: connections held and memory")
    fig.legend(loc="lower right")
    plots.save(fig, GROUP)
    (RESULTS_DIR / f"{GROUP}_samples.csv").write_text(
        "seconds,connections,rss_bytes\n" + "".join(f"{t:.1f},{c},{r}\n" for t, c, r in samples)
    )


if __name__ == "__main__":
    main()
