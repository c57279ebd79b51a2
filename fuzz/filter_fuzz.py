"""Fuzz the filter parser: the compiled module against the reference, on any text.

Run it (bounded, reproducible; what ``make fuzz-filter`` does)::

    scratch=$(mktemp -d) && .venv/bin/python fuzz/filter_fuzz.py -seed=1 \
        -runs=200000 -max_len=5000 -dict=fuzz/filter.dict "$scratch" fuzz/corpus/filter

libFuzzer writes new inputs to the first directory (a scratch one, so the committed corpus
stays put) and reads the seeds from the second. Each input is decoded as UTF-8 with
``surrogateescape`` (invalid bytes become unpaired surrogates, which must be refused the
same way by both), compiled by both implementations, and must give the same FilterError
(message and position) or the same SQL and bind values; a compiled filter must then select
the same rows of a small fleet by ``evaluate`` and by ``matches`` in both. An input that
takes longer than 100 ms (in each of three runs), a Rust panic, or any disagreement stops
the run with the input saved as ``crash-*``. Coverage guidance comes from the instrumented
reference parser.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from types import ModuleType
from typing import Any

import atheris
from atheris.import_hook import instrument_imports

with instrument_imports():
    import core_ext.reference.filter as reference

import fleetd_native as compiled

NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC).timestamp()
SLOW = 0.1
FLEET: list[dict[str, object]] = [
    {
        "id": "d0",
        "name": "kitchen pi",
        "type": "raspberry-pi",
        "status": "online",
        "cpu_usage": 95.0,
        "uptime_seconds": 3600,
        "last_seen": dt.datetime(2024, 6, 1, 11, 55, tzinfo=dt.UTC),
        "metadata": {"k": "v", "location": "a b"},
        "tags": ["prod", "x*y"],
    },
    {"id": "d1", "name": "50%_off\\", "type": "esp32", "status": "offline", "cpu_usage": 80},
    {"id": "d2", "status": "error", "registered_at": 0.0, "metadata": {"k": ""}},
]
SNAPSHOTS = (
    reference.FleetSnapshot.from_records(FLEET),
    compiled.FleetSnapshot.from_records(FLEET),
)


def outcome(module: ModuleType, snapshot: Any, text: str) -> tuple[Any, ...]:
    """The error, or the SQL and the rows by evaluate() and by matches()."""
    try:
        f = module.compile_filter(text, now=NOW)
    except module.FilterError as e:
        return ("error", str(e), e.position)
    matched = [i for i, record in enumerate(FLEET) if f.matches(record)]
    return ("ok", f.to_sql(7), list(f.evaluate(snapshot)), matched)


def check(text: str) -> None:
    ref = outcome(reference, SNAPSHOTS[0], text)
    comp = outcome(compiled, SNAPSHOTS[1], text)
    if ref != comp:
        raise AssertionError(f"implementations disagree on {text!r}: {ref} != {comp}")
    if ref[0] == "ok" and ref[2] != ref[3]:
        raise AssertionError(f"evaluate and matches disagree on {text!r}: {ref}")


def timed(text: str) -> float:
    started = time.perf_counter()
    check(text)
    return time.perf_counter() - started


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    # A slow run is timed twice more: the input fails only when every run is slow, so a
    # stall of a shared machine is not reported as a slow input.
    if timed(text) > SLOW and min(timed(text), timed(text)) > SLOW:
        raise AssertionError(f"slower than {SLOW * 1e3:.0f} ms every time on {text!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
