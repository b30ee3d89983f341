#!/usr/bin/env python3
"""Real-service benchmark: a Starlette app on uvicorn (uvloop, one worker) offloading
sqlite3 queries, loaded with wrk over 127.0.0.1, one implementation at a time,
alternating within every repeat.

    python benchmarks/service/bench.py                 # 3 repeats, 8 s per cell
    python benchmarks/service/bench.py --quick         # 1 repeat, 4 s per cell

Implementations: this leasepool (lease per request, the README's recipe sizing),
upstream leasepool 0.1.3 (same code, its own virtualenv: benchmarks/.venvs/ref),
``anyio.to_thread.run_sync`` with a ``CapacityLimiter`` of the same size, and plain
``loop.run_in_executor`` on a ``ThreadPoolExecutor`` of the same size. Writes
docs/service-benchmark.md. Needs ``wrk`` (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REF_VENV = REPO / "benchmarks" / ".venvs" / "ref"
DEFAULT_OUT = REPO / "docs" / "service-benchmark.md"
SERVER_DEPS = ["starlette", "uvicorn", "uvloop", "anyio"]
ROWS = 10_000
WRK_SCRIPT = f"""
math.randomseed(42)
request = function()
  return wrk.format(nil, wrk.path .. math.random(1, {ROWS}))
