# One command per task. The README names the two that matter: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: demo serve bootstrap build test test-pure lint fmt proto proto-check bench-core clean
.PHONY: fuzz-filter

demo: bootstrap          ## set up everything, then run a deployment with simulated devices
	$(BIN)/fleetd demo

serve: bootstrap
	$(BIN)/fleetd serve

bootstrap:
	@scripts/bootstrap.sh

build:                   ## rebuild both compiled extensions
	$(PY) -m pip install --quiet ./core_ext/rust
	$(PY) setup.py --quiet build_ext --inplace

test: bootstrap          ## the whole test suite (core_ext tests run on both implementations)
	$(BIN)/pytest

test-pure: bootstrap     ## the whole suite with the reference core_ext forced
	FLEETD_PURE_PYTHON=1 $(BIN)/pytest

lint: bootstrap          ## ruff, mypy strict, stubtest, cargo fmt/clippy, buf lint, codegen freshness
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PY) -m mypy.stubtest fleetd_native core_ext._batcher
	cd core_ext/rust && cargo fmt --check && cargo clippy --release --quiet -- -D warnings
	$(BIN)/buf lint
	$(PY) scripts/gen_proto.py --check

fmt:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	cd core_ext/rust && cargo fmt

bench-core: bootstrap    ## the core_ext benchmarks: ratios side by side, JSON, bench/RESULTS.md
	$(PY) -m bench.core_identity
	$(PY) -m bench.core_filter
	$(PY) -m bench.core_batcher
	$(PY) -m bench.core_checksum

fuzz-filter: bootstrap   ## fuzz the filter parser, compiled vs reference (RUNS=500000, seed 1)
	scratch=$$(mktemp -d) && $(PY) core_ext/fuzz/filter_fuzz.py -seed=1 -runs=$${RUNS:-500000} \
		-max_len=5000 -dict=core_ext/fuzz/filter.dict "$$scratch" core_ext/fuzz/corpus/filter

proto:                   ## regenerate Python code from proto/
	$(PY) scripts/gen_proto.py

proto-check:
	$(PY) scripts/gen_proto.py --check

clean:
	rm -rf build core_ext/_*.c core_ext/*.so core_ext/rust/target
