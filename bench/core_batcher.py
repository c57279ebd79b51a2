"""Heartbeat batcher: compiled (Cython) against the pure-Python reference, side by side.

    python -m bench.core_batcher [--devices 100000] [--repeat 7] [--no-write]

Workload: ``--devices`` distinct devices in six (device_type, version) groups, heartbeating
in rounds; a round is every device once plus 10 % of them a second time (coalesced), in
random order, ``seen_at`` advancing ~30 s per round. Before anything is timed, the whole
workload runs through both implementations with a drain after every round and the outputs
(``Flush``es and COPY records) are asserted identical and complete.

Measured, each candidate timed in alternation within this one run:

* ``add()``: heartbeats/s on one core, 50k heartbeats (a 50 ms flush window at 1M/s) at
  a time into a batcher that knows every device and whose windows were just drained (the
  gateway's steady state). Again with 1k devices, everything in cache: ``add`` is
  memory-bound at fleet scale, and the two figures show by how much.
* ``drain()`` per 10k pending devices, ``drain_copy_records()`` per 10k devices; the
  latter also against the previous gateway's Python conversion of drained records
  (``datetime.fromtimestamp`` per record), the choice the Cython datetimes replace.
* The Redis flush's whole CPU cost per 10k devices: ``drain()``, feeding the commands to a
  redis-py pipeline and packing them into wire bytes (no network).

The workload is generated first and then frozen out of the cyclic GC (``gc.freeze``); what
the batchers allocate is collected as usual.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics
import time
from collections.abc import Callable
from typing import TypeAlias

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from bench.harness import Report
from core_ext._batcher import HeartbeatBatcher as CompiledBatcher
from core_ext.heartbeat_types import CopyRecord, Flush
from core_ext.reference.batcher import HeartbeatBatcher as ReferenceBatcher

Batcher: TypeAlias = CompiledBatcher | ReferenceBatcher
Heartbeat: TypeAlias = tuple[str, int, float, int, float, float, float, int]
OldRecord: TypeAlias = tuple[str, float, int, float, float, float, int, int]

COMMAND = "python -m bench.core_batcher"
GROUPS = [
    ("rpi4", "1.2.0"),
    ("rpi4", "1.3.0"),
    ("rpi5", "1.3.0"),
    ("jetson", "2.0.1"),
    ("x86", "2.0.1"),
    ("", ""),
]
ROUNDS = 4
ONLINE = 1
SAMPLE = 10_000
WINDOW = 50_000
SMALL_FLEET = 1_000


def make_rounds(devices: int, seed: int = 3) -> list[list[Heartbeat]]:
    """``ROUNDS`` rounds of heartbeats: every device once, 10 % twice, shuffled.

    A gateway's ``add`` arguments are freshly made (decoded values, ``time.time()``), so
    hot in cache: the values here come from small pools of objects, rather than ~2M cold
    objects made up front. The device ids are 100k distinct strings visited in random
    order, cold: conservative, since the gateway's authenticator touches the cached id
    just before ``add``.
    """
    rng = random.Random(seed)
    ids = [f"dev-{i:07d}" for i in range(devices)]
    group_of = [rng.randrange(len(GROUPS)) for _ in ids]
    percents = [round(rng.uniform(0.0, 100.0), 1) for _ in range(1024)]
    uptimes = [3600 + 30 * i for i in range(1024)]
    start = 1_760_000_000.0
    rounds: list[list[Heartbeat]] = []
    for r in range(ROUNDS):
        # 30 s of heartbeats, stamped (for the pool's sake) every ~29 ms.
        times = [start + r * 30.0 + 30.0 * k / 1024 for k in range(1024)]
        order = list(range(devices)) + rng.sample(range(devices), devices // 10)
        rng.shuffle(order)
        rounds.append(
            [
                (
                    ids[i],
                    group_of[i],
                    rng.choice(times),
                    ONLINE,
                    rng.choice(percents),
                    rng.choice(percents),
                    rng.choice(percents),
                    rng.choice(uptimes),
                )
                for i in order
            ]
        )
    return rounds


def new_batcher(cls: type[Batcher]) -> Batcher:
    batcher = cls(
        max_pending=1 << 30,
        last_seen_key="fleetd:{default}:last_seen",
        stats_key_prefix="fleetd:dev:{",
        stats_key_suffix="}:stats",
        sample_interval=300.0,
    )
    for device_type, version in GROUPS:
        batcher.group_id(device_type, version)
    return batcher


def feed(batcher: Batcher, heartbeats: list[Heartbeat]) -> None:
    """What the gateway does per heartbeat (minus reading the clock): one ``add`` with every
    DeviceStats field (network counters growing with the uptime, so rates are computed)."""
    add = batcher.add
    for device_id, group, seen_at, state, cpu, memory, disk, uptime in heartbeats:
        add(
            device_id, group, seen_at, state, cpu, memory, disk, uptime, 512, 1024, 1.5,
            64.0, 0.5, 0.4, 0.3, 45.0, uptime * 1000, uptime * 10,
        )  # fmt: skip


def _comparable(flush: Flush) -> Flush:
    """The compiled and reference sketches are different classes with the same bytes."""
    return flush._replace(rollups=[(*r[:8], r[8].to_bytes()) for r in flush.rollups])  # type: ignore[misc]


def check_outputs(rounds: list[list[Heartbeat]], devices: int) -> None:
    """Both implementations produce identical, complete outputs for the whole workload."""
    outputs: dict[str, list[tuple[Flush, list[CopyRecord]]]] = {}
    for name, cls in (("compiled", CompiledBatcher), ("reference", ReferenceBatcher)):
        batcher = new_batcher(cls)
        outputs[name] = []
        for heartbeats in rounds:
            feed(batcher, heartbeats)
            flush = _comparable(batcher.drain())
            outputs[name].append((flush, batcher.drain_copy_records()))
    assert outputs["compiled"] == outputs["reference"], "compiled and reference disagree"
    assert repr(outputs["compiled"][-1]) == repr(outputs["reference"][-1])
    for heartbeats, (flush, copy_records) in zip(rounds, outputs["compiled"], strict=True):
        assert flush.devices == devices == len(copy_records)
        assert flush.heartbeats == len(heartbeats)
        assert len(flush.redis_commands) == 1 + 2 * devices
        assert sum(r[4] for r in flush.rollups if r[3] == "cpu_usage") == len(heartbeats)
        latest: dict[str, Heartbeat] = {}
        for heartbeat in heartbeats:
            if heartbeat[0] not in latest or heartbeat[2] >= latest[heartbeat[0]][2]:
                latest[heartbeat[0]] = heartbeat
        for device_id, seen_at, cpu, _memory, _disk, uptime, *_ in copy_records[:1000]:
            expected = latest[device_id]
            assert seen_at == dt.datetime.fromtimestamp(expected[2], dt.UTC)
            assert (cpu, uptime) == (expected[4], expected[7])


def interleaved_after_setup(
    candidates: dict[str, tuple[Callable[[], object], Callable[[], object]]], repeat: int
) -> dict[str, float]:
    """Median seconds of each candidate's timed step, each run after its untimed setup,
    candidates alternating (A B A B ...) like ``bench.harness.interleaved``."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, (setup, timed) in candidates.items():
            setup()
            start = time.perf_counter()
            timed()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_add(rounds: list[list[Heartbeat]], window: int, repeat: int) -> dict[str, float]:
    """Seconds per ``add`` (median over windows) for each implementation.

    Timed a flush window at a time: ``window`` heartbeats into a batcher that knows every
    device and whose windows were just drained, untimed, as the gateway's flusher does
    between them.
    """
    windows = [r[i : i + window] for r in rounds for i in range(0, len(r), window)]
    windows = [w for w in windows if len(w) == window]
    batchers = {
        "compiled": new_batcher(CompiledBatcher),
        "reference": new_batcher(ReferenceBatcher),
    }
    for batcher in batchers.values():  # every device known: the steady state
        feed(batcher, rounds[0])
    served = dict.fromkeys(batchers, 0)

    def candidate(name: str) -> tuple[Callable[[], object], Callable[[], object]]:
        batcher = batchers[name]
        current: list[list[Heartbeat]] = [windows[0]]

        def setup() -> None:
            batcher.drain()
            batcher.drain_copy_records()
            current[0] = windows[served[name] % len(windows)]
            served[name] += 1

        return setup, lambda: feed(batcher, current[0])

    samples = max(repeat, 2 * len(windows))
    seconds = interleaved_after_setup({name: candidate(name) for name in batchers}, samples)
    return {name: value / window for name, value in seconds.items()}


