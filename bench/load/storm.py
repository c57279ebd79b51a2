"""Reconnect storm: a connected fleet loses its gateway, which restarts; how fast is it back?

    python -m bench.load.storm [--devices 10000] [--interval 20]   (make bench-load-storm)

``--devices`` simulated agents (the Rust generator's agent mode, ``bench/loadgen``: each
device its own certificate and kept HTTP/2 connection, a new one after a failed
connection, the agent's full-jitter backoff from ``agent/backoff.py`` on every failed
heartbeat, the agent's 15 s call timeout, the server's heartbeat interval) connect to one
gateway process and heartbeat steadily. (The Python generator's agent mode spends ~3 ms
of CPU per reconnect, on the same 2 cores as the gateway: it measured itself.) After
1.5 intervals the gateway is stopped (SIGTERM: graceful drain) and started again on the
same port. Measured from the moment the new gateway listens: when each device's next
heartbeat succeeded, the error count per second and their status codes.

Target: all devices back online (a successful heartbeat after the restart) within 60 s,
with no error cascade: after the new gateway listens, only UNAVAILABLE (a device finding
its old connection dead before it reconnects), and no error at all once every device is
back. Errors during the outage itself (the drain, connections refused while nothing
listens) are counted apart. Asserted at the end: every device's post-restart heartbeat
reached Redis (last-seen ZSET scores).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import redis

from bench.harness import RESULTS_DIR, Report
from bench.load import plots
from bench.load.rust_generator import RustPlan, population_devices, run
from bench.load.stack import load_stack
from fleetd.storage import redis_keys

GROUP = "load_storm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=20.0, help="server heartbeat interval")
    parser.add_argument("--connect-rate", type=float, default=300.0, help="devices per second")
    args = parser.parse_args()
    report = Report(GROUP, "make bench-load-storm")
    # Restart after 1.5 intervals; then room for the drain and 90 s to watch devices return.
    duration = args.interval * 1.5 + 20.0 + 90.0
    with load_stack(args.devices, heartbeat_interval=args.interval) as stack:
        gateway = stack.start_gateway()
        port = gateway.port
        plan = RustPlan(
            target=gateway.target,
            mode="agent",
            duration=duration,
            interval=args.interval,
            connect_rate=args.connect_rate,
            timeout=15.0,  # the agent's RPC_TIMEOUT
            threads=2,
        )
        marks: dict[str, float] = {}

        def restart() -> None:
            time.sleep(args.interval * 1.5)
            marks["stop"] = time.time()
            stack.stop(stack.servers[0])
            marks["stopped"] = time.time()
            stack.start_gateway(port)  # returns once it listens
            marks["listening"] = time.time()
            print(
                f"storm: gateway restarted: drained in {marks['stopped'] - marks['stop']:.1f}s, "
                f"listening again {marks['listening'] - marks['stopped']:.1f}s later",
                flush=True,
            )

        devices = population_devices(stack.population, 0, args.devices)
        result = run(plan, stack.ca_pem, devices, on_start=restart)
        assert stack.settings.redis_url
        r = redis.Redis.from_url(stack.settings.redis_url)
        seen_after = int(
            r.zcount(redis_keys.last_seen(stack.settings.fleet), marks["listening"], "+inf")
        )
        r.close()
    up = marks["listening"]
    back: list[float] = []
    missing = 0
    for times in result["successes"]:
        after = [t for t in times if t >= up]
        if after:
            back.append(after[0] - up)
        else:
            missing += 1
    back.sort()
    all_back = back[-1] if back and not missing else float("inf")
    start = float(result["start_wall"])
    codes = Counter({str(k): int(v) for k, v in result["errors"].items()})
    timeline_ok = [int(n) for n in result["timeline_ok"]]
    timeline_err = [int(n) for n in result["timeline_err"]]
    width = max(len(timeline_ok), len(timeline_err))
    timeline_ok += [0] * (width - len(timeline_ok))
    timeline_err += [0] * (width - len(timeline_err))
    # Errors by code (the message dropped), during the outage (stop .. the new gateway
    # listening: drain, connections refused) and after it. After it a device may still
    # find its old connection dead (UNAVAILABLE) until it reconnects; any other code
    # then, or any error once every device was back, is the cascade we must not have.
    log = [(float(t), str(code).split(" (", 1)[0]) for t, code in result["error_log"]]
    settled = up + all_back if missing == 0 else float("inf")
    outage = Counter(code for t, code in log if t < up)
    recovery = Counter(code for t, code in log if t >= up)
    late_errors = sum(1 for t, _ in log if t > settled + 1)
    cascade = {code: n for code, n in recovery.items() if code != "UNAVAILABLE"}
    bulky = ("successes", "timeline_ok", "timeline_err", "error_log")
    print({k: v for k, v in result.items() if k not in bulky})
    assert seen_after == len(back), f"Redis saw {seen_after} devices after the restart"
    met = missing == 0 and all_back <= 60.0 and late_errors == 0 and not cascade
    report.add(
        f"reconnect storm: {args.devices:,} devices, gateway restarted (SIGTERM drain + start)",
        f"all back online {all_back:.1f} s after the new gateway listened (p50 "
        f"{back[len(back) // 2]:.1f} s, p99 {back[int(len(back) * 0.99)]:.1f} s; drain "
        f"{marks['stopped'] - marks['stop']:.1f} s, restart {up - marks['stopped']:.1f} s); "
        f"errors during the outage {dict(outage)}, after it {dict(recovery)}, {late_errors} "
        f"once all were back; interval {args.interval:.0f} s, devices kept connections "
        f"(Rust agent-mode generator)"
        if back
        else f"{missing} devices never came back",
        "all within 60 s, no error cascade",
        met,
        devices_back=len(back),
        missing=missing,
        all_back_s=round(all_back, 2),
        late_errors=late_errors,
        errors_by_message=str(dict(codes)),
        generator_cpu_s=float(result["generator_cpu_s"]),
    )
    report.write()
    _plot(timeline_ok, timeline_err, back, start, marks)


def _plot(
    ok: list[int], err: list[int], back: list[float], start: float, marks: dict[str, float]
) -> None:
    plt = plots.pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    xs = list(range(len(ok)))
    top.plot(xs, ok, label="heartbeats ok/s", color="#2b6cb0")
    top.plot(xs, err, label="errors/s", color="#c53030")
    for name in ("stop", "listening"):
        for ax in (top, bottom):
            ax.axvline(marks[name] - start, color="gray", linestyle=":")
    top.set_ylabel("per second")
    top.legend()
    top.set_title("Reconnect storm: gateway stopped then restarted (dotted lines)")
    up = marks["listening"] - start
    bottom.plot([up + b for b in back], [i + 1 for i in range(len(back))], color="#2f855a")
    bottom.set_xlabel("seconds since the window opened")
    bottom.set_ylabel("devices back online")
    plots.save(fig, GROUP)
    (RESULTS_DIR / f"{GROUP}_timeline.csv").write_text(
        "second,ok,errors\n"
        + "".join(f"{i},{o},{e}\n" for i, (o, e) in enumerate(zip(ok, err, strict=True)))
    )


if __name__ == "__main__":
    main()
