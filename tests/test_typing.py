"""The public API type-checks under ``mypy --strict`` when used like an application."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).with_name("typing_sample.py")


def test_typing_sample_passes_mypy_strict(tmp_path: Path) -> None:
    """mypy --strict reports no error on tests/typing_sample.py."""
    env = {key: value for key, value in os.environ.items() if key != "MYPYPATH"}
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            "--config-file",
            str(config),
            str(SAMPLE),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_typing_sample_runs() -> None:
    """The sample is also a working program, so its annotations describe real values."""
    proc = subprocess.run([sys.executable, str(SAMPLE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "5",
        "59",
        "acquired",
        "1 (1, 0, 1) 1 thread",
        "WorkGrinder",
    ]
