"""HeartbeatBatcher analytics (docs/analytics.md 2.2-2.4): network rates, per-device
sampling and rollup sketches, every case on the compiled and the reference class, values
checked against an independent computation."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, TypeAlias

import pytest

import core_ext._batcher as compiled_module
import core_ext.reference.batcher as reference_module
from core_ext._batcher import HeartbeatBatcher as CompiledBatcher
from core_ext.heartbeat_types import METRICS, CopyRecord
from core_ext.reference.batcher import HeartbeatBatcher as ReferenceBatcher
from fleetd.domain.analytics import metrics

Batcher: TypeAlias = CompiledBatcher | ReferenceBatcher
BatcherClass: TypeAlias = type[CompiledBatcher] | type[ReferenceBatcher]

NAN = math.nan
SAMPLE = 16
"""The position of ``sample`` in a CopyRecord (the rates are at 14 and 15)."""


@pytest.fixture(params=[CompiledBatcher, ReferenceBatcher], ids=["compiled", "reference"])
def batcher_cls(request: pytest.FixtureRequest) -> BatcherClass:
    cls: BatcherClass = request.param
    return cls


def new(batcher_cls: BatcherClass, sample_interval: float = 0.0) -> Batcher:
    batcher = batcher_cls(sample_interval=sample_interval)
    batcher.group_id("rpi", "1.0")
    return batcher


def beat(
    batcher: Batcher,
    seen_at: float,
    *,
    device_id: str = "dev-1",
    rx: int = 0,
    tx: int = 0,
    uptime: int = 1000,
    cpu: float = 10.0,
    temperature: float = 40.0,
) -> None:
    batcher.add(
        device_id, 0, seen_at, 1, cpu, 20.0, 30.0, uptime, 512, 1024, 1.0, 8.0, 0.5, 0.5, 0.5,
        temperature, rx, tx,
    )  # fmt: skip


def records(batcher: Batcher) -> list[CopyRecord]:
    """Drain both windows: the COPY records of every device drained."""
    batcher.drain()
    return batcher.drain_copy_records()


def rates(batcher: Batcher) -> tuple[float | None, float | None]:
    [record] = records(batcher)
    return record[14], record[15]


# --- the names are the catalogue's -----------------------------------------------------------


def test_metrics_are_the_catalogues_rolled_up_names_in_order() -> None:
    assert list(METRICS) == [m.name for m in metrics.ROLLED_UP]


def test_both_modules_export_the_same_analytics_constants() -> None:
    for name in ("MAX_COUNTER", "MAX_MEGABYTES", "MAX_SAMPLE_INTERVAL"):
        assert getattr(compiled_module, name) == getattr(reference_module, name), name


@pytest.mark.parametrize("interval", [-1.0, NAN, math.inf, 1e10])
def test_sample_interval_out_of_range_is_refused(
    batcher_cls: BatcherClass, interval: float
) -> None:
    with pytest.raises(ValueError, match="sample_interval"):
        batcher_cls(sample_interval=interval)


def test_sample_interval_is_kept(batcher_cls: BatcherClass) -> None:
    assert batcher_cls(sample_interval=300).sample_interval == 300.0
    assert batcher_cls().sample_interval == 0.0


# --- network rates ---------------------------------------------------------------------------


def test_first_heartbeat_has_no_rate(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 100.0, rx=5000, tx=7000)
    assert rates(batcher) == (None, None)


def test_rate_is_bytes_per_second_since_the_previous_heartbeat(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls, sample_interval=300.0)
    beat(batcher, 100.0, rx=5000, tx=7000)
    records(batcher)
    beat(batcher, 130.0, rx=5000 + 30 * 1234, tx=7000 + 3)
    assert rates(batcher) == (1234.0, 3 / 30)


def test_rate_of_a_counter_that_went_backwards_is_unknown(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 100.0, rx=5000, tx=7000)
    beat(batcher, 110.0, rx=10, tx=7100, uptime=1010)  # rx wrapped; tx still counts
    assert rates(batcher) == (None, 10.0)
    beat(batcher, 120.0, rx=110, tx=7200, uptime=1020)  # counted from the wrapped reading
    assert rates(batcher) == (10.0, 10.0)


def test_rate_after_a_reboot_is_unknown(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 100.0, rx=5000, tx=7000, uptime=1000)
    beat(batcher, 110.0, rx=9000, tx=9000, uptime=5)  # uptime went backwards
    assert rates(batcher) == (None, None)
    beat(batcher, 120.0, rx=9100, tx=9200, uptime=15)
    assert rates(batcher) == (10.0, 20.0)


def test_rate_over_a_gap_longer_than_three_sample_intervals_is_unknown(
    batcher_cls: BatcherClass,
) -> None:
    batcher = new(batcher_cls, sample_interval=60.0)
    beat(batcher, 1000.0, rx=0)
    beat(batcher, 1180.0, rx=1800)  # exactly 3 intervals: still a rate
    assert rates(batcher) == (10.0, 0.0)
    beat(batcher, 1360.5, rx=3600)  # more than 3 intervals
    assert rates(batcher) == (None, None)


def test_without_sampling_any_gap_gives_a_rate(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls, sample_interval=0.0)
    beat(batcher, 0.0, rx=0)
    beat(batcher, 86400.0, rx=864000)
    assert rates(batcher) == (10.0, 0.0)


def test_rate_of_an_older_or_simultaneous_heartbeat_is_unknown(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 100.0, rx=1000)
    beat(batcher, 100.0, rx=2000)  # no time passed
    beat(batcher, 90.0, rx=3000)  # older: not kept as the device's latest reading either
    beat(batcher, 110.0, rx=2100)
    assert rates(batcher) == (10.0, 0.0)


def test_forget_forgets_the_previous_counters(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 100.0, rx=1000)
    batcher.forget("dev-1")
    beat(batcher, 110.0, rx=2000)
    assert rates(batcher) == (None, None)


def test_rates_are_exact_for_counters_beyond_int64(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    top = 2**64 - 1
    beat(batcher, 100.0, rx=top - 3000, tx=2**63 + 1)
    beat(batcher, 103.0, rx=top, tx=2**63 + 301)
    assert rates(batcher) == (1000.0, 100.0)


# --- sampling --------------------------------------------------------------------------------


def sampled_times(batcher: Batcher, times: list[float]) -> list[float]:
    """The heartbeats (one device, drained one by one) that were samples."""
    kept = []
    for seen_at in times:
        beat(batcher, seen_at)
        [record] = records(batcher)
        if record[SAMPLE]:
            kept.append(seen_at)
    return kept


def test_jittered_heartbeats_at_the_interval_are_all_samples(batcher_cls: BatcherClass) -> None:
    # Jitter of ±15 % whose running earliness stays below S/2 (what GCRA's tolerance
    # absorbs): a schedule of interval x (1 ± 0.15) that alternates early and late.
    rng = random.Random(7)
    times, now = [], 1_700_000_000.0
    for i in range(300):
        now += 300.0 * (1.0 + (rng.uniform(0.0, 0.15) if i % 2 else -rng.uniform(0.0, 0.15)))
        times.append(now)
    assert sampled_times(new(batcher_cls, sample_interval=300.0), times) == times


def test_independent_jitter_keeps_nearly_every_heartbeat(batcher_cls: BatcherClass) -> None:
    # Independent ±15 % jitter around S: the earliness is a random walk, and a limiter of
    # exactly 1/S drops a beat when it passes S/2 (docs/analytics.md 2.3 overstates this).
    rng = random.Random(11)
    times, now = [], 0.0
    for _ in range(2000):
        now += 300.0 * (1.0 + rng.uniform(-0.15, 0.15))
        times.append(now)
    kept = sampled_times(new(batcher_cls, sample_interval=300.0), times)
    assert 0.95 * len(times) <= len(kept) < len(times)


@pytest.mark.parametrize("period", [1.0, 29.0, 30.0, 100.0])
def test_faster_heartbeats_are_thinned_to_one_sample_per_interval(
    batcher_cls: BatcherClass, period: float
) -> None:
    interval = 300.0
    times = [1000.0 + i * period for i in range(int(86400 / period))]
    kept = sampled_times(new(batcher_cls, sample_interval=interval), times)
    span = times[-1] - times[0]
    # GCRA's bound: the tolerance S/2 lets one sample come early, once.
    assert len(kept) <= (span + interval / 2) / interval + 1
    assert len(kept) >= span / interval - 1
    # Never closer than S/2.
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert min(gaps) >= interval / 2


def test_sample_interval_zero_keeps_every_heartbeat(batcher_cls: BatcherClass) -> None:
    times = [1.0, 1.0, 1.5, 0.5, 2.0, 2.0001]
    assert sampled_times(new(batcher_cls, sample_interval=0.0), times) == times


def test_first_heartbeat_and_first_after_forget_are_samples(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls, sample_interval=300.0)
    assert sampled_times(batcher, [100.0, 130.0]) == [100.0]
    batcher.forget("dev-1")
    assert sampled_times(batcher, [160.0]) == [160.0]


def test_coalesced_heartbeats_keep_the_later_values_and_or_their_sample_flags(
    batcher_cls: BatcherClass,
) -> None:
    batcher = new(batcher_cls, sample_interval=300.0)
    beat(batcher, 100.0, cpu=1.0)  # a sample
    beat(batcher, 100.5, cpu=2.0)  # not a sample, but the later values
    [record] = records(batcher)
    assert (record[2], record[SAMPLE]) == (2.0, True)
    # Across drains in one COPY window too.
    beat(batcher, 500.0, cpu=3.0)  # a sample
    batcher.drain()
    beat(batcher, 500.5, cpu=4.0)
    batcher.drain()
    [record] = batcher.drain_copy_records()
    assert (record[2], record[SAMPLE]) == (4.0, True)
    beat(batcher, 501.0, cpu=5.0)
    [record] = records(batcher)
    assert (record[2], record[SAMPLE]) == (5.0, False)


# --- sketches --------------------------------------------------------------------------------


def exact_quantile(values: list[float], q: float) -> float:
    """The element of rank floor(q * (n - 1)) in sorted order: the sketch's definition."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@pytest.mark.parametrize("seed", [1, 2])