end
"""

# name -> (interpreter kind, SERVICE_IMPL)
IMPLS: dict[str, tuple[str, str]] = {
    "ours": ("ours", "leasepool"),
    "ours-run": ("ours", "leasepool_run"),
    "0.1.3": ("ref", "leasepool"),
    "anyio": ("ours", "anyio"),
    "run_in_executor": ("ours", "executor"),
}
ENDPOINTS = {
    "query": "waiting acquire (FIFO, 5 s bound)",
    "busy": "wait=False: 503 when saturated",
}


@dataclass
class Sample:
    rps: float
    ok_rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    threads_per_min: float
    rss_mb: float
    non_2xx_share: float


def log(msg: str) -> None:
    print(msg, flush=True)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_deps(python: str, extra: list[str]) -> None:
    probe = "import " + ", ".join(d.replace("-", "_") for d in SERVER_DEPS + extra)
    if subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        return
    log(f"installing {' '.join(SERVER_DEPS + extra)} into {python}")
    subprocess.run([python, "-m", "pip", "install", "-q", *SERVER_DEPS, *extra], check=True)


def ref_python() -> str:
    python = venv_python(REF_VENV)
    if not python.exists():
        log(f"creating {REF_VENV} with leasepool==0.1.3")
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "leasepool==0.1.3"], check=True)
    check = "import importlib.metadata as m; assert m.version('leasepool') == '0.1.3'"
    subprocess.run([str(python), "-c", check], check=True)
    return str(python)


def make_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    conn.executemany(
        "INSERT INTO items VALUES (?, ?)", ((i, f"item-{i:06d}" * 4) for i in range(1, ROWS + 1))
    )
    conn.commit()
    conn.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, float] = json.load(response)
        return data


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, python: str, impl: str, db: Path, concurrency: int) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            SERVICE_IMPL=impl,
            SERVICE_DB=str(db),
            SERVICE_CONCURRENCY=str(concurrency),
            PYTHONPATH=str(HERE),
        )
        self.proc = subprocess.Popen(
            [
                python,
                "-m",
                "uvicorn",
                "app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--loop",
                "uvloop",
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                get_json(self.url("/_metrics"))
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    self.stop()
                    raise RuntimeError(f"server ({impl}) did not start: {err[-2000:]}") from None
                time.sleep(0.1)  # polling a starting server's port; not a measurement

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def parse_wrk(out: str) -> tuple[float, float, float, int, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, latency("50"), latency("99"), total, int(m.group(1)) if m else 0


def measure(
    server: Server, endpoint: str, seconds: float, connections: int, script: Path
) -> Sample:
    base = server.url(f"/{endpoint}/")
    wrk = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", str(script)]
    subprocess.run([*wrk, "-d2s", base], capture_output=True, check=True)  # warm-up
    before, cpu0 = get_json(server.url("/_metrics")), cpu_seconds(server.proc.pid)
    done = subprocess.run(
        [*wrk, f"-d{seconds:g}s", base], capture_output=True, text=True, check=True
    )
    cpu1, after = cpu_seconds(server.proc.pid), get_json(server.url("/_metrics"))
    rps, p50, p99, total, non_2xx = parse_wrk(done.stdout)
    return Sample(
        rps=rps,
        ok_rps=rps * (1 - non_2xx / max(total, 1)),
        p50_ms=p50,
        p99_ms=p99,
        cpu_us_per_req=(cpu1 - cpu0) * 1e6 / max(total, 1),
        threads_per_min=(after["threads_started"] - before["threads_started"]) * 60 / seconds,
        rss_mb=after["rss"] / 2**20,
        non_2xx_share=non_2xx / max(total, 1),
    )


def fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def report(
    results: dict[tuple[str, str], list[Sample]], args: argparse.Namespace, took: float
) -> str:
    md = [
        "# Real-service benchmark",
        "",
        "_Generated by `benchmarks/service/bench.py`; do not edit by hand._",
        "",
        f"- **Command**: `python benchmarks/service/bench.py{' --quick' if args.quick else ''}`"
        f" ({args.repeats} repeat(s), {args.seconds:g} s per cell, {args.connections} connections,"
        f" run took {took / 60:.1f} min)",
        f"- **Date**: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC;"
        f" **machine**: {os.cpu_count()} cores, {platform.platform()}",
        f"- **Service**: Starlette on uvicorn (uvloop, 1 worker); each request does one indexed"
        f" sqlite3 lookup in a worker thread (one connection per thread). Capacity"
        f" {args.concurrency} threads for every implementation: leasepool"
        f" `max_pools={args.concurrency}, min_pools=4, workers_per_pool=1`, lease per"
        f" request (**ours**); leasepool `max_pools={max(1, args.concurrency // 4)},"
        f" min_pools=1, workers_per_pool=4`, `await manager.run(lookup, n)` per request"
        f" (**ours-run**, the one-call path); anyio `CapacityLimiter({args.concurrency})`;"
        f" `ThreadPoolExecutor({args.concurrency})`.",
        "- **Load**: `wrk -t1` on the same 2-core machine (it takes CPU from the server:"
        " compare ratios, not absolute numbers). Medians over repeats; implementations"
        " alternate within each repeat.",
        "",
    ]
    for endpoint, what in ENDPOINTS.items():
        md += [f"## `/{endpoint}`: {what}", ""]
        md += [
            "| impl | req/s | 2xx req/s | p50 ms | p99 ms | server CPU µs/req"
            " | threads started/min | RSS MB | 503 share |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        med: dict[str, Sample] = {}
        for impl in IMPLS:
            samples = results.get((impl, endpoint))
            if not samples:
                continue
            m = Sample(
                *(
                    statistics.median(getattr(s, f) for s in samples)
                    for f in Sample.__dataclass_fields__
                )
            )
            med[impl] = m
            md.append(
                f"| {impl} | {fmt(m.rps)} | {fmt(m.ok_rps)} | {m.p50_ms:.2f} | {m.p99_ms:.2f}"
                f" | {fmt(m.cpu_us_per_req)}"
                f" | {fmt(m.threads_per_min)} | {m.rss_mb:.0f} | {m.non_2xx_share:.1%} |"
            )
        ratios = [
            (mine, impl)
            for mine in ("ours", "ours-run")
            for impl in med
            if mine in med and not impl.startswith("ours")
        ]
        if ratios:
            md += [
                "",
                "| ratio | req/s | 2xx req/s | p99 | CPU/req |",
                "|---|---|---|---|---|",
            ]
            for mine, impl in ratios:
                o, m = med[mine], med[impl]
                md.append(
                    f"| {mine} / {impl} | {o.rps / m.rps:.2f}×"
                    f" | {o.ok_rps / max(m.ok_rps, 1e-9):.2f}×"
                    f" | {o.p99_ms / m.p99_ms:.2f}× |"
                    f" {o.cpu_us_per_req / m.cpu_us_per_req:.2f}× |"
                )
        md.append("")
    return "\n".join(md)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--impl", default=",".join(IMPLS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.seconds = args.seconds or (4.0 if args.quick else 8.0)
    if shutil.which("wrk") is None:
        log("wrk is not installed (Debian: apt-get install wrk)")
        return 2
    impls = [i for i in args.impl.split(",") if i]
    pythons = {"ours": sys.executable}
    ensure_deps(sys.executable, [])
    if "0.1.3" in impls:
        pythons["ref"] = ref_python()
        ensure_deps(pythons["ref"], [])
    started = time.monotonic()
    results: dict[tuple[str, str], list[Sample]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "service.db"
        make_db(db)
        script = Path(tmp) / "paths.lua"
        script.write_text(WRK_SCRIPT)
        for repeat in range(args.repeats):
            order = impls[repeat % len(impls) :] + impls[: repeat % len(impls)]
            for impl in order:
                kind, service_impl = IMPLS[impl]
                server = Server(pythons[kind], service_impl, db, args.concurrency)
                try:
                    for endpoint in ENDPOINTS:
                        s = measure(server, endpoint, args.seconds, args.connections, script)
                        results.setdefault((impl, endpoint), []).append(s)
                        log(
                            f"r{repeat + 1} {impl:16} /{endpoint:6} {s.rps:8.0f} req/s"
                            f" p99 {s.p99_ms:7.2f} ms cpu {s.cpu_us_per_req:6.0f} µs/req"
                            f" threads/min {s.threads_per_min:6.0f} 503 {s.non_2xx_share:.1%}"
                        )
                finally:
                    server.stop()
    args.out.write_text(report(results, args, time.monotonic() - started))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
