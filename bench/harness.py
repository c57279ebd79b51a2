"""Shared benchmark plumbing: timing, side-by-side ratios, JSON output, RESULTS.md rows.

Every benchmark (1) asserts that what it times is correct, (2) times the candidates in
the same invocation, interleaved, so a noisy shared machine affects them alike, (3) writes
``bench/results/<group>.json`` and (4) replaces its group's rows in ``bench/RESULTS.md``
with the figures, the command that produced them, the machine and the date.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_DIR = BENCH_DIR / "results"


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def best_of(fn: Callable[[], object], *, repeat: int = 7, number: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def interleaved(
    candidates: dict[str, Callable[[], object]], *, repeat: int = 7, number: int = 1
) -> dict[str, float]:
    """Median seconds per call for each candidate, timed in alternation (A B A B ...)."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(values) for name, values in samples.items()}


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    figure: str
    target: str
    met: bool
    details: dict[str, float | int | str] = field(default_factory=dict)


@dataclass
class Report:
    group: str
    command: str
    rows: list[Row] = field(default_factory=list)

    def add(
        self,
        benchmark: str,
        figure: str,
        target: str,
        met: bool,
        **details: float | int | str,
    ) -> None:
        self.rows.append(Row(benchmark, figure, target, met, dict(details)))
        mark = "ok " if met else "MISS"
        print(f"[{mark}] {benchmark}: {figure} (target {target})", flush=True)

    def write(self) -> None:
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        RESULTS_DIR.mkdir(exist_ok=True)
        payload = {
            "group": self.group,
            "command": self.command,
            "machine": machine(),
            "date": when,
            "rows": [asdict(r) for r in self.rows],
        }
        (RESULTS_DIR / f"{self.group}.json").write_text(json.dumps(payload, indent=2) + "\n")
        _update_markdown(self, when)


_HEADER = "| group | benchmark | figure | target | met | command | machine | date |"
_RULE = "|---|---|---|---|---|---|---|---|"


def _update_markdown(report: Report, when: str) -> None:
    intro = (
        "# Benchmark results\n\n"
        "Written by the benchmarks themselves (`bench/harness.py`); do not edit rows by "
        "hand. Each row's figures come from one run of the command beside it, with the "
        "comparison measured side by side in the same invocation. JSON with the raw "
        "numbers is in `bench/results/`.\n\n"
    )
    rows: list[str] = []
    if RESULTS_MD.exists():
        rows = [
            line
            for line in RESULTS_MD.read_text().splitlines()
            if line.startswith("| ")
            and line not in (_HEADER, _RULE)
            and not line.startswith(f"| {report.group} |")
        ]
    m = machine()
    for r in report.rows:
        rows.append(
            f"| {report.group} | {r.benchmark} | {r.figure} | {r.target} | "
            f"{'yes' if r.met else 'NO'} | `{report.command}` | {m} | {when} |"
        )
    rows.sort(key=lambda line: line.split("|")[1].strip())
    RESULTS_MD.write_text(intro + "\n".join([_HEADER, _RULE, *rows]) + "\n")
