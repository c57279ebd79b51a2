"""Quantile sketches: a day of per-minute rollups merged, against the exact percentiles.

    python -m bench.core_sketch [--values-per-minute N] [--repeat N]

Builds one day of per-minute sketches (1,440 minutes of ~1,000 values each, 1.44M values)
for two metrics shaped like a fleet's: ``cpu_usage`` (percent: a diurnal beta mix, 2%
idle zeros) and ``latency_ms`` (lognormal, heavy tail, 0.5% slow outliers). Before timing,
asserts that the compiled and the reference implementation give byte-identical sketches
for every minute and for the merged day, that the merged day equals the sketch of all the
values at once, and that count/min/max are exact. Then:

(a) P50/P95/P99 of the merged day against the exact percentiles of the 1.44M values
    (sorted; the element of rank floor(q * (n - 1))): relative error, target <= alpha;
(b) ``add_many`` of one minute (a list of ~1,000 floats) and ``merge`` of the 1,440 minutes
    into a day, compiled vs reference, interleaved; target >= 10x for ``add_many``;
    ``to_bytes``/``from_bytes`` cost and sizes, what a bytea rollup row holds.

Writes bench/results/core_sketch.json and the core_sketch rows of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable
from typing import Any

import core_ext.compiled as compiled
import core_ext.reference as reference
from bench.harness import Report, interleaved

ALPHA = 0.01
MINUTES = 1440
QUANTILES = (0.5, 0.95, 0.99)


def cpu_minute(rng: random.Random, minute: int, n: int) -> list[float]:
    """Percent CPU of n devices in one minute: busier in the day, some idle at exactly 0."""
    load = 0.5 + 0.4 * math.sin(2 * math.pi * minute / MINUTES)
    return [
        0.0 if rng.random() < 0.02 else 100.0 * rng.betavariate(1 + 4 * load, 5 - 3 * load)
        for _ in range(n)
    ]


def latency_minute(rng: random.Random, minute: int, n: int) -> list[float]:
    """Request latency in ms: lognormal around 20 ms, a slow tail of outliers."""
    shift = 0.3 * math.sin(2 * math.pi * minute / MINUTES)
    return [
        rng.lognormvariate(3.0 + shift, 0.6) * (50.0 if rng.random() < 0.005 else 1.0)
        for _ in range(n)
    ]


METRICS: dict[str, Callable[[random.Random, int, int], list[float]]] = {
    "cpu_usage": cpu_minute,
    "latency_ms": latency_minute,
}


def day_of(
    metric: Callable[[random.Random, int, int], list[float]], per_minute: int, seed: int
) -> list[list[float]]:
    rng = random.Random(seed)
    return [metric(rng, minute, per_minute + rng.randint(-50, 50)) for minute in range(MINUTES)]


def sketches(core: Any, minutes: list[list[float]]) -> list[Any]:
    out = []
    for values in minutes:
        sketch = core.Sketch(ALPHA)
        sketch.add_many(values)
        out.append(sketch)
    return out


def merged(core: Any, parts: list[Any]) -> Any:
    day = core.Sketch(ALPHA)
    for part in parts:
        day.merge(part)
    return day


def check(minutes: list[list[float]]) -> tuple[Any, list[Any], list[Any]]:
    """Assert both implementations agree everywhere; the compiled day and both minute lists."""
    fast, slow = sketches(compiled, minutes), sketches(reference, minutes)
    for a, b in zip(fast, slow, strict=True):
        assert a.to_bytes() == b.to_bytes(), "per-minute sketches differ"
    day, day_ref = merged(compiled, fast), merged(reference, slow)
    assert day.to_bytes() == day_ref.to_bytes(), "merged days differ"
    values = [v for minute in minutes for v in minute]
    whole = compiled.Sketch(ALPHA)
    whole.add_many(values)
    assert [day.quantile(q) for q in (0, *QUANTILES, 1)] == [
        whole.quantile(q) for q in (0, *QUANTILES, 1)
    ], "merged day differs from the sketch of all values"
    assert (day.count, day.min, day.max) == (len(values), min(values), max(values))
    assert compiled.Sketch.from_bytes(day.to_bytes()).to_bytes() == day.to_bytes()
    return day, fast, slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values-per-minute", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    command = "python -m bench.core_sketch"
    report = Report("core_sketch", command)

    days = {
        name: day_of(metric, args.values_per_minute, seed)
        for seed, (name, metric) in enumerate(METRICS.items())
    }

    # (a) accuracy of the merged day ------------------------------------------------------
    for name, minutes in days.items():
        day, fast, _ = check(minutes)
        ordered = sorted(v for minute in minutes for v in minute)
        errors: dict[str, float] = {}
        details: dict[str, float | int | str] = {"values": len(ordered), "alpha": ALPHA}
        for q in QUANTILES:
            true = ordered[math.floor(q * (len(ordered) - 1))]
            estimate = day.quantile(q)
            assert estimate is not None
            label = f"p{round(q * 100)}"
            errors[label] = abs(estimate - true) / abs(true)
            details[f"{label}_exact"] = true
            details[f"{label}_sketch"] = estimate
            details[f"{label}_relative_error"] = errors[label]
        worst = max(errors.values())
        sizes = [len(s.to_bytes()) for s in fast]
        details["minute_bytes_median"] = sorted(sizes)[len(sizes) // 2]
        details["day_bytes"] = len(day.to_bytes())
        report.add(
            f"{name}: P50/P95/P99 of 1,440 merged per-minute sketches vs exact "
            f"({len(ordered):,} values)",
            ", ".join(f"{k.upper()} {v * 100:.3f}%" for k, v in errors.items())
            + f" relative error (alpha {ALPHA * 100:g}%); {details['minute_bytes_median']} B"
            f" per minute, {details['day_bytes']} B per day",
            f"<= alpha ({ALPHA * 100:g}%)",
            worst <= ALPHA,
            **details,
        )

    # (b) cost ----------------------------------------------------------------------------
    minutes = days["latency_ms"]
    batch = minutes[0]

    def add_many(core: Any) -> Callable[[], object]:
        def run() -> object:
            sketch = core.Sketch(ALPHA)
            sketch.add_many(batch)
            return sketch

        return run

    seconds = interleaved(
        {"compiled": add_many(compiled), "reference": add_many(reference)},
        repeat=args.repeat,
        number=50,
    )
    ratio = seconds["reference"] / seconds["compiled"]
    per_value = {name: s / len(batch) * 1e9 for name, s in seconds.items()}
    millions = len(batch) / seconds["compiled"] / 1e6
    report.add(
        f"add_many of one minute ({len(batch)} floats, a list) into a new sketch",
        f"compiled {per_value['compiled']:.1f} ns/value ({millions:.0f}M"
        f" values/s), reference {per_value['reference']:.0f} ns/value: {ratio:.1f}x",
        ">= 10x the reference",
        ratio >= 10,
        compiled_ns_per_value=per_value["compiled"],
        reference_ns_per_value=per_value["reference"],
        ratio=ratio,
    )

    full_fast = sketches(compiled, minutes)
    full_slow = sketches(reference, minutes)
    merge_seconds = interleaved(
        {
            "compiled": lambda: merged(compiled, full_fast),
            "reference": lambda: merged(reference, full_slow),
        },
        repeat=args.repeat,
    )
    merge_ratio = merge_seconds["reference"] / merge_seconds["compiled"]
    per_merge = {name: s / MINUTES * 1e6 for name, s in merge_seconds.items()}
    report.add(
        "merge of 1,440 per-minute sketches into one day",
        f"compiled {merge_seconds['compiled'] * 1e3:.2f} ms ({per_merge['compiled']:.2f} us per"
        f" merge), reference {merge_seconds['reference'] * 1e3:.0f} ms: {merge_ratio:.1f}x",
        "side by side (no target)",
        True,
        compiled_us_per_merge=per_merge["compiled"],
        reference_us_per_merge=per_merge["reference"],
        ratio=merge_ratio,
    )

    blobs = [s.to_bytes() for s in full_fast]
    codec_seconds = interleaved(
        {
            "compiled": lambda: [compiled.Sketch.from_bytes(s.to_bytes()) for s in full_fast],
            "reference": lambda: [reference.Sketch.from_bytes(s.to_bytes()) for s in full_slow],
        },
        repeat=args.repeat,
    )
    codec_ratio = codec_seconds["reference"] / codec_seconds["compiled"]
    per_trip = {name: s / MINUTES * 1e6 for name, s in codec_seconds.items()}
    median_size = sorted(len(b) for b in blobs)[len(blobs) // 2]
    report.add(
        "to_bytes + from_bytes of a per-minute sketch (a bytea rollup row)",
        f"compiled {per_trip['compiled']:.2f} us, reference {per_trip['reference']:.0f} us:"
        f" {codec_ratio:.1f}x; {median_size} B median",
        "side by side (no target)",
        True,
        compiled_us=per_trip["compiled"],
        reference_us=per_trip["reference"],
        ratio=codec_ratio,
        median_bytes=median_size,
    )
    report.write()


if __name__ == "__main__":
    main()
