#!/usr/bin/env bash
# Fresh machine -> every check this project has: Rust (fmt, clippy, unit, integration
# and loom model tests) and Python (ruff, mypy --strict, stubtest, pytest incl. examples).
# Needs only Python 3.11+ with pip and a Rust toolchain. Set LEASEPOOL_PY314=1 to also
# run the suite on CPython 3.14 in a Debian chroot (scripts/py314.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LEASEPOOL_VENV:-.venv}
step() { printf '\n=== %s (%ss)\n' "$1" "$SECONDS"; }

step "python environment"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
PY=$VENV/bin/python
[[ $PY == /* ]] || PY=$PWD/$PY
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q '.[test]'
export PYO3_PYTHON=$PY

step "cargo fmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -q -- -D warnings

step "cargo test (engine, with the tokio front end)"
cargo test -p leasepool --all-features -q

step "loom model tests"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p leasepool --release -q --test 'loom_*'

step "ruff"
"$PY" -m ruff check python tests benchmarks examples
"$PY" -m ruff format --check python tests benchmarks examples

step "mypy --strict"
"$PY" -m mypy --strict python/leasepool
# Tests and benchmarks are checked against the installed package (and its stubs).
(cd /tmp && "$PY" -m mypy --strict --config-file "$OLDPWD/pyproject.toml" \
    "$OLDPWD/tests" "$OLDPWD/benchmarks")

step "stubtest"
# The stubs (python/leasepool/*.pyi) must describe the installed package, including
# the Rust extension, as it is at run time: names, parameters, defaults, markers.
# stubtest-allowlist.txt names the few members left out on purpose, with the reason.
(cd /tmp && "$PY" -m mypy.stubtest leasepool --mypy-config-file "$OLDPWD/pyproject.toml" \
    --allowlist "$OLDPWD/stubtest-allowlist.txt")

step "pytest"
# Run from outside the checkout so tests import the installed package.
(cd /tmp && "$PY" -m pytest "$OLDPWD/tests" -q -p no:cacheprovider)

if [[ ${LEASEPOOL_PY314:-0} == 1 ]]; then
    step "pytest on CPython 3.14"
    bash scripts/py314.sh
fi
step "all checks passed"
