#!/usr/bin/env bash
# Fresh machine -> built package -> the quickstart demo.
# Needs only Python 3.11+ with pip and a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LEASEPOOL_VENV:-.venv}
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q .
"$VENV/bin/python" examples/00_quickstart_thread_backend.py