def bench_drains(rounds: list[list[Heartbeat]], repeat: int) -> dict[str, dict[str, float]]:
    """Seconds per 10k devices for drain(), drain_copy_records() and the Redis flush."""
    # Devices 0..9999, once each, with their values from round 1.
    sample = list({hb[0]: hb for hb in rounds[1] if int(hb[0][4:]) < SAMPLE}.values())
    assert len(sample) == SAMPLE
    batchers = {
        "compiled": new_batcher(CompiledBatcher),
        "reference": new_batcher(ReferenceBatcher),
    }
    for batcher in batchers.values():
        feed(batcher, rounds[0])
        batcher.drain()
        batcher.drain_copy_records()
    connection = Connection()
    redis = Redis()

    def fill(batcher: Batcher) -> Callable[[], object]:
        def setup() -> None:
            feed(batcher, sample)

        return setup

    def fill_and_drain(batcher: Batcher) -> Callable[[], object]:
        def setup() -> None:
            feed(batcher, sample)
            batcher.drain()

        return setup

    def redis_flush(batcher: Batcher) -> Callable[[], object]:
        def flush() -> object:
            pipe = redis.pipeline(transaction=False)
            for command in batcher.drain().redis_commands:
                pipe.execute_command(*command)
            return connection.pack_commands([args for args, _ in pipe.command_stack])

        return flush

    # The previous gateway: drained records folded per device, then converted in Python.
    old_batch: dict[str, OldRecord] = {
        hb[0]: (hb[0], hb[2], hb[3], hb[4], hb[5], hb[6], hb[7], 1) for hb in sample
    }

    def old_conversion() -> object:
        return [
            (r[0], dt.datetime.fromtimestamp(r[1], dt.UTC), r[3], r[4], r[5], r[6])
            for r in old_batch.values()
        ]

    results: dict[str, dict[str, float]] = {}
    results["drain"] = interleaved_after_setup(
        {name: (fill(b), b.drain) for name, b in batchers.items()}, repeat
    )
    copy_candidates: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        name: (fill_and_drain(b), b.drain_copy_records) for name, b in batchers.items()
    }
    copy_candidates["python fromtimestamp"] = (lambda: None, old_conversion)
    results["copy"] = interleaved_after_setup(copy_candidates, repeat)
    results["redis"] = interleaved_after_setup(
        {name: (fill(b), redis_flush(b)) for name, b in batchers.items()}, repeat
    )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.devices < SAMPLE:
        parser.error(f"--devices must be at least {SAMPLE}")
    command = (
        COMMAND
        if (args.devices, args.repeat) == (100_000, 7)
        else (f"{COMMAND} --devices {args.devices} --repeat {args.repeat}")
    )
    report = Report("batcher", command)

    rounds = make_rounds(args.devices)
    check_outputs(rounds, args.devices)
    print(f"outputs identical on {sum(map(len, rounds))} heartbeats, {args.devices} devices")
    # The workload (~0.5M tuples) is the benchmark's, not the gateway's: keep the cyclic
    # GC from traversing it on every full collection. The batchers' objects stay tracked.
    gc.collect()
    gc.freeze()

    per_add = bench_add(rounds, WINDOW, args.repeat)
    rate = 1.0 / per_add["compiled"]
    ratio = per_add["reference"] / per_add["compiled"]
    report.add(
        f"add() heartbeats/s, one core, {args.devices:,} devices (ids cold)",
        f"{rate:,.0f}/s compiled vs {1.0 / per_add['reference']:,.0f}/s reference ({ratio:.1f}x)",
        ">= 1,000,000/s and >= 5x",
        rate >= 1_000_000 and ratio >= 5.0,
        compiled_ns_per_add=round(per_add["compiled"] * 1e9, 1),
        reference_ns_per_add=round(per_add["reference"] * 1e9, 1),
        ratio=round(ratio, 2),
        devices=args.devices,
        heartbeats_per_window=WINDOW,
        groups=len(GROUPS),
    )
    small = make_rounds(SMALL_FLEET)
    in_cache = bench_add(small, len(small[0]), 10 * args.repeat)
    report.add(
        f"add() heartbeats/s, one core, {SMALL_FLEET:,} devices (all in cache)",
        f"{1.0 / in_cache['compiled']:,.0f}/s compiled vs "
        f"{1.0 / in_cache['reference']:,.0f}/s reference "
        f"({in_cache['reference'] / in_cache['compiled']:.1f}x)",
        "informational",
        True,
        compiled_ns_per_add=round(in_cache["compiled"] * 1e9, 1),
        reference_ns_per_add=round(in_cache["reference"] * 1e9, 1),
        devices=SMALL_FLEET,
    )

    drains = bench_drains(rounds, args.repeat)
    ms: dict[str, dict[str, float]] = {
        k: {name: s * 1e3 for name, s in v.items()} for k, v in drains.items()
    }
    drain_ratio = ms["drain"]["reference"] / ms["drain"]["compiled"]
    report.add(
        "drain() per 10k devices",
        f"{ms['drain']['compiled']:.2f} ms compiled vs {ms['drain']['reference']:.2f} ms "
        f"reference ({drain_ratio:.1f}x)",
        "faster than reference",
        drain_ratio > 1.0,
        compiled_ms=round(ms["drain"]["compiled"], 3),
        reference_ms=round(ms["drain"]["reference"], 3),
        ratio=round(drain_ratio, 2),
    )
    copy_ms = ms["copy"]
    copy_ratio = copy_ms["reference"] / copy_ms["compiled"]
    report.add(
        "drain_copy_records() per 10k devices",
        f"{copy_ms['compiled']:.2f} ms compiled vs {copy_ms['reference']:.2f} ms reference "
        f"({copy_ratio:.1f}x); Python fromtimestamp conversion "
        f"{copy_ms['python fromtimestamp']:.2f} ms",
        "faster than reference and than Python conversion",
        copy_ms["compiled"] < min(copy_ms["reference"], copy_ms["python fromtimestamp"]),
        compiled_ms=round(copy_ms["compiled"], 3),
        reference_ms=round(copy_ms["reference"], 3),
        python_fromtimestamp_ms=round(copy_ms["python fromtimestamp"], 3),
        ratio=round(copy_ratio, 2),
    )
    redis_ms = ms["redis"]
    report.add(
        "Redis flush CPU per 10k devices (drain + redis-py pipeline + packing)",
        f"{redis_ms['compiled']:.1f} ms compiled vs {redis_ms['reference']:.1f} ms reference",
        "informational",
        True,
        compiled_ms=round(redis_ms["compiled"], 3),
        reference_ms=round(redis_ms["reference"], 3),
    )
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
