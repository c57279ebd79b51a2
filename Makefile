# One command per task. The README names the two that matter: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: demo serve bootstrap build test test-pure lint fmt proto proto-check bench-core clean
.PHONY: fuzz-filter
.PHONY: agent-wheel agent-arm64-e2e agent-systemd-e2e
.PHONY: bench-load-ceiling bench-load-connections bench-load-storm bench-load-locust bench-load-headline
.PHONY: bench-supervision bench-message-rules
.PHONY: fuzz-identity fuzz-identity-merge

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

lint: bootstrap          ## ruff, mypy strict, import contracts, stubtest, cargo fmt/clippy, buf lint, codegen
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(PY) -m mypy.stubtest fleetd_native core_ext._batcher
	cd core_ext/rust && cargo fmt --check && cargo clippy --release --quiet -- -D warnings
	cd bench/loadgen && cargo fmt --check && CARGO_TARGET_DIR=$(CURDIR)/build/loadgen cargo clippy --release --quiet -- -D warnings
	$(BIN)/buf lint
	$(PY) scripts/gen_proto.py --check

fmt:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	cd core_ext/rust && cargo fmt
	cd bench/loadgen && cargo fmt

bench-core: bootstrap    ## the core_ext benchmarks: ratios side by side, JSON, bench/RESULTS.md
	$(PY) -m bench.core_identity
	$(PY) -m bench.core_filter
	$(PY) -m bench.core_batcher
	$(PY) -m bench.core_checksum
	$(PY) -m bench.core_sketch

# Load benchmarks (bench/load/README.md): each starts embedded storage, provisions devices
# (certificates cached in build/bench-load/), runs its servers on loopback, and writes
# bench/results/<group>.json + .png and its rows of bench/RESULTS.md.
bench-load-ceiling: bootstrap      ## fleetd vs bare grpc.aio echo vs FastAPI: saturation, latency
	$(PY) -m bench.load.ceiling

bench-load-connections: bootstrap  ## mTLS connections held by one gateway process, RSS per device
	$(PY) -m bench.load.connections

bench-load-storm: bootstrap        ## 10,000 devices after a gateway restart: back within 60 s?
	$(PY) -m bench.load.storm

bench-load-headline: bootstrap     ## 1M registered devices, reconnect per heartbeat, 10 min sustained
	$(PY) -m bench.load.headline

bench-load-locust: bootstrap       ## a short headless locust run with gRPC device users
	$(PY) -m bench.load.locust_run

bench-message-rules: bootstrap     ## what checking every request message costs the gateway (decode+check vs decode)
	$(PY) -m bench.message_rules

bench-supervision: bootstrap       ## kill -9 of gateway workers / the control API under load: back ONLINE in <= 10 s?
	$(PY) -m bench.supervision

fuzz-filter: bootstrap   ## fuzz the filter parser, compiled vs reference (RUNS=500000, seed 1)
	scratch=$$(mktemp -d) && $(PY) fuzz/filter_fuzz.py -seed=1 -runs=$${RUNS:-500000} \
		-max_len=5000 -dict=fuzz/filter.dict "$$scratch" fuzz/corpus/filter
# Bounded, reproducible fuzzing of the identity parser (docs/core_ext.md, "Identity"):
# instrumented build, fresh work corpus seeded from the committed one, fixed seed and runs.
FUZZ_RUNS ?= 500000
FUZZ_SEED ?= 1
FUZZ_WORK := build/fuzz/identity
fuzz-identity: bootstrap ## fuzz extract_identity + IdentityCache, differential vs the reference
	scripts/build_fuzz_native.sh build/fuzz-native
	rm -rf $(FUZZ_WORK) build/fuzz/identity-disagreements && mkdir -p $(FUZZ_WORK)
	FLEETD_FUZZ_NATIVE=build/fuzz-native $(PY) fuzz/identity_fuzz.py --differential \
		$(FUZZ_WORK) fuzz/corpus/identity -runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED) \
		-max_len=20000 -len_control=0 -timeout=5 -print_final_stats=1

# libFuzzer's merge re-runs the harness as a program: the venv's python3 must come first.
fuzz-identity-merge:     ## fold what the last fuzz-identity run found into the committed corpus
	PATH=$(abspath $(VENV))/bin:$$PATH FLEETD_FUZZ_NATIVE=build/fuzz-native \
		$(PY) fuzz/identity_fuzz.py fuzz/corpus/identity $(FUZZ_WORK) \
		-merge=1 -max_len=20000

# The device agent alone (docs/agent.md): a py3-none-any wheel with the generated protos it
# imports, and its end-to-end run inside an arm64 Debian root filesystem under qemu-user
# (root, apt and a few minutes; not part of `make test`).
agent-wheel: bootstrap   ## build/agent-wheel/fleetd_agent-*.whl
	$(PY) scripts/build_agent_wheel.py

agent-arm64-e2e: bootstrap  ## enrol/register/heartbeat from an arm64 rootfs (qemu-user)
	scripts/arm64-agent-e2e.sh

agent-systemd-e2e: bootstrap  ## the hardened unit under a real systemd (nspawn container)
	scripts/agent-systemd-e2e.sh

proto:                   ## regenerate Python code from proto/
	$(PY) scripts/gen_proto.py

proto-check:
	$(PY) scripts/gen_proto.py --check

clean:
	rm -rf build core_ext/_*.c core_ext/*.so core_ext/rust/target
