"""The examples (which carry the seed README's sections verbatim) run and print what
they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart() -> None:
    assert _run("00_quickstart_thread_backend.py").strip() == "HELLO LEASEPOOL"


def test_backpressure_expiry_sizing_and_diagnostics() -> None:
    out = _run("01_backpressure_expiry_sizing.py")
    assert "fail fast: No executor available; max_pools=10 reached" in out
    assert "hard expiry in 45.0 s" in out
    assert "desired pools: 3" in out
    assert "'backend': 'thread'" in out


def test_work_grinder() -> None:
    out = _run("02_work_grinder.py")
    assert out.split()[0] == str(sum(i * i for i in range(200)))


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_exits_cleanly(name: str) -> None:
    _run(name)


def test_one_call_per_request() -> None:
    out = _run("03_one_call_per_request.py").splitlines()
    assert out == [
        "(200, 'row 7 for req-7')",
        "saturated: 2 pools, 4 calls",
        "(503, 'LeaseUnavailableError')",
        "(503, 'LeaseAcquireTimeoutError')",
        "['row', 'row', 'row', 'row']",
        "(200, 'row 10 for req-10')",
    ]


def test_service_admission() -> None:
    out = _run("04_service_admission.py").splitlines()
    shed = '{"error":"LeaseUnavailableError","retry_after":1}'
    assert out == [
        "(200, None)",
        'saturated: {"status":"ok","calls":4}',
        f"/run/2 503 Retry-After: 1 {shed}",
        f"/to_thread/3 503 Retry-After: 1 {shed}",
        f"/sync/4 503 Retry-After: 1 {shed}",
        "released: [200, 200, 200, 200]",
        "200 200 200",
    ]


def test_dask_cluster() -> None:
    pytest.importorskip("distributed")
    out = _run("06_dask_cluster.py").splitlines()
    assert out[0] == "HELLO LEASEPOOL"
    assert out[1] == f"sum of squares: {sum(i * i for i in range(1000))}"
    assert out[2].startswith("ran on 2 worker processes, not ")
    assert out[3] == f"grinder sum: {sum(i * i for i in range(500))}"
    assert out[4] == "cluster threads: 4, desired pools: 2"


def test_auto_offload() -> None:
    out = _run("07_auto_offload.py").splitlines()
    assert out[0] == "checksum runs on: process"
    assert out[1] == "fetch runs on: thread"
    assert out[2] == "calls offloaded: True"
    assert out[3].startswith("6 requests, desired pools: ")
