"""Chunk checksumming: single-stream and parallel manifest throughput against OpenSSL.

``python -m bench.core_checksum`` checks that every implementation and thread count gives
the same manifest, then, in rounds that alternate the candidates (so a busy shared machine
slows them alike):

- single stream: ``ChunkHasher`` fed 1 MiB writes (compiled on two threads and on one, the
  hashlib reference), ``hashlib.sha256`` alone, and ``openssl speed -evp sha256 -bytes
  1048576`` run in the same rounds; the target is >= 0.9x OpenSSL's one-core SHA-256;
- ``hash_file`` of a page-cached file of a few hundred MiB in a temp dir, for 1 to N threads
  where N is the cores this process may really use (``os.sched_getaffinity``).

A manifest is two SHA-256 digests of every byte (per chunk and whole file), so one core
cannot reach OpenSSL's single-digest speed; and the whole-file digest is sequential, so no
thread count can beat one core's SHA-256. CPU seconds are reported beside wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import core_ext.compiled as compiled
import core_ext.reference as reference
from bench.harness import Report

MiB = 1 << 20
OPENSSL = ["openssl", "speed", "-evp", "sha256", "-bytes", "1048576", "-seconds", "1"]


def openssl_throughput() -> float:
    """Bytes per second OpenSSL reports for SHA-256 over 1 MiB blocks, one core."""
    out = subprocess.run(OPENSSL, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^sha256\s+([\d.]+)k\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"cannot read the output of {' '.join(OPENSSL)}:\n{out}")
    return float(match[1]) * 1000


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def rounds(
    candidates: dict[str, Callable[[], object]], size: int, repeat: int
) -> dict[str, tuple[float, float]]:
    """Median (bytes/s, CPU s per GB) per candidate, alternating them in each round.

    OpenSSL reports its own throughput; its CPU time is not ours to measure (NaN).
    """
    speed: dict[str, list[float]] = {name: [] for name in [*candidates, "openssl"]}
    cpu: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            wall, used = timed(fn)
            speed[name].append(size / wall)
            cpu[name].append(used / size * 1e9)
        speed["openssl"].append(openssl_throughput())
    return {
        name: (
            statistics.median(values),
            statistics.median(cpu[name]) if name in cpu else float("nan"),
        )
        for name, values in speed.items()
    }


class Hasher(Protocol):
    def update(self, data: memoryview, /) -> None: ...
    def finish(self) -> ManifestLike: ...


class ManifestLike(Protocol):
    @property
    def sha256(self) -> str: ...
    @property
    def chunks(self) -> tuple[str, ...]: ...


def stream(
    make: Callable[..., Hasher], data: memoryview, threads: int, write: int = MiB
) -> Callable[[], ManifestLike]:
    """Feed ``data`` to a new hasher in ``write``-byte pieces; the manifest."""

    def run() -> ManifestLike:
        hasher = make(threads=threads)
        for start in range(0, len(data), write):
            hasher.update(data[start : start + write])
        return hasher.finish()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream-mib", type=int, default=128)
    parser.add_argument("--file-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    report = Report("core_checksum", "python -m bench.core_checksum")
    # The machine may be shared: every row records how busy it was when the run started.
    load = os.getloadavg()[0]
    cores = len(os.sched_getaffinity(0))
    data = memoryview(os.urandom(args.stream_mib * MiB))

    # --- single stream ---------------------------------------------------------------------
    expected = stream(reference.ChunkHasher, data, 1)()
    assert expected.sha256 == hashlib.sha256(data).hexdigest()
    for threads in (1, 2):
        manifest = stream(compiled.ChunkHasher, data, threads)()
        assert (manifest.sha256, manifest.chunks) == (expected.sha256, expected.chunks)

    results = rounds(
        {
            "compiled, threads=2": stream(compiled.ChunkHasher, data, 2),
            "compiled, threads=1": stream(compiled.ChunkHasher, data, 1),
            "reference": stream(reference.ChunkHasher, data, 1),
            "hashlib.sha256 alone": lambda: hashlib.sha256(data).digest(),
        },
        len(data),
        args.repeat,
    )
    openssl = results["openssl"][0]
    for name, target in [
        ("compiled, threads=2", ">= 0.9x openssl"),
        ("compiled, threads=1", "none (one core)"),
        ("reference", "none (comparison)"),
        ("hashlib.sha256 alone", "none (one digest)"),
    ]:
        speed, cpu = results[name]
        ratio = speed / openssl
        report.add(
            f"single stream manifest, 1 MiB writes: {name}"
            if name != "hashlib.sha256 alone"
            else "single stream, whole-file digest only: hashlib.sha256",
            f"{speed / 1e6:.0f} MB/s = {ratio:.2f}x openssl ({openssl / 1e6:.0f} MB/s, same "
            f"rounds); {cpu:.2f} CPU s/GB",
            target,
            ratio >= 0.9 if target.startswith(">=") else True,
            bytes_per_second=speed,
            openssl_bytes_per_second=openssl,
            ratio=ratio,
            cpu_seconds_per_gb=cpu,
            stream_bytes=len(data),
            load_average_1m_at_start=load,
        )

    # --- parallel hash_file ----------------------------------------------------------------
    with tempfile.TemporaryDirectory(prefix="fleetd-bench-") as tmp:
        path = Path(tmp) / "artifact.bin"
        with path.open("wb") as file:
            for _ in range(args.file_mib // 16):
                file.write(os.urandom(16 * MiB))
        size = path.stat().st_size
        on_disk = reference.hash_file(path)  # also brings the file into the page cache
        counts = sorted({*(2**k for k in range(cores.bit_length()) if 2**k <= cores), cores})
        for threads in counts:
            manifest = compiled.hash_file(path, threads=threads)
            assert (manifest.sha256, manifest.chunks) == (on_disk.sha256, on_disk.chunks)

        def hash_with(threads: int) -> Callable[[], object]:
            return lambda: compiled.hash_file(path, threads=threads)

        results = rounds(
            {
                **{f"threads={t}": hash_with(t) for t in counts},
                "reference": lambda: reference.hash_file(path),
            },
            size,
            args.repeat,
        )
    openssl = results["openssl"][0]
    single = results["threads=1"][0]
    for threads in counts:
        speed, cpu = results[f"threads={threads}"]
        at_most = threads == cores
        report.add(
            f"hash_file, {size // MiB} MiB page-cached, threads={threads} of {cores} cores",
            f"{speed / 1e6:.0f} MB/s = {speed / single:.2f}x threads=1, "
            f"{speed / openssl:.2f}x openssl ({openssl / 1e6:.0f} MB/s); {cpu:.2f} CPU s/GB",
            ">= 0.9x openssl (the sequential whole-file digest's ceiling)"
            if at_most
            else "none (scaling step)",
            speed / openssl >= 0.9 if at_most else True,
            bytes_per_second=speed,
            speedup_vs_one_thread=speed / single,
            openssl_bytes_per_second=openssl,
            cpu_seconds_per_gb=cpu,
            cores_available=cores,
            file_bytes=size,
            load_average_1m_at_start=load,
        )
    speed, cpu = results["reference"]
    report.add(
        f"hash_file, {size // MiB} MiB page-cached: reference (hashlib, one thread)",
        f"{speed / 1e6:.0f} MB/s = {speed / openssl:.2f}x openssl; {cpu:.2f} CPU s/GB",
        "none (comparison)",
        True,
        bytes_per_second=speed,
        cpu_seconds_per_gb=cpu,
        load_average_1m_at_start=load,
    )
    report.write()


if __name__ == "__main__":
    main()
