"""Heartbeat ceiling: fleetd vs a bare grpc.aio echo server vs FastAPI, side by side.

    python -m bench.load.ceiling [--devices 400] [--rounds 3] [--duration 6]

(``make bench-load-ceiling``.)

One gateway process (``python -m gateway``, production flush intervals: Redis every 50 ms,
PostgreSQL every second, both happening during the runs), the echo server
(``bench.load.echo_server``) and the FastAPI/uvicorn baseline (``bench.load.http_baseline``)
run as separate processes on loopback, all over mTLS with the same client certificates,
driven by the same generator (``bench.load.generator``, 2 processes). Interleaved rounds:

1. saturation (closed loop, every device back to back on its kept channel): heartbeats/s,
   and the server's own CPU time per heartbeat (psutil), which the generator sharing the
   machine cannot distort;
2. open loop at 80% of each server's saturation: p50/p99 from the scheduled instant;
3. reconnect per heartbeat (a new TCP + mTLS connection each time, as NAT'd devices do),
   with grpc's client TLS session cache and, for fleetd, without;
4. a py-spy profile of the gateway at saturation: the top costs.

Asserted first: every device's heartbeats reached Redis (the fleet's last-seen ZSET) and
PostgreSQL (``devices.last_seen``) for fleetd, and Redis for the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis

from bench.harness import RESULTS_DIR, Report
from bench.load import plots, profile
from bench.load.generator import Mode, Plan, Protocol, Result, run
from bench.load.stack import LoadStack, ServerProcess, load_stack
from fleetd.storage import redis_keys

GROUP = "load_ceiling"


@dataclass
class Measured:
    name: str
    result: Result
    server_cpu: float

    @property
    def cpu_us_per_hb(self) -> float:
        return self.server_cpu / max(self.result.ok, 1) * 1e6

    @property
    def server_util(self) -> float:
        return self.server_cpu / self.result.window


def measure(
    stack: LoadStack,
    server: ServerProcess,
    protocol: Protocol,
    *,
    devices: int,
    duration: float,
    mode: Mode = "closed",
    rate: float = 0.0,
    reconnect: bool = False,
    stream: bool = False,
    session_cache: bool = False,
) -> Measured:
    plan = Plan(
        target=server.target,
        devices=devices,
        processes=2,
        mode=mode,
        protocol=protocol,
        duration=duration,
        rate=rate,
        reconnect=reconnect,
        stream=stream,
        session_cache=session_cache,
        cache_dir=str(stack.population.cache),
        ca_pem=stack.ca_pem,
    )
    marks: list[float] = []

    def on_start(start_wall: float) -> None:
        time.sleep(max(0.0, start_wall - time.time()))
        marks.append(server.cpu_seconds())
        time.sleep(duration)
        marks.append(server.cpu_seconds())

    result = run(plan, on_start=on_start)
    m = Measured(server.name, result, marks[1] - marks[0] if len(marks) == 2 else float("nan"))
    s = result.summary()
    print(
        f"  {server.name:8} {mode:6} "
        f"{'reconnect' if reconnect else 'stream' if stream else 'kept':9} "
        f"{'resume' if session_cache else '':6} {s['throughput']:>9,.0f}/s "
        f"p50 {s['p50_ms']:7.1f} ms p99 {s['p99_ms']:7.1f} ms errors {s['errors']} "
        f"server {m.cpu_us_per_hb:6.0f} us/hb ({m.server_util:.0%} of a core)",
        flush=True,
    )
    return m


async def _persisted(stack: LoadStack, devices: int) -> tuple[int, int, int]:
    """(fleetd devices in Redis, fleetd devices in PostgreSQL, baseline devices in Redis)."""
    assert stack.settings.database_url and stack.settings.redis_url
    r = redis.Redis.from_url(stack.settings.redis_url)
    in_redis = int(r.zcard(redis_keys.last_seen(stack.settings.fleet)))
    baseline = int(r.zcard("baseline:last_seen"))
    r.close()
    conn = await asyncpg.connect(stack.settings.database_url)
    in_pg = int(await conn.fetchval("SELECT count(*) FROM devices WHERE last_seen IS NOT NULL"))
    await conn.close()
    return in_redis, in_pg, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    command = "make bench-load-ceiling"
    report = Report(GROUP, command)
    load_before = os.getloadavg()
    with load_stack(args.devices) as stack:
        # Saturation is many devices calling as fast as they can: the gateway's per-device
        # limit (which would push each back to a few calls per interval) is off here.
        gateway = stack.start_gateway(FLEETD_GATEWAY_DEVICE_RATE="off")
        echo_server = stack.start_echo()
        servers = {
            "fleetd": (gateway, "grpc"),
            "echo": (echo_server, "grpc"),
            "fastapi": (stack.start_fastapi(), "http"),
        }
        streams = {"fleetd-stream": gateway, "echo-stream": echo_server}
        d = args.duration
        # Correctness first: a short run each, then the data must be where it belongs.
        for server, protocol in servers.values():
            measure(stack, server, protocol, devices=args.devices, duration=2.0)  # type: ignore[arg-type]
        time.sleep(2.5)  # one PostgreSQL flush (1 s) with margin
        in_redis, in_pg, baseline = asyncio.run(_persisted(stack, args.devices))
        assert in_redis == args.devices, f"fleetd: {in_redis} devices in Redis"
        assert in_pg == args.devices, f"fleetd: {in_pg} devices with last_seen in PostgreSQL"
        assert baseline == args.devices, f"FastAPI: {baseline} devices in Redis"
        print("persistence checked: every device in Redis and PostgreSQL (fleetd), Redis (FastAPI)")

        print("saturation (closed loop)")
        sat: dict[str, list[Measured]] = {name: [] for name in [*servers, *streams]}
        for _ in range(args.rounds):
            for name, (server, protocol) in servers.items():
                sat[name].append(
                    measure(stack, server, protocol, devices=args.devices, duration=d)  # type: ignore[arg-type]
                )
            for name, server in streams.items():
                sat[name].append(
                    measure(stack, server, "grpc", devices=args.devices, duration=d, stream=True)
                )
        peak = {n: statistics.median(m.result.throughput for m in ms) for n, ms in sat.items()}
        cpu = {n: statistics.median(m.cpu_us_per_hb for m in ms) for n, ms in sat.items()}

        print("80% of saturation (open loop)")
        at80: dict[str, Measured] = {}
        for name, (server, protocol) in servers.items():
            at80[name] = measure(
                stack,
                server,
                protocol,  # type: ignore[arg-type]
                devices=args.devices,
                duration=d,
                mode="open",
                rate=0.8 * peak[name],
            )
        for name, server in streams.items():
            at80[name] = measure(
                stack,
                server,
                "grpc",
                devices=args.devices,
                duration=d,
                mode="open",
                rate=0.8 * peak[name],
                stream=True,
            )

        print("reconnect per heartbeat (closed loop, new TCP + mTLS each)")
        rc_devices = min(args.devices, 200)
        gw, echo = servers["fleetd"][0], servers["echo"][0]
        recon = {
            "fleetd+resume": measure(
                stack,
                gw,
                "grpc",
                devices=rc_devices,
                duration=d,
                reconnect=True,
                session_cache=True,
            ),
            "echo+resume": measure(
                stack,
                echo,
                "grpc",
                devices=rc_devices,
                duration=d,
                reconnect=True,
                session_cache=True,
            ),
            "fleetd": measure(stack, gw, "grpc", devices=rc_devices, duration=d, reconnect=True),
        }

        costs: dict[str, Any] = {}
        profiled_cpu = float("nan")
        if not args.no_profile and profile.available():
            print("profiling the gateway at saturation (py-spy)")
            out = RESULTS_DIR / f"{GROUP}_gateway.collapsed"
            spy = profile.start(gw.popen.pid, d + 2, out)
            prof = measure(stack, gw, "grpc", devices=args.devices, duration=d)
            _, err = spy.communicate()
            if out.exists():
                costs = profile.top(out)
                profiled_cpu = prof.cpu_us_per_hb
            else:
                print(f"py-spy failed: {err.decode(errors='replace')[-400:]}")

    errors = {n: sum(sum(m.result.errors.values()) for m in ms) for n, ms in sat.items()}
    ratio_echo = peak["fleetd"] / peak["echo"]
    ratio_fastapi = peak["fleetd"] / peak["fastapi"]
    conditions = (
        f"{args.devices} devices on kept mTLS channels, 2 generator processes on the same "
        f"2-core machine, median of {args.rounds} interleaved {d:.0f} s rounds"
    )
    report.add(
        "heartbeats/s at saturation, one process each; fleetd end to end (Redis + PostgreSQL "
        "flushes running)",
        f"fleetd {peak['fleetd']:,.0f}/s, echo {peak['echo']:,.0f}/s, FastAPI "
        f"{peak['fastapi']:,.0f}/s; server CPU per heartbeat {cpu['fleetd']:.0f} / "
        f"{cpu['echo']:.0f} / {cpu['fastapi']:.0f} us ({conditions}; errors {errors})",
        "informational",
        all(v == 0 for v in errors.values()),
        **{f"{n}_per_s": round(v, 1) for n, v in peak.items()},
        **{f"{n}_cpu_us_per_hb": round(v, 1) for n, v in cpu.items()},
    )
    report.add(
        "unary heartbeats: fleetd / bare grpc.aio echo server, saturation (same generator, "
        "same mTLS)",
        f"{ratio_echo:.2f} ({peak['fleetd']:,.0f} vs {peak['echo']:,.0f}/s); by server CPU "
        f"per heartbeat {cpu['echo'] / cpu['fleetd']:.2f}",
        ">= 0.8",
        ratio_echo >= 0.8,
    )
    stream_echo = peak["fleetd-stream"] / peak["echo-stream"]
    stream_fastapi = peak["fleetd-stream"] / peak["fastapi"]
    report.add(
        "heartbeat streams (HeartbeatStream, what the agent uses): fleetd / echo, saturation",
        f"{stream_echo:.2f} ({peak['fleetd-stream']:,.0f} vs {peak['echo-stream']:,.0f}/s); "
        f"by server CPU per heartbeat {cpu['echo-stream'] / cpu['fleetd-stream']:.2f} "
        f"({cpu['fleetd-stream']:.0f} vs {cpu['echo-stream']:.0f} us)",
        ">= 0.8",
        stream_echo >= 0.8,
        fleetd_stream_per_s=round(peak["fleetd-stream"], 1),
        echo_stream_per_s=round(peak["echo-stream"], 1),
    )
    report.add(
        "fleetd on heartbeat streams / FastAPI+uvicorn JSON endpoint writing to Redis",
        f"{stream_fastapi:.1f}x ({peak['fleetd-stream']:,.0f} vs {peak['fastapi']:,.0f}/s); "
        f"by server CPU per heartbeat {cpu['fastapi'] / cpu['fleetd-stream']:.1f}x",
        ">= 3x",
        stream_fastapi >= 3.0,
    )
    report.add(
        "fleetd / FastAPI+uvicorn JSON endpoint writing each heartbeat to Redis, saturation",
        f"{ratio_fastapi:.1f}x ({peak['fleetd']:,.0f} vs {peak['fastapi']:,.0f}/s); by server "
        f"CPU per heartbeat {cpu['fastapi'] / cpu['fleetd']:.1f}x",
        ">= 3x",
        ratio_fastapi >= 3.0,
    )
    lat = {
        n: f"{n} {m.result.percentile(50):.1f}/{m.result.percentile(99):.1f} ms at "
        f"{m.result.throughput:,.0f}/s"
        for n, m in at80.items()
    }
    report.add(
        "p50/p99 latency at 80% of saturation (open loop, from the scheduled instant)",
        "; ".join(lat.values())
        + f" (errors: {', '.join(f'{n} {m.result.errors}' for n, m in at80.items())})",
        "informational",
        all(not m.result.errors for m in at80.values()),
        **{f"{n}_p50_ms": round(m.result.percentile(50), 2) for n, m in at80.items()},
        **{f"{n}_p99_ms": round(m.result.percentile(99), 2) for n, m in at80.items()},
    )
    report.add(
        "reconnect per heartbeat (new TCP + mTLS connection each), saturation",
        f"fleetd {recon['fleetd+resume'].result.throughput:,.0f}/s with TLS session "
        f"resumption ({recon['fleetd+resume'].cpu_us_per_hb:.0f} us server CPU/hb), "
        f"{recon['fleetd'].result.throughput:,.0f}/s without "
        f"({recon['fleetd'].cpu_us_per_hb:.0f} us); echo with resumption "
        f"{recon['echo+resume'].result.throughput:,.0f}/s "
        f"({recon['echo+resume'].cpu_us_per_hb:.0f} us); {rc_devices} devices",
        "informational",
        all(not m.result.errors for m in recon.values()),
    )
    if costs:
        top_self = ", ".join(f"{f} {p}%" for f, p in costs["self"][:6])
        report.add(
            "gateway CPU at saturation: top functions by own samples (py-spy, Python frames)",
            top_self,
            "diagnostic",
            True,
        )
    report.write()
    raw = {
        "machine_load_before": load_before,
        "saturation": {n: [_dump(m) for m in ms] for n, ms in sat.items()},
        "at_80_percent": {n: _dump(m) for n, m in at80.items()},
        "reconnect": {n: _dump(m) for n, m in recon.items()},
        "gateway_profile": costs,
        "gateway_cpu_us_per_hb_while_profiled": round(profiled_cpu, 1),
    }
    (RESULTS_DIR / f"{GROUP}_raw.json").write_text(json.dumps(raw, indent=2) + "\n")
    _plot(peak, sat, at80)


def _dump(m: Measured) -> dict[str, Any]:
    return {
        **m.result.summary(),
        "server_cpu_us_per_hb": round(m.cpu_us_per_hb, 1),
        "server_core_utilisation": round(m.server_util, 2),
    }


def _plot(
    peak: dict[str, float], sat: dict[str, list[Measured]], at80: dict[str, Measured]
) -> None:
    plt = plots.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(peak)
    left.bar(
        names,
        [peak[n] for n in names],
        color=["#2b6cb0", "#718096", "#dd6b20", "#2c7a7b", "#a0aec0"],
    )
    for i, n in enumerate(names):
        left.scatter([i] * len(sat[n]), [m.result.throughput for m in sat[n]], color="black", s=12)
    left.set_ylabel("heartbeats/s at saturation")
    left.set_title("Saturation (median bar, rounds as dots)")
    for n, m in at80.items():
        data = sorted(m.result.latencies)
        if data:
            ys = [i / len(data) for i in range(len(data))]
            right.plot([x * 1000 for x in data], ys, label=f"{n} @ {m.result.throughput:,.0f}/s")
    right.set_xscale("log")
    right.set_xlabel("latency (ms, log)")
    right.set_ylabel("fraction of heartbeats")
    right.set_title("Latency CDF at 80% of each server's saturation")
    right.legend()
    plots.save(fig, GROUP)


if __name__ == "__main__":
    main()