def test_rollup_sketch_quantiles_are_within_one_percent(
    batcher_cls: BatcherClass, seed: int
) -> None:
    rng = random.Random(seed)
    batcher = new(batcher_cls)
    cpu = [rng.lognormvariate(2.0, 1.0) for _ in range(5000)]
    for i, value in enumerate(cpu):
        beat(batcher, 60.0 + i * 0.01, device_id=f"d{i % 700}", cpu=value)
    [row] = [row for row in batcher.drain().rollups if row[3] == "cpu_usage"]
    sketch = row[8]
    assert row[4:8] == (5000, sketch.sum, min(cpu), max(cpu))
    assert sketch.sum == pytest.approx(math.fsum(cpu), rel=1e-12)
    for q in (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0):
        estimate = sketch.quantile(q)
        assert estimate is not None
        truth = exact_quantile(cpu, q)
        assert abs(estimate - truth) <= 0.01 * abs(truth) * (1 + 1e-9), q


def test_missing_temperature_is_counted_nowhere(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 60.0, device_id="a", temperature=50.0)
    beat(batcher, 61.0, device_id="b", temperature=NAN)
    beat(batcher, 62.0, device_id="c", temperature=70.0)
    rows = {row[3]: row for row in batcher.drain().rollups}
    assert rows["cpu_usage"][4] == 3
    assert rows["temperature"][4:8] == (2, 120.0, 50.0, 70.0)
    assert rows["temperature"][8].quantile(0.0) == 50.0


