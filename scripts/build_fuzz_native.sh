#!/usr/bin/env bash
# Builds fleetd_native with SanitizerCoverage for coverage-guided fuzzing with atheris, into
# the directory given (default build/fuzz-native), as a plain module that shadows the
# installed package when that directory comes first on sys.path. Debug assertions and
# overflow checks are on, so arithmetic overflow is a crash too. Stable Rust is enough.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/fuzz-native}
root=$PWD
target=$(rustc -vV | sed -n 's/^host: //p')
# With an explicit --target, RUSTFLAGS reach only the crate's own code and dependencies,
# not build scripts and proc macros (which would not link without libFuzzer).
(
    cd core_ext/rust
    PYO3_PYTHON="$root/.venv/bin/python" \
    PYO3_BUILD_EXTENSION_MODULE=1 \
    CARGO_TARGET_DIR="$root/build/fuzz-target" \
    CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
    CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
    RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=3 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
-C llvm-args=-sanitizer-coverage-trace-compares" \
    cargo build --quiet --release --lib --target "$target"
)
mkdir -p "$out"
cp "build/fuzz-target/$target/release/libfleetd_native.so" "$out/fleetd_native.abi3.so"
echo "fuzz build: $out/fleetd_native.abi3.so"
