"""The headline: one 2-core node serving a 1,000,000-device fleet at a 5-minute interval.

    python -m bench.load.headline [--certificates 20000] [--sustain 600] [--step 20]

Issue 4's target: 1,000,000 registered devices, 3,333 heartbeats/s sustained for 10
minutes from a rotating population of device certificates that reconnect per heartbeat
(new TCP + mTLS connection each time, TLS session resumption allowed), p99 <= 200 ms, zero
errors. Here:

* 1,000,000 devices are registered in PostgreSQL: ``--certificates`` of them with real
  certificates (the rotating population the generator presents), the rest as rows (they
  make the tables, indexes and ZSET the size of the fleet; generating a million keys is
  not what is measured).
* ``--workers`` gateway processes share the port (SO_REUSEPORT), as ``fleetd gateway
  --workers N`` runs them (default 1: on 2 cores one process spent less CPU per
  reconnecting heartbeat than two), with production settings except the per-device
  limit, which is off: the rotating population stands for 50x more devices, so each
  certificate beats 50x more often than one real device would. Every device heartbeats
  once before the probing starts (a running fleet: standings and desired states cached).
* The open-loop generator is ``bench/loadgen`` (Rust: tokio, rustls, h2; see
  ``bench.load.rust_generator``), on the same 2 cores: a new TCP + mTLS + HTTP/2
  connection per heartbeat with each device's own certificate and TLS 1.3 session
  resumption per device. grpc Python's client spent as much CPU per reconnect as the
  gateway (~3 ms at these rates), so with it the machine measured mostly its client.

It steps the rate up towards 3,333/s while each step meets the bar (achieved >= 95 % of
the rate, p99 <= 200 ms, no errors; an overloaded open-loop step only builds a backlog),
tries once halfway between the last passing and the first failing rate, then sustains
the highest passing rate for ``--sustain`` seconds (once more at three quarters of it if
that run misses the bar) and records that run: the figure reached, the gateways' CPU per
heartbeat and the generator's, which together show what bounds it on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg
import psutil

from bench.harness import Report
from bench.load.plots import pyplot, save
from bench.load.rust_generator import Credentials, RustPlan, population_devices
from bench.load.rust_generator import run as run_rust
from bench.load.stack import LoadStack, ServerProcess, free_port, load_stack

GROUP = "load_headline"
FLEET = 1_000_000
TARGET = 3333.0
RATES = (200.0, 400.0, 600.0, 800.0, 1000.0, 1200.0, 1400.0, 1700.0, 2000.0, 2500.0, 3333.0)
P99_MS = 200.0
WARM_RATE = 400.0


async def register_rest(url: str, have: int) -> float:
    """Rows for the devices beyond the certified population, up to the fleet size."""
    start = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO devices (device_id, fleet, name, device_type, version)
               SELECT 'fleet-' || lpad(i::text, 7, '0'), 'default', 'fleet-' || i,
                      'raspberry-pi', '1.0'
               FROM generate_series(1, $1) AS i""",
            FLEET - have,
        )
        await conn.execute("VACUUM ANALYZE devices")
    finally:
        await conn.close()
    return time.perf_counter() - start