def test_a_metric_without_readings_has_no_row(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 60.0, device_id="a", temperature=NAN)
    beat(batcher, 61.0, device_id="b", temperature=NAN)
    names = [row[3] for row in batcher.drain().rollups]
    assert "temperature" not in names
    assert "network_rx_bytes" not in names  # first heartbeats: no rates yet
    assert names == [m for m in METRICS if not m.startswith(("temperature", "network"))]


def test_network_rollups_count_known_rates_only(batcher_cls: BatcherClass) -> None:
    batcher = new(batcher_cls)
    beat(batcher, 60.0, device_id="a", rx=0)
    beat(batcher, 70.0, device_id="a", rx=1000)  # 100 B/s
    beat(batcher, 80.0, device_id="a", rx=5, uptime=2)  # reboot: unknown
    beat(batcher, 90.0, device_id="a", rx=3005, uptime=12)  # 300 B/s
    rows = {row[3]: row for row in batcher.drain().rollups}
    assert rows["network_rx_bytes"][4:8] == (2, 400.0, 100.0, 300.0)
    assert rows["cpu_usage"][4] == 4


def test_compiled_and_reference_sketches_have_the_same_bytes() -> None:
    rng = random.Random(3)
    batchers = [new(CompiledBatcher, 60.0), new(ReferenceBatcher, 60.0)]
    counters: dict[str, int] = {}
    for i in range(3000):
        device_id = f"d{rng.randrange(40)}"
        counters[device_id] = counters.get(device_id, 0) + rng.randrange(10**6)
        args: dict[str, Any] = {
            "device_id": device_id,
            "cpu": rng.uniform(0.0, 100.0),
            "rx": counters[device_id],
            "temperature": NAN if rng.random() < 0.2 else rng.uniform(-20.0, 90.0),
        }
        for batcher in batchers:
            beat(batcher, 1000.0 + i * 0.7, **args)
    compiled, reference = (b.drain().rollups for b in batchers)
    assert [(*r[:8], r[8].to_bytes()) for r in compiled] == [
        (*r[:8], r[8].to_bytes()) for r in reference
    ]
