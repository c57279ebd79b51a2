#!/usr/bin/env bash
# Sets up everything fleetd needs from nothing: a venv, the Python dependencies, the Rust
# (maturin) extension and the Cython extension. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need() { command -v "$1" >/dev/null 2>&1 || { echo "bootstrap: '$1' is required ($2)" >&2; exit 1; }; }
need "$PYTHON" "CPython 3.11+ with headers"
need cargo "the Rust toolchain, to build core_ext/rust"
need cc "a C compiler, to build the Cython extension"

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"bootstrap: Python 3.11+ required, found {sys.version.split()[0]}")
PY

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# A fingerprint of everything that affects the build; skip the work when unchanged.
stamp="$VENV/.fleetd-bootstrap"
fingerprint=$(cat setup.cfg setup.py pyproject.toml core_ext/rust/Cargo.toml core_ext/rust/Cargo.lock \
    core_ext/rust/pyproject.toml $(find core_ext/rust/src -name '*.rs' | sort) core_ext/*.pyx \
    2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] \
    && "$PY" -c "import fleetd_native, core_ext._batcher" 2>/dev/null; then
    exit 0
fi

echo "bootstrap: installing dependencies and building core_ext (first run takes a few minutes)"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet ./core_ext/rust
"$PY" -m pip install --quiet -e '.[dev,bench]'
# Editable installs do not always place compiled modules beside the sources.
"$PY" setup.py --quiet build_ext --inplace
"$PY" -c "import fleetd_native, core_ext._batcher" \
    || { echo "bootstrap: compiled core_ext modules did not import" >&2; exit 1; }
echo "$fingerprint" > "$stamp"
echo "bootstrap: ready ($VENV)"