def step(
    stack: LoadStack,
    devices: Credentials,
    gateways: list[ServerProcess],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    plan = RustPlan(
        target=gateways[0].target,
        mode="open",
        rate=rate,
        duration=seconds,
        resume=True,
        threads=2,
    )
    marks: list[float] = []
    busy: list[float] = []

    def mark() -> None:
        marks.append(sum(g.cpu_seconds() for g in gateways))
        times = psutil.cpu_times()
        busy.append(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    result = run_rust(plan, stack.ca_pem, devices, on_start=mark, on_end=mark)
    ok = int(result["ok"])
    cpu = marks[1] - marks[0] if len(marks) == 2 else float("nan")
    row: dict[str, Any] = {
        "rate": rate,
        "achieved": float(result["throughput"]),
        "p50_ms": float(result["p50_ms"]),
        "p99_ms": float(result["p99_ms"]),
        "errors": dict(result["errors"]),
        "resumed": int(result["resumed"]),
        "full_handshakes": int(result["full_handshakes"]),
        "gateway_cpu_us_per_hb": cpu / max(ok, 1) * 1e6,
        "gateway_cores": cpu / seconds,
        "generator_cores": float(result["generator_cpu_s"]) / seconds,
        "generator_cpu_us_per_hb": float(result["generator_cpu_s"]) / max(ok, 1) * 1e6,
        "machine_cores_busy": (busy[1] - busy[0]) / seconds if len(busy) == 2 else float("nan"),
        "timeline_ok": list(result.get("timeline_ok", [])),
    }
    row["passed"] = row["achieved"] >= 0.95 * rate and row["p99_ms"] <= P99_MS and not row["errors"]
    print(
        f"  {rate:>6,.0f}/s asked: {row['achieved']:,.0f}/s p50 {row['p50_ms']:.0f} ms "
        f"p99 {row['p99_ms']:.0f} ms errors {row['errors']} (handshakes: "
        f"{row['resumed']:,} resumed, {row['full_handshakes']:,} full) gateways "
        f"{row['gateway_cpu_us_per_hb']:.0f} us/hb ({row['gateway_cores']:.2f} cores), "
        f"generator {row['generator_cpu_us_per_hb']:.0f} us/hb "
        f"({row['generator_cores']:.2f} cores), machine {row['machine_cores_busy']:.2f} "
        f"cores busy -> {'pass' if row['passed'] else 'fail'}",
        flush=True,
    )
    return row


def plot(probes: list[dict[str, Any]], sustained: dict[str, Any], best: float) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rates = [p["rate"] for p in probes]
    left.plot(rates, [max(p["p99_ms"], 0.1) for p in probes], "o-", label="p99")
    left.plot(rates, [max(p["p50_ms"], 0.1) for p in probes], "s--", label="p50")
    left.axhline(P99_MS, color="red", linestyle=":", label="p99 bar (200 ms)")
    left.set_yscale("log")
    left.set_xlabel("heartbeats/s asked (reconnect per heartbeat)")
    left.set_ylabel("latency, ms")
    left.set_title("probing steps")
    left.legend()
    timeline = sustained["timeline_ok"]
    right.plot(range(len(timeline)), timeline, label="heartbeats answered")
    right.axhline(best, color="gray", linestyle="--", label=f"asked ({best:,.0f}/s)")
    right.axhline(TARGET, color="red", linestyle=":", label="target (3,333/s)")
    right.set_xlabel("second of the sustained run")
    right.set_ylabel("heartbeats/s")
    right.set_title("sustained")
    right.legend()
    save(fig, GROUP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", type=int, default=20_000)
    parser.add_argument("--sustain", type=float, default=600.0)
    parser.add_argument("--step", type=float, default=20.0, help="seconds per probing step")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes on one port (fleetd gateway --workers N); on 2 cores one "
        "was cheaper per heartbeat than two (measured: 1.9 vs 2.5 ms at 550/s)",
    )
    args = parser.parse_args()
    command = (
        f"python -m bench.load.headline --certificates {args.certificates} "
        f"--sustain {args.sustain:.0f} --step {args.step:.0f} --workers {args.workers}"
    )
    report = Report(GROUP, command)
    with load_stack(args.certificates, heartbeat_interval=300.0) as stack:
        assert stack.settings.database_url
        took = asyncio.run(register_rest(stack.settings.database_url, args.certificates))
        print(f"headline: {FLEET:,} devices registered ({took:.0f}s for the rows)")
        port = free_port()
        env = {"FLEETD_GATEWAY_DEVICE_RATE": "off"}
        gateways = [stack.start_gateway(port, **env) for _ in range(args.workers)]
        time.sleep(2.0)  # every worker is listening
        devices = population_devices(stack.population, 0, stack.devices)
        # A running fleet: every device has heartbeat before (its certificate's standing
        # and its desired state are cached, it is online), as in the sustained run.
        warm = args.certificates / WARM_RATE
        print(f"warm-up: every device once, {WARM_RATE:,.0f}/s for {warm:.0f} s")
        step(stack, devices, gateways, WARM_RATE, warm)
        probes = []
        best = None
        for rate in RATES:
            probe = step(stack, devices, gateways, rate, args.step)
            probes.append(probe)
            if not probe["passed"]:
                if best is not None:
                    middle = round((best + rate) / 2 / 50) * 50
                    if best < middle < rate:
                        probes.append(step(stack, devices, gateways, middle, args.step))
                        if probes[-1]["passed"]:
                            best = middle
                break
            best = rate
        if best is None:
            raise SystemExit("no rate met the bar; see the probes above")
        print(f"sustaining {best:,.0f}/s for {args.sustain:.0f} s")
        sustained = step(stack, devices, gateways, best, args.sustain)
        if not sustained["passed"]:
            # A short step can pass at a rate a long run cannot hold (periodic work, a
            # backlog that grows): one more try at three quarters of it.
            best = round(best * 0.75 / 50) * 50
            print(f"sustaining {best:,.0f}/s for {args.sustain:.0f} s")
            sustained = step(stack, devices, gateways, best, args.sustain)
        # What a connection costs grpc itself: the bare grpc.aio echo server (same mTLS,
        # no work) at the same rate, with the gateways idle.
        echo = stack.start_echo()
        print(f"the bare grpc.aio echo server at {best:,.0f}/s")
        bare = step(stack, devices, [echo], best, args.step)
    plot(probes, sustained, best)
    met = best >= TARGET and sustained["passed"]
    report.add(
        "1,000,000 registered devices, reconnect per heartbeat (mTLS + session resumption), "
        f"{args.workers} gateway process(es) on one 2-core node with the generator",
        f"{sustained['achieved']:,.0f} heartbeats/s sustained {args.sustain:.0f} s, p50 "
        f"{sustained['p50_ms']:.0f} ms, p99 {sustained['p99_ms']:.0f} ms, errors "
        f"{sustained['errors'] or 0}; the machine's CPU bounds it: the gateways "
        f"{sustained['gateway_cpu_us_per_hb']:.0f} us per heartbeat "
        f"({sustained['gateway_cores']:.2f} cores), the generator "
        f"{sustained['generator_cpu_us_per_hb']:.0f} us ({sustained['generator_cores']:.2f} "
        f"cores); {sustained['machine_cores_busy']:.2f} of the machine's 2 cores busy; handshakes "
        f"{sustained['resumed']:,} resumed, {sustained['full_handshakes']:,} full; the bare "
        f"grpc.aio echo server at the same rate: {bare['gateway_cpu_us_per_hb']:.0f} us per "
        f"heartbeat (p99 {bare['p99_ms']:.0f} ms)",
        "3,333/s for 600 s, p99 <= 200 ms, 0 errors",
        met,
        **{k: v for k, v in sustained.items() if isinstance(v, int | float)},
        probes=str([(p["rate"], round(p["achieved"]), round(p["p99_ms"])) for p in probes]),
        echo_cpu_us_per_hb=bare["gateway_cpu_us_per_hb"],
        echo_p99_ms=bare["p99_ms"],
    )
    report.write()


if __name__ == "__main__":
    main()
