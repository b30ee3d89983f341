"""A Rust panic inside the engine reaches Python as an ordinary RuntimeError."""

from __future__ import annotations

import subprocess
import sys

import pytest

from leasepool import _engine


def test_engine_panic_becomes_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="deliberate test panic") as info:
        _engine._panic_for_tests()
    assert type(info.value) is RuntimeError, "not pyo3's PanicException (a BaseException)"


def test_engine_panic_does_not_abort_the_process() -> None:
    code = (
        "from leasepool import _engine\n"
        "try:\n"
        "    _engine._panic_for_tests()\n"
        "except RuntimeError:\n"
        "    print('survived')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "survived"
