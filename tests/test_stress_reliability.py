"""The reliability stress scenarios (``tests/_stress.py``), each once with small counts.

The long runs are ``scripts/stress.sh``. Every scenario runs in a subprocess with a
deadline: the scenario process dumps every thread's stack at its deadline
(faulthandler) and its own child processes have deadlines too; should even that fail,
the test kills it and fails with what it printed. No test asserts a duration.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

STRESS = Path(__file__).resolve().parent / "_stress.py"
#: Seconds for one scenario process (pytest-timeout is 120 s per test).
DEADLINE = 60
CHILD_DEADLINE = 20


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


@pytest.mark.parametrize(
    ("scenario", "rounds"),
    [
        ("crash", 25),
        ("resilience", 25),
        ("churn", 25),
        ("calls", 60),
        ("admission", 80),
        ("grinder", 60),
        ("stop", 2),
        ("interrupt", 1),
        ("sigint", 1),
    ],
)
def test_stress_scenario(scenario: str, rounds: int) -> None:
    cmd = [sys.executable, "-X", "faulthandler", str(STRESS), scenario]
    cmd += ["--rounds", str(rounds), "--deadline", str(DEADLINE)]
    cmd += ["--child-deadline", str(CHILD_DEADLINE)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=DEADLINE + 20)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the scenario then kills the process groups of its children.
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(
            f"HANG: stress {scenario} ran past its deadline\n"
            f"stdout:\n{_text(out)}\nstderr:\n{_text(err)}"
        )
    assert proc.returncode == 0, (
        f"stress {scenario} exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    )
    assert f"RESULT {scenario} passed" in out, out
