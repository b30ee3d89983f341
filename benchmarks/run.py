#!/usr/bin/env python3
"""Benchmark harness: this leasepool against leasepool 0.1.3 and asyncio/anyio baselines.

    python benchmarks/run.py            # full run (5 repeats), writes docs/benchmarks.{md,png}
    python benchmarks/run.py --quick    # 2 repeats, smaller workloads
    python benchmarks/run.py --only 'gathered_run,process_*' --impl ours,ref
    python benchmarks/run.py --impl ours --ours-variants metrics-off=metrics=False \
        --out /tmp/variants.md     # "ours" with other manager arguments, side by side

"ours" is the ``leasepool`` importable by the interpreter running this script (where
``pip install .`` put it). leasepool 0.1.3 is installed from the package index into
benchmarks/.venvs/ref. Every sample runs in a fresh worker process (worker.py).
Standard library only; Linux only (/proc).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import importlib
import importlib.util
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results"
DEFAULT_OUT = REPO / "docs" / "benchmarks.md"
# write_report keeps everything from this line to the end of the existing report:
# hand-written sections (e.g. "Metrics on vs off") survive a regeneration.
KEEP_MARKER = "<!-- Kept by benchmarks/run.py when it regenerates this file: edit below. -->"
# A variant of "ours" more than this much slower than "ours" is shown in bold.
VARIANT_TOLERANCE = 0.05
REF_REQUIREMENTS = ("leasepool==0.1.3", "uvloop")

sys.path.insert(0, str(BENCH))
from spec import (  # noqa: E402
    IMPLS,
    LOOPS,
    VARIANT_SEP,
    WORKLOADS,
    WORKLOADS_BY_NAME,
    ManagerKwargs,
    Metric,
    Workload,
    base_impl,
    format_goal,
    impl_label,
    parse_variant,
)

# ---------------------------------------------------------------------------- utilities


def log(msg: str = "") -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


class HarnessError(RuntimeError):
    pass


def run_quiet(cmd: Sequence[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)


def pip_install(python: str, packages: Sequence[str]) -> bool:
    log(f"  pip install {' '.join(packages)}  ({python})")
    has_pip = run_quiet([python, "-m", "pip", "--version"], timeout=60).returncode == 0
    if not has_pip:
        run_quiet([python, "-m", "ensurepip", "--default-pip"])
    proc = run_quiet([python, "-m", "pip", "install", "--quiet", *packages])
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        warn(f"pip install {' '.join(packages)} failed for {python}:\n{tail}")
    return proc.returncode == 0


def module_available(name: str) -> bool:
    importlib.invalidate_caches()
    return importlib.util.find_spec(name) is not None


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_venv(venv: Path) -> Path:
    log(f"  creating virtualenv {venv.relative_to(REPO) if venv.is_relative_to(REPO) else venv}")
    proc = run_quiet([sys.executable, "-m", "venv", "--clear", str(venv)])
    if proc.returncode != 0:
        raise HarnessError(f"could not create {venv}: {proc.stderr.strip()}")
    return venv_python(venv)


# ------------------------------------------------------------------------- environments


def ensure_current_deps(want_anyio: bool, want_uvloop: bool, install: bool) -> tuple[bool, bool]:
    """anyio and uvloop must be importable by the current interpreter (baselines, ours)."""
    wanted = {"anyio": want_anyio, "uvloop": want_uvloop}
    missing = [name for name, want in wanted.items() if want and not module_available(name)]
    if missing and install:
        pip_install(sys.executable, missing)
    have_anyio = want_anyio and module_available("anyio")
    have_uvloop = want_uvloop and module_available("uvloop")
    if want_anyio and not have_anyio:
        warn("anyio is not importable: the anyio baseline is skipped")
    if want_uvloop and not have_uvloop:
        warn("uvloop is not importable: the uvloop event loop is skipped")
    return have_anyio, have_uvloop


def ref_ok(python: Path | str) -> bool:
    check = (
        "import importlib.metadata as m, leasepool, uvloop; "
        "assert m.version('leasepool') == '0.1.3', m.version('leasepool')"
    )
    try:
        return run_quiet([str(python), "-c", check], timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_ref_python(explicit: str | None, install: bool) -> str:
    """The interpreter of the leasepool 0.1.3 virtualenv, created on first use."""
    if explicit:
        if not ref_ok(explicit):
            raise HarnessError(f"--ref-python {explicit} cannot import leasepool 0.1.3 + uvloop")
        return explicit
    venv = VENVS / "ref"
    python = venv_python(venv)
    if python.exists() and ref_ok(python):
        return str(python)
    if not install:
        raise HarnessError(f"{venv} is missing or incomplete and --no-install was given")
    python = make_venv(venv)
    if not pip_install(str(python), REF_REQUIREMENTS) or not ref_ok(python):
        raise HarnessError(f"could not install {' '.join(REF_REQUIREMENTS)} into {venv}")
    return str(python)


def chart_python(install: bool) -> str | None:
    """An interpreter with matplotlib: the current one, else a tools virtualenv."""
    if module_available("matplotlib"):
        return sys.executable
    if not install:
        return None
    if pip_install(sys.executable, ["matplotlib"]) and module_available("matplotlib"):
        return sys.executable
    venv = VENVS / "tools"
    python = venv_python(venv)
    has_mpl = [str(python), "-c", "import matplotlib"]
    if python.exists() and run_quiet(has_mpl).returncode == 0:
        return str(python)
    try:
        python = make_venv(venv)
    except HarnessError as exc:
        warn(str(exc))
        return None
    if pip_install(str(python), ["matplotlib"]):
        return str(python)
    return None


def worker_env(impl: str) -> dict[str, str]:
    env = dict(os.environ)
    # `workloads` must be importable by worker processes of the process backend
    # however they are started. The reference gets nothing else on its path.
    inherited = "" if impl == "ref" else env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), inherited) if p)
    return env


def probe(python: str, impl: str) -> dict[str, Any]:
    proc = subprocess.run(
        [python, str(BENCH / "worker.py"), "--probe"],
        capture_output=True,
        text=True,
        env=worker_env(impl),
        timeout=120,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise HarnessError(f"probe of {python} failed:\n{proc.stderr.strip()}")
    info: dict[str, Any] = json.loads(lines[-1])
    return info


# ------------------------------------------------------------------------------ running


@dataclass
class Sample:
    repeat: int
    workload: str
    impl: str
    loop: str
    ok: bool
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    wall_s: float = 0.0
    # CPU used by other processes during the sample, as a fraction of the whole machine.
    background: float | None = None
    attempts: int = 1


@dataclass
class Job:
    repeat: int
    workload: Workload
    impl: str
    loop: str
    python: str
    params: dict[str, Any]
    timeout: float
    # A variant of "ours" (impl "ours:NAME"): its LeasedExecutorManager arguments.
    manager_kwargs: ManagerKwargs = field(default_factory=dict)

    def command(self) -> list[str]:
        cmd = [
            self.python,
            str(BENCH / "worker.py"),
            "--impl",
            base_impl(self.impl),
            "--workload",
            self.workload.name,
            "--loop",
            self.loop,
            "--params",
            json.dumps(self.params),
        ]
        if self.manager_kwargs:
            cmd += ["--manager-kwargs", json.dumps(self.manager_kwargs)]
        return cmd


def start_job(job: Job) -> subprocess.Popen[str]:
    return subprocess.Popen(
        job.command(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=worker_env(job.impl),
        start_new_session=True,  # its own process group: a timeout kills its children too
    )


def finish_job(job: Job, proc: subprocess.Popen[str], started: float) -> Sample:
    remaining = max(1.0, job.timeout - (time.monotonic() - started))
    timed_out = False
    try:
        out, err = proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    wall = time.monotonic() - started
    sample = Sample(job.repeat, job.workload.name, job.impl, job.loop, ok=False, wall_s=wall)
    records = [ln for ln in out.splitlines() if ln.startswith("{")]
    if timed_out:
        sample.error = f"timeout after {job.timeout:g} s"
    elif records:
        record = json.loads(records[-1])
        sample.ok = bool(record.get("ok")) and proc.returncode == 0
        sample.metrics = record.get("metrics") or {}
        sample.error = record.get("error") or (
            None if sample.ok else f"exit status {proc.returncode}"
        )
    else:
        sample.error = f"exit status {proc.returncode}, no result"
    if not sample.ok:
        detail = "\n".join(err.strip().splitlines()[-15:])
        sample.error = f"{sample.error}\n{detail}".strip()
    return sample


def describe(sample: Sample, workload: Workload) -> str:
    if not sample.ok:
        return "ERROR " + (sample.error or "").splitlines()[0]
    metric = workload.metrics[0]
    value = sample.metrics.get(metric.key, float("nan"))
    return f"{fmt_value(value, metric.unit)} {metric.unit}"


class LoadMeter:
    """CPU used by processes other than this harness and its workers while a batch runs.

    Busy time of the whole machine (/proc/stat) minus our own CPU time and that of our
    reaped children (workers and their worker processes).
    """

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")
        self._cpus = os.cpu_count() or 1

    def _busy_s(self) -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / self._tick

    @staticmethod
    def _own_s() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def start(self) -> tuple[float | None, float, float]:
        return self._busy_s(), self._own_s(), time.monotonic()

    def stop(self, started: tuple[float | None, float, float]) -> float | None:
        busy0, own0, t0 = started
        busy1, own1, t1 = self._busy_s(), self._own_s(), time.monotonic()
        if busy0 is None or busy1 is None or t1 <= t0:
            return None
        foreign = (busy1 - busy0) - (own1 - own0)
        return max(0.0, foreign) / ((t1 - t0) * self._cpus)


def run_batch(batch: list[Job]) -> list[Sample]:
    started = time.monotonic()
    procs = [(job, start_job(job)) for job in batch]
    return [finish_job(job, proc, started) for job, proc in procs]


def run_jobs(
    jobs_by_repeat: list[list[list[Job]]],
    sink: TextIO,
    total: int,
    max_background: float,
    retries: int,
) -> list[Sample]:
    """jobs_by_repeat[r] is a list of batches; a batch of >1 jobs runs concurrently.

    A batch during which other processes used more than ``max_background`` of the
    machine is run again (up to ``retries`` times): wake-up latencies on a small VM
    change a lot when the other vCPU is busy.
    """
    samples: list[Sample] = []
    meter = LoadMeter()
    done = 0
    hung: set[tuple[str, str, str]] = set()  # (workload, impl, loop) that timed out once
    for batches in jobs_by_repeat:
        for all_jobs in batches:
            batch: list[Job] = []
            for job in all_jobs:
                if (job.workload.name, job.impl, job.loop) not in hung:
                    batch.append(job)
                    continue
                sample = Sample(job.repeat, job.workload.name, job.impl, job.loop, ok=False)
                sample.error = "skipped: timed out in an earlier repeat"
                samples.append(sample)
                sink.write(json.dumps({"type": "sample", **asdict(sample)}) + "\n")
                done += 1
                log(
                    f"[{done:>4}/{total}] r{job.repeat + 1} {job.workload.name:<16} "
                    f"{job.loop:<8} {impl_label(job.impl):<16} skipped (timed out before)"
                )
            if not batch:
                continue
            for attempt in range(1, retries + 2):
                mark = meter.start()
                results = run_batch(batch)
                background = meter.stop(mark)
                busy = background is not None and background > max_background
                if not busy or attempt > retries or not batch[0].workload.retry_on_load:
                    break
                log(
                    f"         ~ other processes used {background:.0%} of the machine during "
                    f"{batch[0].workload.name}: running it again"
                )
                time.sleep(2.0)
            for job, sample in zip(batch, results, strict=True):
                sample.background = background
                sample.attempts = attempt
                samples.append(sample)
                sink.write(json.dumps({"type": "sample", **asdict(sample)}) + "\n")
                sink.flush()
                done += 1
                if sample.error and sample.error.startswith("timeout"):
                    hung.add((job.workload.name, job.impl, job.loop))
                load = f" bg {background:.0%}" if background is not None else ""
                label = impl_label(job.impl)
                log(
                    f"[{done:>4}/{total}] r{job.repeat + 1} {job.workload.name:<16} "
                    f"{job.loop:<8} {label:<16} {describe(sample, job.workload):<20} "
                    f"({sample.wall_s:.1f} s{load})"
                )
                if not sample.ok and sample.error:
                    for line in sample.error.splitlines()[1:]:
                        log(f"         | {line}")
    return samples


def plan(
    workloads: Sequence[Workload],
    impls: Sequence[str],
    loops: Sequence[str],
    pythons: dict[str, str],
    repeats: int,
    quick: bool,
    idle_seconds: float | None,
    timeout: float,
    variants: dict[str, ManagerKwargs] | None = None,
) -> list[list[list[Job]]]:
    """Jobs per repeat, as batches; ``variants`` maps "ours:NAME" to its manager arguments."""
    variants = variants or {}
    out: list[list[list[Job]]] = []
    for r in range(repeats):
        batches: list[list[Job]] = []
        for w in workloads:
            params = w.params(quick)
            if w.name == "idle_cpu" and idle_seconds is not None:
                params["seconds"] = idle_seconds
            job_timeout = timeout + float(params.get("seconds", 0.0))
            w_impls = [i for i in impls if base_impl(i) in w.impls]
            # Alternate: rotate the order of the implementations on every repeat.
            shift = r % len(w_impls) if w_impls else 0
            w_impls = w_impls[shift:] + w_impls[:shift]
            jobs = [
                Job(
                    r,
                    w,
                    impl,
                    loop,
                    pythons[impl],
                    params,
                    job_timeout,
                    dict(variants.get(impl, {})),
                )
                for loop in loops
                if loop in w.loops
                for impl in w_impls
            ]
            if w.parallel:
                batches.append(jobs)
            else:
                batches.extend([job] for job in jobs)
        out.append([b for b in batches if b])
    return out


# ---------------------------------------------------------------------------- reporting


def fmt_value(value: float | None, unit: str) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    if unit == "B":
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None or ratio != ratio:
        return "–"
    if ratio < 1 and ratio > 0:
        return f"{ratio:.3g} (1/{1 / ratio:.3g})"
    return f"{ratio:.3g}"


@dataclass
class Row:
    workload: Workload
    metric: Metric
    loop: str
    medians: dict[str, float | None]
    errors: dict[str, int]
    ratio: float | None
    ratio_range: tuple[float, float] | None
    passed: bool | None


def median_of(samples: Iterable[Sample], key: str) -> float | None:
    values = [s.metrics[key] for s in samples if s.ok and key in s.metrics]
    return statistics.median(values) if values else None


Cells = dict[tuple[str, str, str], list[Sample]]


def cells_of(samples: Iterable[Sample]) -> Cells:
    """Samples by (workload, loop, impl)."""
    by_cell: Cells = {}
    for s in samples:
        by_cell.setdefault((s.workload, s.loop, s.impl), []).append(s)
    return by_cell


def paired_ratios(
    by_cell: Cells, workload: str, loop: str, impl: str, base: str, key: str
) -> list[float]:
    """impl / base per repeat (the two samples of one repeat ran next to each other)."""
    impl_by_r = {
        s.repeat: s.metrics.get(key) for s in by_cell.get((workload, loop, impl), []) if s.ok
    }
    pairs: list[float] = []
    for s in by_cell.get((workload, loop, base), []):
        o = impl_by_r.get(s.repeat)
        v = s.metrics.get(key)
        if s.ok and o is not None and v:
            pairs.append(o / v)
    return pairs


def build_rows(
    samples: list[Sample], workloads: Sequence[Workload], impls: Sequence[str], loops: Sequence[str]
) -> list[Row]:
    by_cell = cells_of(samples)
    rows: list[Row] = []
    for w in workloads:
        for metric in w.metrics:
            for loop in loops:
                if loop not in w.loops:
                    continue
                medians: dict[str, float | None] = {}
                errors: dict[str, int] = {}
                for impl in impls:
                    cell = by_cell.get((w.name, loop, impl), [])
                    if base_impl(impl) in w.impls:
                        medians[impl] = median_of(cell, metric.key)
                        errors[impl] = sum(not s.ok for s in cell)
                if not any(impl in medians for impl in impls):
                    continue
                ours, ref = medians.get("ours"), medians.get(metric.baseline)
                ratio = ours / ref if ours is not None and ref else None
                pairs = paired_ratios(by_cell, w.name, loop, "ours", metric.baseline, metric.key)
                # None: not checked (nothing to compare with); False: missed or ours failed.
                ours_failed = "ours" in medians and ours is None and errors.get("ours", 0) > 0
                passed: bool | None = False if ours_failed else None
                if metric.goal_ratio is not None and ratio is not None:
                    passed = ratio <= float(metric.goal_ratio)
                elif metric.goal_abs is not None and ours is not None:
                    passed = ours <= metric.goal_abs
                rows.append(
                    Row(
                        workload=w,
                        metric=metric,
                        loop=loop,
                        medians=medians,
                        errors=errors,
                        ratio=ratio,
                        ratio_range=(min(pairs), max(pairs)) if pairs else None,
                        passed=passed,
                    )
                )
    return rows


def results_table(rows: list[Row], impls: Sequence[str]) -> list[str]:
    head = ["workload", "metric", "loop", *(impl_label(i) for i in impls)]
    head += ["ours/base", "range", "goal", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.workload.title, f"{row.metric.label} ({row.metric.unit})", row.loop]
        for impl in impls:
            if impl not in row.medians:
                cells.append("")
                continue
            text = fmt_value(row.medians[impl], row.metric.unit)
            if row.errors.get(impl):
                text += f" ({row.errors[impl]} err)"
            cells.append(text)
        cells.append(fmt_ratio(row.ratio))
        cells.append(
            f"{row.ratio_range[0]:.3g}–{row.ratio_range[1]:.3g}" if row.ratio_range else "–"
        )
        cells.append(format_goal(row.metric))
        cells.append({True: "pass", False: "**FAIL**", None: "–"}[row.passed])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def variants_table(
    samples: list[Sample], rows: list[Row], impls: Sequence[str], base: str
) -> list[str]:
    """ "ours" and its variants (``impls``) against one of them (``base``): medians, ratio
    of the medians and the range of the per-repeat ratios (the two ran next to each other
    in every repeat)."""
    by_cell = cells_of(samples)
    others = [i for i in impls if i != base]
    head = ["workload", "metric", "loop", impl_label(base)]
    for v in others:
        head += [impl_label(v), f"{impl_label(v)} / {impl_label(base)} (range)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        reference = row.medians.get(base)
        if base not in row.medians or not any(v in row.medians for v in others):
            continue
        cells = [row.workload.title, f"{row.metric.label} ({row.metric.unit})", row.loop]
        cells.append(fmt_value(reference, row.metric.unit))
        for v in others:
            value = row.medians.get(v)
            cells.append(fmt_value(value, row.metric.unit))
            if value is None or not reference:
                cells.append("–")
                continue
            ratio = value / reference
            text = f"{ratio:.3f}"
            if ratio > 1 + VARIANT_TOLERANCE:
                text = f"**{text}**"
            pairs = paired_ratios(by_cell, row.workload.name, row.loop, v, base, row.metric.key)
            if pairs:
                text += f" ({min(pairs):.3f}–{max(pairs):.3f})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def kept_sections(out: Path) -> list[str]:
    """The hand-written end of an existing report, from KEEP_MARKER on (or nothing)."""
    try:
        text = out.read_text(encoding="utf-8")
    except OSError:
        return []
    at = text.find(KEEP_MARKER)
    return text[at:].rstrip("\n").split("\n") if at >= 0 else []


def goals_table(goal_rows: list[Row], loops: Sequence[str]) -> list[str]:
    """One line per goal: the ratio (or value) on every loop; pass only if all loops pass."""
    met = sum(r.passed is True for r in goal_rows)
    checked = sum(r.passed is not None for r in goal_rows)
    unchecked = len(goal_rows) - checked
    lines = [
        "## Goals",
        "",
        f"**{met} of {checked} met** (one check per goal and event loop"
        + (f"; {unchecked} not checked: no data to compare" if unchecked else "")
        + ").",
        "",
        "| workload | metric | goal | " + " | ".join(loops) + " | result |",
        "|" + "---|" * (4 + len(loops)),
    ]
    keys: list[tuple[str, str]] = []
    for r in goal_rows:
        if (r.workload.name, r.metric.key) not in keys:
            keys.append((r.workload.name, r.metric.key))
    for name, key in keys:
        group = [r for r in goal_rows if (r.workload.name, r.metric.key) == (name, key)]
        first = group[0]
        cells = [first.workload.title, first.metric.label, format_goal(first.metric)]
        for loop in loops:
            row = next((r for r in group if r.loop == loop), None)
            if row is None:
                cells.append("")
                continue
            if row.metric.goal_abs is not None:
                value = row.medians.get("ours")
                text = f"{fmt_value(value, row.metric.unit)} {row.metric.unit}"
            else:
                text = fmt_ratio(row.ratio)
            cells.append(text + {True: " ✓", False: " ✗", None: ""}[row.passed])
        verdicts = {r.passed for r in group}
        if False in verdicts:
            cells.append("**FAIL**")
        else:
            cells.append("pass" if verdicts == {True} else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def cpu_model() -> str:
    keys = ("model name", "Hardware", "Processor", "cpu model")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in keys and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_report(
    header: dict[str, Any],
    samples: list[Sample],
    out: Path,
    chart_py: str | None,
    total_s: float | None,
    variant_base: str = "ours",
) -> list[str]:
    workloads = [WORKLOADS_BY_NAME[n] for n in header["workloads"]]
    impls: list[str] = header["impls"]
    loops: list[str] = header["loops"]
    rows = build_rows(samples, workloads, impls, loops)
    table = results_table(rows, impls)
    variants: dict[str, ManagerKwargs] = header.get("ours_variants") or {}
    vtable: list[str] = []
    if variants:
        vbase = variant_base if variant_base == "ours" else f"ours{VARIANT_SEP}{variant_base}"
        if vbase not in ["ours", *variants]:
            raise HarnessError(f"--variant-base {variant_base!r} is not among the variants")
        vtable = variants_table(samples, rows, ["ours", *variants], vbase)
    machine = header["machine"]
    probes: dict[str, dict[str, Any]] = header["probes"]

    goal_rows = [r for r in rows if r.metric.has_goal]
    png = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)

    md: list[str] = [
        "# leasepool benchmarks",
        "",
        "_Generated by `benchmarks/run.py`; see `benchmarks/README.md` for what each workload"
        " measures. Do not edit by hand: rerun the command below (sections after the marker"
        " comment at the end, if any, are hand-written and kept)._",
        "",
        f"- **Command** (from the repository root): `{header['command']}`",
        f"- **Mode**: {'quick' if header['quick'] else 'full'}, {header['repeats']} repeats"
        + (f"; the run took {total_s / 60:.1f} min" if total_s else ""),
        f"- **Date**: {machine['date']}",
        f"- **Machine**: {machine['cpu']}; {machine['cores']} cores"
        + (
            f" ({machine['affinity']} usable)"
            if machine.get("affinity") not in (None, machine["cores"])
            else ""
        )
        + f"; {machine['platform']}",
        f"- **Python**: {machine['python']}",
    ]
    loads = [sample.background for sample in samples if sample.background is not None]
    if loads:
        limit = header.get("max_background") or 0.15
        retried = sum(sample.attempts > 1 for sample in samples)
        kept_busy = sum(
            sample.background is not None
            and sample.background > limit
            and WORKLOADS_BY_NAME[sample.workload].retry_on_load
            for sample in samples
        )
        md.append(
            f"- **Background load** (CPU used by other processes during a sample, share of the"
            f" machine): median {statistics.median(loads):.1%}, max {max(loads):.1%};"
            f" {retried} timing samples rerun because of it, {kept_busy} kept above {limit:.0%}"
        )
    ours = probes.get("ours")
    if ours:
        md.append(
            f"- **ours**: leasepool {ours.get('leasepool_version')} "
            f"(`{ours.get('leasepool_file')}`, `{ours.get('executable')}`)"
        )
    if variants:
        shown = "; ".join(
            f"`{impl_label(v)}`: " + ", ".join(f"`{k}={val!r}`" for k, val in kw.items())
            for v, kw in variants.items()
        )
        md.append(f"- **variants of ours** (LeasedExecutorManager arguments added): {shown}")
    ref = probes.get("ref")
    if ref:
        md.append(
            f"- **0.1.3**: leasepool {ref.get('leasepool_version')} from the package index, "
            f"in its own virtualenv (Python {ref.get('python')})"
        )
    base = probes.get("base") or ours or {}
    md.append(
        "- **baselines**: `loop.run_in_executor(ThreadPoolExecutor(4), ...)`, "
        "`asyncio.to_thread(...)`, "
        f"`anyio.to_thread.run_sync(..., limiter=CapacityLimiter(4))` (anyio "
        f"{base.get('anyio_version')}); event loops: asyncio, uvloop "
        f"{base.get('uvloop_version')}"
    )
    if ours and ours.get("leasepool_version") == "0.1.3":
        md += ["", '> **Note:** "ours" imported leasepool 0.1.3 (a stand-in), not this package.']
    goals = goals_table(goal_rows, loops)
    md += ["", *goals, ""]
    if chart_py and write_chart(rows, png, chart_py):
        md += [f"![ratio ours/0.1.3 per workload]({png.name})", ""]
    md += [
        "The same engine in a real service (Starlette on uvicorn, a sqlite3 query per"
        " request, wrk over loopback; lease per request and `manager.run`, against 0.1.3,"
        " anyio and `run_in_executor`): [service-benchmark.md](service-benchmark.md),"
        " `python benchmarks/service/bench.py`.",
        "",
        "Admission control under overload (2× capacity: unbounded waiting vs `max_waiters`"
        " vs `wait=False`, shed rate, goodput, `retry_after` against reality) and a noisy"
        " neighbour (FIFO vs `fair_share` vs `owner_limit`):"
        " [admission-benchmark.md](admission-benchmark.md), `python benchmarks/admission.py`.",
        "",
        "## Results",
        "",
        f"Median of {header['repeats']} runs per cell. Each run is a fresh process that warms"
        " up before timing; the implementations alternate within every repeat. Lower is better"
        " everywhere. *ours/base* is the ratio of the medians to the goal's baseline (0.1.3"
        " unless the *goal* column names another; goal: at most that column); *range* is"
        " the min–max of the per-repeat ratios.",
        "",
        *table,
        "",
    ]
    if vtable:
        md += [
            "## Variants of ours",
            "",
            f"*ours* (the package defaults) and its variants against *{impl_label(vbase)}*:"
            f" medians over the repeats, *x / {impl_label(vbase)}* the ratio of the medians"
            " and, in brackets, the range of the per-repeat ratios (in every repeat the two"
            " ran one after the other, in rotating order). Bold: more than"
            f" {VARIANT_TOLERANCE:.0%} above {impl_label(vbase)}.",
            "",
            *vtable,
            "",
        ]
    md += ["## Workloads", ""]
    failures = [sample for sample in samples if not sample.ok]
    quick: bool = header["quick"]
    for w in workloads:
        params = w.params(quick)
        if w.name == "idle_cpu" and header.get("idle_seconds") is not None:
            params["seconds"] = header["idle_seconds"]
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        md.append(f"- **{w.title}** (`{w.name}`; {shown}): {w.description}")
    md.append("")
    if failures:
        md += ["## Errors", ""]
        for sample in failures:
            first = (sample.error or "unknown error").splitlines()[0]
            md.append(
                f"- `{sample.workload}` / {sample.loop} / {impl_label(sample.impl)}, "
                f"repeat {sample.repeat + 1}: {first}"
            )
        md.append("")
    kept = kept_sections(out)
    if kept:
        md += ["", *kept, ""]
    out.write_text("\n".join(md), encoding="utf-8")
    return [*table, "", *goals, *(["", *vtable] if vtable else [])]


def write_chart(rows: list[Row], png: Path, python: str) -> bool:
    bars = [
        {
            "label": f"{r.workload.title}\n{r.metric.label}",
            "loop": r.loop,
            "ratio": r.ratio,
            "goal": float(r.metric.goal_ratio) if r.metric.goal_ratio is not None else None,
            "passed": r.passed,
        }
        for r in rows
        if r.ratio is not None
        and r.metric.baseline == "ref"
        and (r.metric.goal_ratio is not None or r.metric.chart)
    ]
    if not bars:
        return False
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = RESULTS / "chart-data.json"
    data.write_text(json.dumps(bars), encoding="utf-8")
    proc = run_quiet([python, str(BENCH / "chart.py"), str(data), str(png)], timeout=300)
    if proc.returncode != 0:
        warn(f"chart failed:\n{proc.stderr.strip()}")
        return False
    return True


# --------------------------------------------------------------------------------- main


def select(names: str | None, universe: Sequence[str], what: str) -> list[str]:
    if not names:
        return list(universe)
    chosen: list[str] = []
    for pattern in (p.strip() for p in names.split(",") if p.strip()):
        hits = [u for u in universe if fnmatch.fnmatchcase(u, pattern)]
        if not hits:
            raise HarnessError(f"unknown {what} {pattern!r}; choose from {', '.join(universe)}")
        chosen += [h for h in hits if h not in chosen]
    return [u for u in universe if u in chosen]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark this leasepool against leasepool 0.1.3 and baselines.",
        epilog="workloads: " + ", ".join(w.name for w in WORKLOADS),
    )
    parser.add_argument("--quick", action="store_true", help="2 repeats, smaller workloads")
    parser.add_argument("--repeats", type=int, help="repeats (default 5, quick 2)")
    parser.add_argument("--only", help="comma-separated workload names or globs")
    parser.add_argument(
        "--impl", help=f"comma-separated implementations (default all: {', '.join(IMPLS)})"
    )
    parser.add_argument(
        "--ours-variants",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=KEY=VALUE[,KEY=VALUE...]",
        help="also run ours as 'ours:NAME' with these LeasedExecutorManager arguments "
        "(Python literals), e.g. metrics-off=metrics=False site=track_acquire_site=True",
    )
    parser.add_argument(
        "--variant-base",
        default="ours",
        metavar="NAME",
        help="the variants table's reference: ours (default) or a variant's NAME, e.g. metrics-off",
    )
    parser.add_argument("--loops", help="comma-separated event loops (default asyncio,uvloop)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report path")
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window (10, quick 2)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="per-sample timeout in s (default 120; a cell that times out is not retried)",
    )
    parser.add_argument(
        "--max-background",
        type=float,
        default=0.15,
        help="rerun a sample if other processes used more than this fraction of the "
        "machine meanwhile (default 0.15)",
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="reruns of a sample on a busy machine"
    )
    parser.add_argument("--ref-python", help="use this interpreter for leasepool 0.1.3")
    parser.add_argument("--no-install", action="store_true", help="never run pip or venv")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    parser.add_argument(
        "--report", type=Path, help="only rebuild the report from a saved results .jsonl"
    )
    return parser.parse_args(argv)


def command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "benchmarks/run.py", *args])


def load_results(path: Path) -> tuple[dict[str, Any], list[Sample], float | None]:
    header: dict[str, Any] | None = None
    samples: list[Sample] = []
    total: float | None = None
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            kind = record.pop("type")
            if kind == "header":
                header = record
            elif kind == "sample":
                samples.append(Sample(**record))
            elif kind == "footer":
                total = record.get("total_s")
    if header is None:
        raise HarnessError(f"{path} has no header line")
    return header, samples, total


def report_only(results: Path, out: Path, chart_py: str | None, variant_base: str) -> int:
    header, samples, total = load_results(results)
    table = write_report(header, samples, out, chart_py, total, variant_base)
    log("\n".join(table))
    log(f"\nwrote {out}")
    return 0


def ours_variants(texts: Sequence[str], impls: Sequence[str]) -> dict[str, ManagerKwargs]:
    """--ours-variants: "ours:NAME" -> its manager arguments (needs "ours" in the run)."""
    variants: dict[str, ManagerKwargs] = {}
    for text in texts:
        try:
            variant = parse_variant(text)
        except ValueError as exc:
            raise HarnessError(f"--ours-variants {exc}") from None
        if variant.impl in variants:
            raise HarnessError(f"--ours-variants: {variant.name!r} given twice")
        variants[variant.impl] = variant.kwargs
    if variants and "ours" not in impls:
        raise HarnessError("--ours-variants compares with ours: keep ours in --impl")
    return variants


def insert_after_ours(impls: Sequence[str], extra: Sequence[str]) -> list[str]:
    out: list[str] = []
    for impl in impls:
        out.append(impl)
        if impl == "ours":
            out += extra
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    install = not args.no_install
    out: Path = args.out.resolve()

    if args.report:
        chart_py = None if args.no_chart else chart_python(install)
        return report_only(args.report, out, chart_py, args.variant_base)

    workloads = [
        WORKLOADS_BY_NAME[n] for n in select(args.only, list(WORKLOADS_BY_NAME), "workload")
    ]
    impls = select(args.impl, list(IMPLS), "implementation")
    loops = select(args.loops, list(LOOPS), "loop")
    impls = [i for i in impls if any(i in w.impls for w in workloads)]
    repeats = args.repeats or (2 if args.quick else 5)
    variants = ours_variants(args.ours_variants, impls)

    log("== environments")
    have_anyio, have_uvloop = ensure_current_deps("anyio" in impls, "uvloop" in loops, install)
    if "anyio" in impls and not have_anyio:
        impls.remove("anyio")
    if "uvloop" in loops and not have_uvloop:
        loops.remove("uvloop")
    impls = insert_after_ours(impls, list(variants))
    pythons = dict.fromkeys(impls, sys.executable)
    if "ref" in impls:
        pythons["ref"] = ensure_ref_python(args.ref_python, install)

    probes: dict[str, dict[str, Any]] = {"base": probe(sys.executable, "ours")}
    for impl in ("ours", "ref"):
        if impl in impls:
            probes[impl] = probe(pythons[impl], impl)
            info = probes[impl]
            if "leasepool_error" in info:
                raise HarnessError(f"{impl}: cannot import leasepool: {info['leasepool_error']}")
            log(
                f"  {impl:<5} leasepool {info['leasepool_version']} from {info['leasepool_file']}"
                f" (Python {info['python']})"
            )
    if probes.get("ours", {}).get("leasepool_version") == "0.1.3":
        warn('"ours" imports leasepool 0.1.3: ratios compare 0.1.3 with itself (stand-in)')
    if "ref" in probes and probes["ref"]["python"] != probes["base"]["python"]:
        warn(f"0.1.3 runs on Python {probes['ref']['python']}, ours on {probes['base']['python']}")

    header: dict[str, Any] = {
        "command": command_line(argv),
        "quick": args.quick,
        "repeats": repeats,
        "workloads": [w.name for w in workloads],
        "impls": impls,
        "loops": loops,
        "ours_variants": variants,
        "idle_seconds": args.idle_seconds,
        "max_background": args.max_background,
        "machine": machine_info(),
        "probes": probes,
    }
    jobs = plan(
        workloads,
        impls,
        loops,
        pythons,
        repeats,
        args.quick,
        args.idle_seconds,
        args.timeout,
        variants,
    )
    total_jobs = sum(len(b) for batches in jobs for b in batches)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_path = RESULTS / f"run-{stamp}{'-quick' if args.quick else ''}.jsonl"
    log(f"== {total_jobs} samples ({repeats} repeats); raw results: {results_path}")

    with results_path.open("w", encoding="utf-8") as sink:
        sink.write(json.dumps({"type": "header", **header}) + "\n")
        samples = run_jobs(jobs, sink, total_jobs, args.max_background, args.retries)
        bench_s = time.monotonic() - t_start
        sink.write(json.dumps({"type": "footer", "total_s": bench_s}) + "\n")

    log("== report")
    chart_py = None if args.no_chart else chart_python(install)
    if chart_py is None and not args.no_chart:
        warn("no matplotlib: the chart is skipped")
    table = write_report(header, samples, out, chart_py, bench_s, args.variant_base)
    log("\n".join(table))
    log(f"\nwrote {out} (run took {(time.monotonic() - t_start) / 60:.1f} min)")
    failures = sum(not s.ok for s in samples)
    if failures:
        warn(f"{failures} of {len(samples)} samples failed (see {results_path})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
