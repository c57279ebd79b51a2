#!/usr/bin/env python3
"""Fuzz the compiled identity parser: ``python fuzz/identity_fuzz.py [libFuzzer args]``.

Every input goes to ``fleetd_native.extract_identity`` and to an ``IdentityCache``. A crash
is anything but an identity or an ``IdentityError``: a Rust panic (``PanicException``), any
other exception, the cache answering differently from the parser, or an input taking longer
than 100 ms (timed again once before it counts, so a scheduler hiccup is not a crash).
libFuzzer stops at the first crash and writes the input to ``crash-<sha1>``.

With ``--differential`` each input also goes to the pure-Python reference. Disagreements
are not crashes: they are written to ``--disagreements`` (default
``build/fuzz/identity-disagreements``) and counted in the summary printed at exit.

Coverage comes from the Rust code when ``FLEETD_FUZZ_NATIVE`` names a directory holding a
``fleetd_native`` built with SanitizerCoverage (``make fuzz-identity`` builds one); without
it the installed extension is fuzzed blind (random mutation of the seeds only).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import atheris

SLOW_SECONDS = 0.1
CACHE_CAPACITY = 64


FIELDS = (
    "device_id",
    "fleet",
    "serial",
    "fingerprint",
    "not_before",
    "not_after",
    "key_algorithm",
)


def fields(identity: object) -> tuple[Any, ...]:
    return tuple(getattr(identity, name) for name in FIELDS)


class SlowInput(Exception):
    """An input took longer than the per-input budget, twice in a row."""


class CacheDisagreement(Exception):
    """``IdentityCache.get`` and ``extract_identity`` answered differently."""


def load_native() -> ModuleType:
    """``fleetd_native``: the instrumented build if ``FLEETD_FUZZ_NATIVE`` names one.

    The instrumented library calls libFuzzer's coverage hooks. atheris bundles libFuzzer in
    its ``core_with_libfuzzer`` module: import that first with global symbols, so that the
    hooks resolve and atheris later finds the very same module (and libFuzzer) in use.
    """
    instrumented = os.environ.get("FLEETD_FUZZ_NATIVE")
    if instrumented and "fleetd_native" in sys.modules:
        raise SystemExit(
            "fleetd_native was imported before the instrumented build could be loaded: run "
            "this file as a script (python fuzz/identity_fuzz.py), not with -m"
        )
    if instrumented:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | os.RTLD_GLOBAL)
        try:
            importlib.import_module("atheris.core_with_libfuzzer")
        finally:
            sys.setdlopenflags(flags)
        sys.path.insert(0, os.path.abspath(instrumented))
    import fleetd_native

    if instrumented and not fleetd_native.__file__.startswith(os.path.abspath(instrumented)):
        raise SystemExit(f"FLEETD_FUZZ_NATIVE={instrumented} holds no fleetd_native build")
    return fleetd_native


class Harness:
    def __init__(self, native: ModuleType, differential: bool, disagreements: Path) -> None:
        self.native = native
        self.cache = native.IdentityCache(CACHE_CAPACITY)
        self.reference: ModuleType | None = None
        if differential:
            import core_ext.reference

            self.reference = core_ext.reference
        self.disagreements = disagreements
        self.runs = 0
        self.slowest = 0.0
        self.disagreement_count = 0

    def outcome(self, module: ModuleType, data: bytes) -> tuple[Any, ...]:
        """The identity's fields, or the refusal's prefix (the text before the first colon)."""
        try:
            identity = module.extract_identity(data)
        except module.IdentityError as error:
            return ("refused", str(error).split(":", 1)[0])
        return fields(identity)

    def timed_outcome(self, data: bytes) -> tuple[Any, ...]:
        for attempt in range(2):
            start = time.perf_counter()
            result = self.outcome(self.native, data)
            elapsed = time.perf_counter() - start
            if elapsed <= SLOW_SECONDS:
                break
            if attempt:
                raise SlowInput(f"{len(data)}-byte input took {elapsed * 1000:.1f} ms")
        self.slowest = max(self.slowest, elapsed)
        return result

    def test_one_input(self, data: bytes) -> None:
        self.runs += 1
        compiled = self.timed_outcome(data)
        try:
            cached = self.outcome_of_cache(data)
        except self.native.IdentityError as error:
            cached = ("refused", str(error).split(":", 1)[0])
        if cached != compiled:
            raise CacheDisagreement(f"cache {cached!r} != parser {compiled!r}")
        if self.reference is not None:
            try:
                reference = self.outcome(self.reference, data)
            except Exception as error:  # a reference failure is a finding too
                reference = ("reference raised", type(error).__name__, str(error)[:200])
            if reference != compiled:
                self.record(data, compiled, reference)

    def outcome_of_cache(self, data: bytes) -> tuple[Any, ...]:
        return fields(self.cache.get(data))

    def record(self, data: bytes, compiled: tuple[Any, ...], reference: tuple[Any, ...]) -> None:
        self.disagreement_count += 1
        self.disagreements.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(data).hexdigest()[:16]
        (self.disagreements / name).write_bytes(data)
        (self.disagreements / f"{name}.txt").write_text(
            f"compiled:  {compiled!r}\nreference: {reference!r}\n"
        )

    def summary(self) -> None:
        sys.stderr.write(
            f"\n#fuzz-summary runs={self.runs} slowest_ms={self.slowest * 1000:.2f} "
            f"disagreements={self.disagreement_count}"
            + (f" (inputs in {self.disagreements})" if self.disagreement_count else "")
            + "\n"
        )
        sys.stderr.flush()


_exit_handlers: list[object] = []


def at_exit(handler: Callable[[], None]) -> None:
    """Run ``handler`` when libFuzzer ends the process: it calls C ``exit()`` without
    finalising Python, so Python's ``atexit`` never runs."""
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: handler())
    _exit_handlers.append(callback)  # kept alive until the end
    ctypes.CDLL(None).__cxa_atexit(callback, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Other arguments go to libFuzzer (corpus directories, -runs=, -seed=, ...).",
    )
    parser.add_argument("--differential", action="store_true", help="compare with the reference")
    parser.add_argument(
        "--disagreements", type=Path, default=Path("build/fuzz/identity-disagreements")
    )
    args, libfuzzer_args = parser.parse_known_args()
    harness = Harness(load_native(), args.differential, args.disagreements)
    at_exit(harness.summary)
    atheris.Setup([sys.argv[0], *libfuzzer_args], harness.test_one_input, internal_libfuzzer=True)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
