.DEFAULT_GOAL := all
# Every target runs from a fresh clone: the ones that need the project's venv make it
# first (`install`). Needs Python 3.11+ with pip, a Rust toolchain and make; `matrix` and
# `ci` also need root on a Debian host (mmdebstrap, see scripts/debian-pythons.sh).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# One step at a time: the checks share 2 cores and pytest's timing-sensitive tests must
# not compete with a compiler.
.NOTPARALLEL:

PYTHON ?= python3
VENV ?= .venv
PY := $(abspath $(VENV))/bin/python
# pyo3's build (clippy of the binding) uses the venv's interpreter.
export PYO3_PYTHON := $(PY)
sources = python tests benchmarks examples
# CPython versions `make matrix` tests in a Debian sid root filesystem. Not 3.12: Debian
# no longer ships python3.12 (not in sid, experimental, forky or trixie), so
# `make matrix-3.12` fails at apt-get.
PYTHONS ?= 3.13 3.14
# `make ci` ends after this many seconds (SIGTERM, SIGKILL 60 s later; exit code 124):
# the backstop for a hang that escapes pytest-timeout (see pyproject.toml).
LEASEPOOL_CI_TIMEOUT ?= 3000

# "=== step (Ns)" lines, N counted from the start of the outermost make, so a CI log
# shows where the time went.
ifndef LEASEPOOL_T0
LEASEPOOL_T0 := $(shell date +%s)
endif
export LEASEPOOL_T0
step = @printf '\n=== %s (%ss)\n' '$(1)' "$$(($$(date +%s) - $(LEASEPOOL_T0)))"

# The venv with the project and its test tools, made on first use.
venv-ready = @[[ -x $(VENV)/bin/pytest && -x $(VENV)/bin/mypy ]] || $(MAKE) --no-print-directory install

.PHONY: help
help: ## Show this message
	@awk -F ':.* ## ' '/^[a-z0-9%-]+:.* ## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Create .venv and pip install '.[test]' (builds the Rust extension)
	$(call step,python environment)
	[[ -x $(PY) ]] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[test]'

.PHONY: build
build: ## Rebuild and reinstall the package into .venv (after Rust or Python changes)
	$(venv-ready)
	$(call step,build)
	$(PY) -m pip install -q --no-deps --force-reinstall .

.PHONY: format
format: ## Format Rust and Python, apply ruff's fixes
	$(venv-ready)
	cargo fmt --all
	$(PY) -m ruff check --fix $(sources)
	$(PY) -m ruff format $(sources)

.PHONY: lint-rust
lint-rust: ## cargo fmt --check, clippy -D warnings
	$(venv-ready)
	$(call step,cargo fmt)
	cargo fmt --all -- --check
	$(call step,cargo clippy)
	cargo clippy --workspace --all-targets --all-features -q -- -D warnings

.PHONY: lint-python
lint-python: ## ruff check, ruff format --check
	$(venv-ready)
	$(call step,ruff)
	$(PY) -m ruff check $(sources)
	$(PY) -m ruff format --check $(sources)

.PHONY: lint
lint: lint-rust lint-python ## lint-rust and lint-python

.PHONY: typecheck
typecheck: ## mypy --strict (package; tests and benchmarks against it), stubtest
	$(venv-ready)
	$(call step,mypy --strict)
	$(PY) -m mypy --strict python/leasepool
# Tests and benchmarks are checked against the installed package (and its stubs).
	cd /tmp && $(PY) -m mypy --strict --config-file '$(CURDIR)/pyproject.toml' \
		'$(CURDIR)/tests' '$(CURDIR)/benchmarks'
	$(call step,stubtest)
# The stubs (python/leasepool/*.pyi) must describe the installed package, including
# the Rust extension, as it is at run time: names, parameters, defaults, markers.
# stubtest-allowlist.txt names the few members left out on purpose, with the reason.
	cd /tmp && $(PY) -m mypy.stubtest leasepool --mypy-config-file '$(CURDIR)/pyproject.toml' \
		--allowlist '$(CURDIR)/stubtest-allowlist.txt'

.PHONY: test-rust
test-rust: ## cargo test of the engine, with the tokio front end
	$(call step,cargo test (engine with the tokio front end))
	cargo test -p leasepool --all-features -q

.PHONY: crate
crate: ## The Rust crate as its users get it: examples run, benches run once, docs build without warnings, publish dry run
	$(call step,crate examples)
	cargo run -q -p leasepool --features tokio --example blocking_service
	cargo run -q -p leasepool --features tokio --example load_resize
	$(call step,crate benches (each once, as a test))
	cargo test -q -p leasepool --features tokio --benches
	$(call step,crate docs (warnings are errors))
	RUSTDOCFLAGS="-D warnings" cargo doc -q -p leasepool --no-deps --all-features
	$(call step,cargo publish --dry-run)
	cargo publish -q -p leasepool --dry-run --allow-dirty

.PHONY: loom
loom: ## loom model tests of the engine (release, own target dir)
	$(call step,loom model tests)
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
		cargo test -p leasepool --release -q --test 'loom_*'

.PHONY: pytest
pytest: ## pytest on the installed package (from /tmp; PYTEST_ADDOPTS for more options)
	$(venv-ready)
	$(call step,pytest)
# Run from outside the checkout so tests import the installed package.
	cd /tmp && $(PY) -m pytest '$(CURDIR)/tests' -q -p no:cacheprovider

.PHONY: test
test: install lint-rust test-rust crate loom lint-python typecheck pytest ## Fresh machine -> every check: install, Rust (fmt, clippy, tests, crate, loom), Python (ruff, mypy, stubtest, pytest)
	$(call step,all checks passed)

.PHONY: matrix
matrix: ## pytest on CPython 3.13 and 3.14 (PYTHONS) in a Debian sid rootfs (root; scripts/debian-pythons.sh)
	bash scripts/debian-pythons.sh $(PYTHONS)
	$(call step,matrix passed)

matrix-%: ## The same for one version, e.g. make matrix-3.14
	bash scripts/debian-pythons.sh $*

.PHONY: ci
ci: ## What CI runs (.ci/run): test, then matrix, under a timeout of LEASEPOOL_CI_TIMEOUT s
	timeout -k 60 $(LEASEPOOL_CI_TIMEOUT) $(MAKE) --no-print-directory test matrix

.PHONY: demo
demo: ## Fresh machine -> build, install, run the quickstart demo
	[[ -x $(PY) ]] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q .
	$(PY) examples/00_quickstart_thread_backend.py

.PHONY: stress
stress: ## Reliability stress: scripts/stress.sh STRESS_ARGS (e.g. STRESS_ARGS='-r 10 crash')
	$(venv-ready)
	LEASEPOOL_PY=$(PY) bash scripts/stress.sh $(STRESS_ARGS)

.PHONY: bench
bench: ## Benchmarks: benchmarks/run.py BENCH_ARGS (e.g. BENCH_ARGS=--quick)
	$(venv-ready)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

.PHONY: all
all: format build lint typecheck test-rust pytest ## The edit loop: format, build, lint, typecheck, cargo test, pytest (no loom)

.PHONY: clean
clean: ## Remove build output, caches and .venv (not the Debian rootfs)
	rm -rf target $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f python/leasepool/*.so
