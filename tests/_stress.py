"""Reliability stress scenarios for leasepool (public API only).

``scripts/stress.sh`` runs them many rounds, repeated, each repeat in its own process
with a hard deadline; ``tests/test_stress_reliability.py`` runs each once with small
counts. By hand::

    python tests/_stress.py SCENARIO [--rounds N] [--deadline S] [--seed N]
                                     [--loop asyncio|uvloop] [--child-deadline S]

Scenarios (``--rounds`` means what the list says):

``crash``
    Crash -> recover rounds on one lease of ``backend="process", max_pools=1,
    workers_per_pool=2``. A round runs a plain call (the lease must work after the
    previous crash), then 2-8 calls that append a unique token to the round's file
    (``O_APPEND``, one line per call) with one call that kills its own worker
    (``os._exit(3)`` or ``SIGKILL``) at a random position. The crash call must fail with
    ``BrokenProcessPool``; the others must return their token or fail with
    ``BrokenProcessPool``. At most once: no token may appear twice (checked after each
    round and again for every round at the end), and every returned token appears
    exactly once. N rounds.
``resilience``
    Rounds like ``crash`` (a worker killed in a third of them) with the long-running-worker
    features on: ``max_worker_memory`` (calls keep 1-4 MiB each, so workers retire and
    are replaced mid-chunk all the time), a ``crash_breaker`` that never opens, and a
    random share of the calls marked ``idempotent(retries=2)``. A plain call runs at most
    once, an idempotent one at most three times, one that raised exactly once; a call
    that returned ran. Workers must have been recycled (20 rounds or more) and calls
    retried (200 rounds or more). N rounds.
``churn``
    ``backend="process", max_pools=3, min_pools=1, workers_per_pool=1``: each round
    acquires 1-3 leases at once, runs calls on each, releases them. Every call must
    succeed; after ``stop()`` no worker process may be left. N rounds.
``calls``
    The one-call path under random traffic, on ``backend="thread", max_pools=2,
    workers_per_pool=2``: each round starts 5-40 operations at once, mixing
    ``manager.run`` (waiting, with or without a short ``timeout``, or ``wait=False``)
    with acquire -> ``lease.run`` -> release, and cancels a random share of them at a
    random point. A call that returned ran exactly once; a call refused (unavailable,
    timed out) never ran; nothing runs twice. After each round every slot and lease is
    back (no leak) and nobody waits. Every 25 rounds the manager is stopped with calls
    in flight and started again: every call settles. N rounds.
``admission``
    the ``calls`` rounds under admission policies, a quarter of the rounds each: bounded
    waiting (``max_waiters=3``), owner limits, fair share with owner limits, and a reserved
    pool with priorities; every request names one of four owners, a random priority and
    (with a reservation) sometimes the reserved class. The same checks as ``calls``: a
    call runs at most once, runs iff it reports its result, a refused call (queue full
    too) never ran, and after each round no slot or pool is still leased.
``grinder``
    A WorkGrinder per round over the same manager, with a random threshold, age
    limit, ``max_pending`` and ``wait``: 5-40 async submitters (``submit`` and
    ``enqueue``) and 0-6 ``submit_from_thread`` calls from a thread (which may block
    for space) race random cancellations, then ``stop()`` drains or cancels. Every
    item settles; one that returned ran exactly once; one refused never ran; one
    reported cancelled was cancelled by its submitter or withdrawn by the cancelling
    ``stop()`` before it ran; every batch released its lease. N rounds.
``stop``
    One child process per backend (thread, process) and loop (asyncio, uvloop); each
    runs N cycles of: start a manager, start many calls (some running 0.3 s), ``await
    manager.stop()`` while they run. ``stop()`` must return, every call must settle
    (a started call finishes; a call reported cancelled never ran; nothing runs
    twice), and the child must exit cleanly (status 0, no process of it left).
``interrupt``
    A called function raises ``KeyboardInterrupt`` or ``SystemExit(3)``; thread and
    process backends, asyncio and uvloop, with and without ``stop()`` in a ``finally``.
    One child process per combination (16), N times: ``asyncio.run`` must raise that
    exception and the child must exit (status -SIGINT or 3) before its deadline.
``sigint``
    ``SIGINT`` while calls are running: to the child only, and (process backend) to
    its whole process group, as Ctrl-C in a terminal does; with and without
    ``stop()`` in a ``finally``. One child per combination (12), N times:
    ``asyncio.run`` must raise ``KeyboardInterrupt`` and the child must exit.

Every problem is printed on a line starting with ``FAIL:`` or ``HANG:``, the outcome on
a line starting with ``RESULT``. Exit status: 0 passed, 1 a check failed, 3 a child
process hung. If this process itself hangs, faulthandler prints every thread's stack
(``Timeout (h:mm:ss)!``) at ``--deadline`` and exits with status 1.

The functions the workers run live in ``_proc_funcs`` (picklable, importable by any
start method).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import faulthandler
import functools
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import _proc_funcs as f
import uvloop

from leasepool import ExecutorLease, LeasedExecutorManager
from leasepool.resilience import CrashBreaker, idempotent

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_HANG = 3

THIS = Path(__file__).resolve()
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
BACKENDS = ("thread", "process")
#: What faulthandler prints first when ``dump_traceback_later`` fires.
FAULTHANDLER_TIMEOUT = re.compile(r"^Timeout \(\d+:\d\d:\d\d\)!", re.MULTILINE)
#: Long enough for any lease in a stress run: expiry is not under test here.
LEASE_SECONDS = 24 * 3600.0

_T = TypeVar("_T")


@dataclass
class Options:
    rounds: int
    deadline: float
    seed: int
    loop: str
    child_deadline: float
    max_hangs: int
    workdir: Path


class Problems:
    """Counts problems by kind and prints the first ones."""

    def __init__(self, show: int = 20) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.hung = False
        self._show = show

    def add(self, kind: str, detail: str, *, hang: bool = False) -> None:
        self.counts[kind] += 1
        self.hung = self.hung or hang
        if sum(self.counts.values()) <= self._show:
            print(f"{'HANG' if hang else 'FAIL'}: {kind}: {detail}", flush=True)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        return ", ".join(f"{kind}={n}" for kind, n in sorted(self.counts.items()))


#: What the scenario is doing; the watchdog prints it before the deadline ends the run.
STATUS: dict[str, object] = {}
_loops: list[asyncio.AbstractEventLoop] = []


def run_on(loop: str, main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on the named event loop."""
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        _loops.append(runner.get_loop())
        try:
            return runner.run(main)
        finally:
            _loops.remove(runner.get_loop())


def _await_chain(coro: object) -> list[str]:
    """Where a task is suspended: every coroutine of its await chain, innermost last."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            lines.append(f"    awaiting {repr(coro)[:300]}")
            break
        code = frame.f_code
        lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


def _child_processes() -> list[str]:
    """This process's children: pid, state and kernel wait channel (a worker stuck
    right after fork shows up here, not in faulthandler's dump)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                name, rest = stat.read().rsplit(")", 1)
            fields = rest.split()
            if int(fields[1]) != os.getpid():
                continue
            with open(f"/proc/{entry}/wchan") as wchan:
                channel = wchan.read()
        except (OSError, ValueError):
            continue
        found.append(f"{entry} {name.split('(', 1)[-1]} state={fields[0]} wchan={channel}")
    return found


def arm_watchdog(deadline: float) -> None:
    """Shortly before faulthandler ends the process at ``deadline``, print ``STATUS``
    and where every asyncio task waits (faulthandler shows threads, not tasks)."""
    lead = min(5.0, deadline / 10)

    def dump_tasks(done: threading.Event) -> None:
        try:
            for task in asyncio.all_tasks():
                print(f"  task {task.get_name()}:", file=sys.stderr)
                print("\n".join(_await_chain(task.get_coro())), file=sys.stderr)
        finally:
            done.set()

    def fire() -> None:
        print(f"WATCHDOG: deadline in {lead:.1f} s; status {STATUS}", file=sys.stderr)
        for line in _child_processes():
            print(f"WATCHDOG: child process {line}", file=sys.stderr)
        for loop in list(_loops):
            done = threading.Event()
            print("WATCHDOG: asyncio tasks (if the loop still runs):", file=sys.stderr)
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(dump_tasks, done)
            done.wait(lead * 0.8)
        sys.stderr.flush()

    timer = threading.Timer(deadline - lead, fire)
    timer.daemon = True
    timer.start()


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def wait_until(predicate: Callable[[], bool], limit: float) -> bool:
    """Block until ``predicate()`` (True) or ``limit`` seconds passed (False); for
    outside observables that give no notification (the process table)."""
    end = time.monotonic() + limit
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > end:
            return False
        pause.wait(0.02)
    return True


async def wait_for_path(path: Path) -> None:
    """Until ``path`` exists (a worker creates it when a call starts). Unbounded: the
    deadline of the process turns a call that never starts into a reported hang."""
    # A file the worker creates is the one signal that crosses every backend; polling
    # it (a stat call) is cheap enough for the loop.
    while not os.path.exists(path):  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.002)


def read_counts(path: Path) -> collections.Counter[str]:
    """How many times each token was recorded in ``path``."""
    try:
        return collections.Counter(path.read_text().split())
    except FileNotFoundError:
        return collections.Counter()


# ---------------------------------------------------------------------- crash


async def _crash_round(
    lease: ExecutorLease, r: int, rng: random.Random, path: Path, problems: Problems
) -> bool:
    """One crash -> recover round; False if it found a problem (counted in ``problems``)."""
    STATUS.update(round=r, phase="plain call")
    try:
        # The lease works after the previous round's crash, and this executor has
        # completed a call (a pool whose executors die three times in a row before
        # completing anything is broken for good, by design).
        plain = await lease.run(f.add, r, 1)
    except Exception as exc:
        problems.add("lease-broken", f"round {r}: a plain call failed: {exc!r}")
        return False
    if plain != r + 1:
        problems.add("wrong-result", f"round {r}: add({r}, 1) returned {plain!r}")
        return False

    n = rng.randint(2, 8)
    crash_at = rng.randint(0, n)
    kind = rng.choice(("exit", "sigkill"))
    delay = rng.choice((0.0, 0.0, 0.0005, 0.005))
    where = f"round {r} ({kind} crash, delay {delay}, at {crash_at} of {n + 1} calls)"
    tokens = iter(f"r{r}c{i}" for i in range(n))
    calls: list[tuple[str | None, Any]] = []  # (token, future); token None: the crash
    for position in range(n + 1):
        if position == crash_at:
            if kind == "exit":
                calls.append((None, lease.run(f.crash_exit, 3, delay)))
            else:
                calls.append((None, lease.run(f.crash_sigkill, delay)))
        else:
            token = next(tokens)
            calls.append((token, lease.run(f.record_token, str(path), token)))
    STATUS.update(phase=f"gather: {where}")
    outcomes = await asyncio.gather(*(fut for _, fut in calls), return_exceptions=True)
    STATUS.update(phase="check")

    ok = True
    succeeded = []
    for (label, _), outcome in zip(calls, outcomes, strict=True):
        if label is None:
            if not isinstance(outcome, BrokenProcessPool):
                problems.add("crash-not-reported", f"{where}: the crash call gave {outcome!r}")
                ok = False
        elif outcome == label:
            succeeded.append(label)
        elif not isinstance(outcome, BrokenProcessPool):
            problems.add("unexpected-outcome", f"{where}: call {label} gave {outcome!r}")
            ok = False
    counts = read_counts(path)
    for token, times in sorted(counts.items()):
        if times > 1:
            problems.add("double-execution", f"{where}: call {token} ran {times} times")
            ok = False
    for token in succeeded:
        if counts[token] != 1:
            problems.add("success-not-recorded", f"{where}: {token} returned, ran {counts[token]}x")
            ok = False
    return ok


async def _crash(opts: Options, problems: Problems) -> None:
    rng = random.Random(opts.seed)
    STATUS.update(scenario="crash", phase="start")
    manager = LeasedExecutorManager(backend="process", max_pools=1, workers_per_pool=2)
    await manager.start()
    paths: list[Path] = []
    try:
        lease = await manager.acquire(owner="stress-crash", lease_seconds=LEASE_SECONDS)
        try:
            broken = 0  # rounds in a row whose plain call failed
            for r in range(opts.rounds):
                paths.append(opts.workdir / f"crash-{r}")
                before = problems.counts["lease-broken"]
                await _crash_round(lease, r, rng, paths[-1], problems)
                broken = broken + 1 if problems.counts["lease-broken"] > before else 0
                if broken >= 10:
                    problems.add("gave-up", f"after round {r}: the lease stays broken")
                    break
                if (r + 1) % 100 == 0:
                    print(f"crash: {r + 1} rounds", flush=True)
        finally:
            STATUS.update(phase="release")
            await lease.release()
    finally:
        STATUS.update(phase="stop()")
        await manager.stop()
        STATUS.update(phase="after stop()")
    # A call reported failed may only run later, on the replacement executor.
    for r, path in enumerate(paths):
        for token, times in read_counts(path).items():
            if times > 1:
                problems.add("double-execution", f"round {r}: {token} ran {times} times (late)")


def scenario_crash(opts: Options, problems: Problems) -> None:
    run_on(opts.loop, _crash(opts, problems))


# ----------------------------------------------------------------- resilience


async def _resilience_round(
    lease: ExecutorLease, r: int, rng: random.Random, path: Path, problems: Problems
) -> None:
    """A crash round where calls leak, some are idempotent and one raises."""
    n = rng.randint(2, 10)
    # A crash in a third of the rounds: in between, workers live long enough to grow
    # past the memory limit.
    crash_at = rng.randint(0, n) if rng.random() < 1 / 3 else -1
    raise_at = rng.randint(0, n - 1)
    kind = rng.choice(("exit", "sigkill"))
    where = f"round {r} ({kind} crash at {crash_at} of {n + 1} calls)"
    calls: list[tuple[str | None, int, Any]] = []  # (token, runs allowed, future)
    tokens = iter(range(n))
    for position in range(n + 1 if crash_at >= 0 else n):
        if position == crash_at:
            crash = f.crash_exit if kind == "exit" else f.crash_sigkill
            args: tuple[Any, ...] = (3, 0.005) if kind == "exit" else (0.005,)
            calls.append((None, 0, lease.run(crash, *args)))
            continue
        i = next(tokens)
        token = f"r{r}c{i}"
        if i == raise_at:
            raiser = idempotent(functools.partial(f.record_token_then_raise), retries=2)
            calls.append((token + "-raises", 1, lease.run(raiser, str(path), token + "-raises")))
        elif rng.random() < 0.5:
            leaker = idempotent(functools.partial(f.record_token_leaking), retries=2)
            leak = rng.randint(1, 4)
            calls.append((token, 3, lease.run(leaker, str(path), token, leak, 0.01)))
        else:
            calls.append((token, 1, lease.run(f.record_token_leaking, str(path), token, 1)))
    outcomes = await asyncio.gather(*(c for _, _, c in calls), return_exceptions=True)
    counts = read_counts(path)
    for (label, allowed, _), outcome in zip(calls, outcomes, strict=True):
        if label is None:
            if not isinstance(outcome, BrokenProcessPool):
                problems.add("crash-not-reported", f"{where}: the crash call gave {outcome!r}")
            continue
        token = label
        runs = counts[token]
        if runs > allowed:
            problems.add("too-many-runs", f"{where}: {token} ran {runs}x (allowed {allowed})")
        if token.endswith("-raises"):
            if isinstance(outcome, ValueError) and runs != 1:
                problems.add("raised-rerun", f"{where}: {token} raised, ran {runs}x")
        elif outcome == token and runs < 1:
            problems.add("success-not-recorded", f"{where}: {token} returned, never ran")
        elif outcome != token and not isinstance(outcome, BrokenProcessPool):
            problems.add("unexpected-outcome", f"{where}: {token} gave {outcome!r}")


async def _resilience(opts: Options, problems: Problems) -> None:
    rng = random.Random(opts.seed)
    STATUS.update(scenario="resilience", phase="start")
    manager = LeasedExecutorManager(
        backend="process",
        max_pools=1,
        workers_per_pool=2,
        max_worker_memory="32MiB",
        crash_breaker=CrashBreaker(max_crashes=10**6, window_seconds=60, cooldown_seconds=1),
    )
    await manager.start()
    try:
        lease = await manager.acquire(owner="stress-resilience", lease_seconds=LEASE_SECONDS)
        try:
            for r in range(opts.rounds):
                STATUS.update(round=r, phase="calls")
                await _resilience_round(lease, r, rng, opts.workdir / f"res-{r}", problems)
        finally:
            await lease.release()
        # Over enough rounds the features must have been exercised at all: workers
        # recycle every few rounds; a retry needs a crash to catch an idempotent call
        # running (about one round in ten), so it is only required of long runs.
        metrics = manager.metrics()
        recycled, retried = metrics.workers_recycled, metrics.calls_retried
        if (opts.rounds >= 20 and recycled == 0) or (opts.rounds >= 200 and retried == 0):
            problems.add("not-exercised", f"recycled {recycled}, retried {retried}")
    finally:
        STATUS.update(phase="stop()")
        await manager.stop()


def scenario_resilience(opts: Options, problems: Problems) -> None:
    run_on(opts.loop, _resilience(opts, problems))


# ---------------------------------------------------------------------- churn


async def _churn(opts: Options, problems: Problems) -> set[int]:
    rng = random.Random(opts.seed)
    STATUS.update(scenario="churn", phase="start")
    # idle_pool_seconds=0: pools above min_pools retire at release (0.1.3's sizing), so
    # every round replaces executors, which is the churn this scenario is about.
    manager = LeasedExecutorManager(
        backend="process", max_pools=3, min_pools=1, workers_per_pool=1, idle_pool_seconds=0
    )
    await manager.start()
    pids: set[int] = set()
    try:
        for r in range(opts.rounds):
            n = rng.randint(1, 3)
            STATUS.update(round=r, phase=f"acquire {n}")
            leases = await asyncio.gather(
                *(
                    manager.acquire(owner=f"churn-{r}-{i}", lease_seconds=LEASE_SECONDS)
                    for i in range(n)
                )
            )
            try:
                if manager.total_count > 3:
                    problems.add("too-many-pools", f"round {r}: {manager.total_count} pools")
                sums = [lease.run(f.add, r, i) for i, lease in enumerate(leases)]
                getpids = [lease.run(f.getpid) for lease in leases]
                STATUS.update(phase="calls")
                outcomes = await asyncio.gather(*sums, *getpids, return_exceptions=True)
                for i, outcome in enumerate(outcomes[:n]):
                    if outcome != r + i:
                        problems.add("call-failed", f"round {r}: add({r}, {i}) gave {outcome!r}")
                for outcome in outcomes[n:]:
                    if isinstance(outcome, int):
                        pids.add(outcome)
                    else:
                        problems.add("call-failed", f"round {r}: getpid() gave {outcome!r}")
            finally:
                STATUS.update(phase="release")
                await asyncio.gather(*(lease.release() for lease in leases))
            if manager.leased_count != 0:
                problems.add(
                    "lease-leak", f"round {r}: {manager.leased_count} leased after release"
                )
            if (r + 1) % 100 == 0:
                print(f"churn: {r + 1} rounds, {len(pids)} worker processes so far", flush=True)
    finally:
        STATUS.update(phase="stop()")
        await manager.stop()
        STATUS.update(phase="after stop()")
    return pids


def scenario_churn(opts: Options, problems: Problems) -> None:
    pids = run_on(opts.loop, _churn(opts, problems))
    # stop() joins every worker; the bound only covers a slow process table.
    if not wait_until(lambda: all(f.process_gone(pid) for pid in pids), 10.0):
        left = sorted(pid for pid in pids if not f.process_gone(pid))
        problems.add("worker-left-after-stop", f"{len(left)} of {len(pids)} workers: {left[:10]}")


# ---------------------------------------------------------------------- calls


class _Ledger:
    """Which call tokens ran, and how often (calls run on worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ran: collections.Counter[str] = collections.Counter()

    def call(self, token: str) -> str:
        with self._lock:
            self.ran[token] += 1
        time.sleep(random.random() * 0.002)  # hold the slot a little, at random
        return token


RequestKwargs = Callable[[random.Random], dict[str, Any]]


async def _calls_round(
    manager: LeasedExecutorManager,
    rng: random.Random,
    ledger: _Ledger,
    r: int,
    problems: Problems,
    stop_midway: bool,
    request: RequestKwargs = lambda rng: {},
) -> None:
    from leasepool import LeaseAcquireTimeoutError, LeaseExpiredError, LeasePoolNotStartedError
    from leasepool import LeaseUnavailableError as Unavailable

    refused: tuple[type[BaseException], ...] = (Unavailable, LeaseAcquireTimeoutError)
    if stop_midway:
        # stop() refuses waiters and ends leases: lease.run() on one it ended refuses.
        refused += (LeasePoolNotStartedError, LeaseExpiredError)

    async def via_lease(token: str) -> str:
        extra: dict[str, Any] = {"owner": token} | request(rng)
        lease = await manager.acquire(timeout=rng.choice([None, 0.01]), **extra)
        try:
            result: str = await lease.run(ledger.call, token)
            return result
        finally:
            await lease.release()

    ops: dict[str, asyncio.Future[Any]] = {}
    for i in range(rng.randint(5, 40)):
        token = f"{r}-{i}"
        kind = rng.random()
        if kind < 0.5:
            timeout = rng.choice([None, None, 0.0, 0.005])
            call = manager.run(ledger.call, token, timeout=timeout, **request(rng))
            ops[token] = asyncio.ensure_future(call)
        elif kind < 0.75:
            call = manager.run(ledger.call, token, wait=False, **request(rng))
            ops[token] = asyncio.ensure_future(call)
        else:
            ops[token] = asyncio.ensure_future(via_lease(token))
    doomed = [t for t in ops if rng.random() < 0.2]
    for _ in range(rng.randint(0, 3)):
        await asyncio.sleep(0)
    for token in doomed:
        ops[token].cancel()
    stopping = None
    if stop_midway:
        stopping = asyncio.ensure_future(manager.stop())
    outcomes = await asyncio.gather(*ops.values(), return_exceptions=True)
    if stopping is not None:
        await stopping
    for token, outcome in zip(ops, outcomes, strict=True):
        may_cancel = token in doomed or stop_midway
        _check_call(problems, r, token, outcome, ledger.ran[token], refused, may_cancel)
    if stop_midway:
        await manager.start()
        return
    # A cancelled call already handed to a worker gives its slot back when the worker
    # skips it: bounded wait, as for any background activity.
    if not await _eventually(lambda: manager.stats()["leases"] == [], 10.0):
        problems.add("slot-leak", f"round {r}: {manager.stats()['leases']}")
    if manager.leased_count != 0:
        problems.add("pool-leak", f"round {r}: {manager.leased_count} pools still leased")


def _check_call(
    problems: Problems,
    r: int,
    token: str,
    outcome: object,
    ran: int,
    refused: tuple[type[BaseException], ...],
    may_cancel: bool,
) -> None:
    """A call ran at most once; it returned its token iff it ran; a refused call
    never ran; it reports cancelled only where ``may_cancel`` allows."""
    if ran > 1:
        problems.add("ran-twice", f"round {r}: {token} ran {ran} times")
    if outcome == token:
        if ran != 1:
            problems.add("lost-run", f"round {r}: {token} returned but ran {ran} times")
    elif isinstance(outcome, refused):
        if ran:
            problems.add("refused-but-ran", f"round {r}: {token}: {outcome!r}")
    elif isinstance(outcome, asyncio.CancelledError):
        if not may_cancel:
            problems.add("spurious-cancel", f"round {r}: {token} (ran {ran}x)")
    else:
        problems.add("unexpected-outcome", f"round {r}: {token}: {outcome!r}")


async def _eventually(predicate: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True


async def _ledger_rounds(
    name: str,
    opts: Options,
    problems: Problems,
    play: Callable[[LeasedExecutorManager, random.Random, _Ledger, int], Awaitable[None]],
    **manager_kwargs: Any,
) -> None:
    """Rounds of ``play`` against one thread-backend manager, a ledger of the calls run."""
    rng = random.Random(opts.seed)
    random.seed(opts.seed)
    ledger = _Ledger()
    settings = {"max_pools": 2, "min_pools": 1, "workers_per_pool": 2} | manager_kwargs
    manager = LeasedExecutorManager(**settings)
    await manager.start()
    try:
        for r in range(opts.rounds):
            STATUS.update(scenario=name, round=r, phase="round")
            await play(manager, rng, ledger, r)
            if (r + 1) % 100 == 0:
                print(f"{name}: {r + 1} rounds, {sum(ledger.ran.values())} calls ran", flush=True)
    finally:
        STATUS.update(phase="stop()")
        await manager.stop()


async def _calls(opts: Options, problems: Problems) -> None:
    async def play(
        manager: LeasedExecutorManager, rng: random.Random, ledger: _Ledger, r: int
    ) -> None:
        await _calls_round(manager, rng, ledger, r, problems, stop_midway=r % 25 == 24)

    await _ledger_rounds("calls", opts, problems, play)


def scenario_calls(opts: Options, problems: Problems) -> None:
    run_on(opts.loop, _calls(opts, problems))


#: The admission scenario's policies (manager settings) and the requests it makes.
_ADMISSION_POLICIES: list[tuple[dict[str, Any], bool]] = [
    ({"max_waiters": 3}, False),
    ({"owner_limit": 1}, False),
    ({"owner_limit": 2, "fair_share": True}, False),
    ({"max_pools": 3, "reserved_pools": {"r": 1}, "fair_share": True}, True),
]


async def _admission(opts: Options, problems: Problems) -> None:
    share = max(1, opts.rounds // len(_ADMISSION_POLICIES))
    for policy, reserved in _ADMISSION_POLICIES:

        def request(rng: random.Random, reserved: bool = reserved) -> dict[str, Any]:
            kwargs: dict[str, Any] = {
                "owner": rng.choice(["a", "b", "c", "d"]),
                "priority": rng.choice([0, 0, 1, -1]),
            }
            if reserved and rng.random() < 0.3:
                kwargs["reservation"] = "r"
            return kwargs

        async def play(
            manager: LeasedExecutorManager,
            rng: random.Random,
            ledger: _Ledger,
            r: int,
            request: RequestKwargs = request,
        ) -> None:
            stop_midway = r % 25 == 24
            await _calls_round(manager, rng, ledger, r, problems, stop_midway, request)

        STATUS.update(policy=repr(policy))
        part = dataclasses.replace(opts, rounds=share)
        await _ledger_rounds("admission", part, problems, play, **policy)


def scenario_admission(opts: Options, problems: Problems) -> None:
    run_on(opts.loop, _admission(opts, problems))


# -------------------------------------------------------------------- grinder


async def _grinder_round(
    manager: LeasedExecutorManager,
    rng: random.Random,
    ledger: _Ledger,
    r: int,
    problems: Problems,
) -> None:
    """Submitters (async and from a thread) race cancellations, parking under
    ``max_pending`` and a stop() that drains or cancels: every item settles, runs at
    most once, runs iff it reports its result, and every batch gives its lease back."""
    from leasepool import LeaseUnavailableError, WorkGrinder

    grinder = WorkGrinder(
        executor_manager=manager,
        batch_size_threshold=rng.randint(1, 8),
        # Short: with max_pending below the threshold, a batch leaves on age alone.
        max_wait_seconds=rng.choice([0.001, 0.005, 0.05]),
        lease_seconds=LEASE_SECONDS,
        max_pending=rng.choice([None, 2, 5]),
        wait=rng.random() < 0.8,
    )
    await grinder.start()
    ops: dict[str, Any] = {}
    submitted: set[str] = set()  # `enqueue()` tasks that reached their submission
    for i in range(rng.randint(5, 40)):
        token = f"g{r}-{i}"
        if rng.random() < 0.7:
            ops[token] = asyncio.ensure_future(grinder.submit(ledger.call, token))
            submitted.add(token)
        else:
            ops[token] = asyncio.ensure_future(_enqueued(grinder, ledger, token, submitted))
    loop = asyncio.get_running_loop()
    threaded = [f"t{r}-{i}" for i in range(rng.randint(0, 6))]
    from_thread = loop.run_in_executor(
        None, lambda: [grinder.submit_from_thread(ledger.call, t) for t in threaded]
    )
    doomed = [t for t in ops if rng.random() < 0.2]
    for _ in range(rng.randint(0, 3)):
        await asyncio.sleep(0)
    for token in doomed:
        ops[token].cancel()
    thread_futures = await from_thread
    # A task's first step is not guaranteed to run before a later await returns (it
    # did not on CPython 3.13): every submission happens before stop(), which would
    # rightly refuse it.
    if not await _eventually(lambda: all(t in submitted or ops[t].done() for t in ops), 10.0):
        problems.add("not-submitted", f"round {r}: {sorted(set(ops) - submitted)}")
    cancel_pending = rng.random() < 0.5
    await grinder.stop(cancel_pending=cancel_pending)
    outcomes = await asyncio.gather(*ops.values(), return_exceptions=True)
    thread_outcomes = await asyncio.gather(
        *(asyncio.wrap_future(future) for future in thread_futures), return_exceptions=True
    )
    everything = [*zip(ops, outcomes, strict=True), *zip(threaded, thread_outcomes, strict=True)]
    for token, outcome in everything:
        ran = ledger.ran[token]
        # Its submitter cancelled (the call may have been running: it finishes), or
        # stop(cancel_pending=True) withdrew it before it started.
        may_cancel = token in doomed or (cancel_pending and not ran)
        _check_call(problems, r, token, outcome, ran, (LeaseUnavailableError,), may_cancel)
    # Every batch's last call released its lease before its item settled.
    if manager.leased_count != 0:
        problems.add("lease-leak", f"round {r}: {manager.stats()['leases']}")


async def _enqueued(grinder: Any, ledger: _Ledger, token: str, submitted: set[str]) -> Any:
    accepted = grinder.enqueue(ledger.call, token)
    submitted.add(token)
    result = await accepted
    return await result


async def _grinder(opts: Options, problems: Problems) -> None:
    async def play(
        manager: LeasedExecutorManager, rng: random.Random, ledger: _Ledger, r: int
    ) -> None:
        await _grinder_round(manager, rng, ledger, r, problems)

    await _ledger_rounds("grinder", opts, problems, play)


def scenario_grinder(opts: Options, problems: Problems) -> None:
    run_on(opts.loop, _grinder(opts, problems))


# ------------------------------------------------------------- child processes


@dataclass
class ChildRun:
    label: str
    returncode: int | None
    stdout: str
    stderr: str
    hung: bool
    leftover: list[int]

    def describe(self) -> str:
        return (
            f"{self.label}: exit {self.returncode}\n--- stdout:\n{self.stdout.rstrip()}\n"
            f"--- stderr:\n{self.stderr.rstrip()}\n---"
        )


def run_child(
    label: str,
    args: Sequence[str],
    deadline: float,
    *,
    interrupt: str | None = None,
    jitter: float = 0.0,
) -> ChildRun:
    """Run ``_stress.py --child ARGS`` in a new session; bounded by ``deadline``.

    The child arms faulthandler for ``deadline`` (every thread's stack, then exit);
    the parent kills the child's process group 15 s later if even that failed.
    ``interrupt`` ("pid" or "group") sends SIGINT to the child or to its process
    group once the child printed ``READY`` (after ``jitter`` seconds).
    """
    cmd = [sys.executable, "-X", "faulthandler", str(THIS), "--child", *args]
    cmd += ["--deadline", str(deadline)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []
    ready = threading.Event()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("READY"):
                ready.set()

    def read_stderr() -> None:
        assert proc.stderr is not None
        err.append(proc.stderr.read())

    readers = [
        threading.Thread(target=read_stdout, daemon=True),
        threading.Thread(target=read_stderr, daemon=True),
    ]
    for reader in readers:
        reader.start()
    end = time.monotonic() + deadline + 15.0
    hung = False
    try:
        if interrupt is not None:
            while not ready.wait(0.01):
                if proc.poll() is not None or time.monotonic() > end:
                    break
            if ready.is_set() and proc.poll() is None:
                if jitter:
                    threading.Event().wait(jitter)
                if interrupt == "group":
                    os.killpg(proc.pid, signal.SIGINT)
                else:
                    os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung = True
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Worker processes left behind (they are in the child's process group): the
    # bound only covers workers that are still noticing their parent is gone.
    leftover: list[int] = []
    if not wait_until(lambda: not group_members(proc.pid), 10.0):
        leftover = group_members(proc.pid)
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for reader in readers:
        reader.join(10.0)
    stderr = "".join(err)
    hung = hung or bool(FAULTHANDLER_TIMEOUT.search(stderr))
    return ChildRun(label, proc.returncode, "".join(out), stderr, hung, leftover)


class _Children:
    """Runs child processes one after the other within the scenario's own deadline."""

    def __init__(self, opts: Options, problems: Problems) -> None:
        self.opts = opts
        self.problems = problems
        self._end = time.monotonic() + opts.deadline
        self.ran = 0
        self.hangs = 0

    def can_run(self) -> bool:
        """Room for one more (possibly hanging) child, and not hopeless already?"""
        if self.hangs >= self.opts.max_hangs:
            return False
        return self._end - time.monotonic() > self.opts.child_deadline + 20.0

    def run(
        self, label: str, args: Sequence[str], interrupt: str | None = None, jitter: float = 0.0
    ) -> ChildRun | None:
        if not self.can_run():
            return None
        child = run_child(label, args, self.opts.child_deadline, interrupt=interrupt, jitter=jitter)
        self.ran += 1
        if child.hung:
            self.hangs += 1
            self.problems.add("hang", child.describe(), hang=True)
        elif child.leftover:
            self.problems.add("processes-left", f"{child.leftover}\n{child.describe()}")
        return child

    def finish(self, planned: int) -> None:
        print(f"ran {self.ran} of {planned} child processes", flush=True)
        if self.ran < planned and not self.problems:
            self.problems.add("out-of-time", f"only {self.ran} of {planned} children ran")


def _raised(stdout: str) -> str | None:
    match = re.search(r"^RAISED (\w+)", stdout, re.MULTILINE)
    return match.group(1) if match else None


# ----------------------------------------------------------------------- stop


async def _stop_cycle(backend: str, cycle: int, workdir: Path, problems: Problems) -> None:
    path = workdir / f"stop-{cycle}"
    STATUS.update(scenario="stop", backend=backend, cycle=cycle, phase="start")
    manager = LeasedExecutorManager(backend=backend, max_pools=2, workers_per_pool=2)
    await manager.start()
    leases = [
        await manager.acquire(owner=f"stop-{cycle}-{i}", lease_seconds=LEASE_SECONDS)
        for i in range(2)
    ]
    calls: list[tuple[str, bool, Any]] = []  # (token, long?, future)
    for i, lease in enumerate(leases):
        for j in range(3):
            token = f"long{i}.{j}"
            calls.append((token, True, lease.run(f.record_then_sleep, str(path), token, 0.3)))
        for j in range(100):
            token = f"short{i}.{j}"
            calls.append((token, False, lease.run(f.record_token, str(path), token)))
    STATUS.update(phase="waiting for a call to start")
    await wait_for_path(path)  # calls are running
    STATUS.update(phase="stop()")
    await manager.stop()
    STATUS.update(phase="after stop(): settling calls")
    # Unbounded: the process deadline reports a call that never settles as a hang.
    outcomes = await asyncio.gather(*(fut for _, _, fut in calls), return_exceptions=True)
    STATUS.update(phase="check")
    counts = read_counts(path)
    where = f"{backend} cycle {cycle}"
    kinds: collections.Counter[str] = collections.Counter()
    for (token, _, _), outcome in zip(calls, outcomes, strict=True):
        ran = counts[token]
        if ran > 1:
            problems.add("double-execution", f"{where}: {token} ran {ran} times")
        if outcome == token:
            kinds["ok"] += 1
            if ran != 1:
                problems.add("success-not-recorded", f"{where}: {token} returned, ran {ran}x")
        elif isinstance(outcome, asyncio.CancelledError):
            kinds["cancelled"] += 1
            if ran:
                problems.add("cancelled-but-ran", f"{where}: {token} reported cancelled")
        else:
            kinds[type(outcome).__name__] += 1
            problems.add("unexpected-outcome", f"{where}: {token} gave {outcome!r}")
    print(f"{where}: {dict(sorted(kinds.items()))}", flush=True)


async def _stop_child(backend: str, cycles: int, workdir: Path) -> Problems:
    problems = Problems()
    for cycle in range(cycles):
        await _stop_cycle(backend, cycle, workdir, problems)
    return problems


def scenario_stop(opts: Options, problems: Problems) -> None:
    children = _Children(opts, problems)
    combos = [(backend, loop) for backend in BACKENDS for loop in LOOPS]
    for backend, loop in combos:
        label = f"stop backend={backend} loop={loop} cycles={opts.rounds}"
        args = ["stop", "--backend", backend, "--loop", loop, "--rounds", str(opts.rounds)]
        child = children.run(label, args)
        if child is None or child.hung:
            continue
        if child.returncode != 0 or "CLEAN" not in child.stdout:
            problems.add("unclean-exit", child.describe())
    children.finish(len(combos))


# ------------------------------------------------------------------ interrupt


async def _interrupt_main(backend: str, exc: str, stop: bool) -> None:
    manager = LeasedExecutorManager(backend=backend, max_pools=1, workers_per_pool=2)
    await manager.start()
    try:
        lease = await manager.acquire(owner="interrupt", lease_seconds=LEASE_SECONDS)
        others = [lease.run(f.add, i, 1) for i in range(50)]
        assert await lease.run(f.add, 1, 1) == 2
        print("READY", flush=True)
        raiser = f.raise_keyboard_interrupt if exc == "KeyboardInterrupt" else f.raise_system_exit
        STATUS.update(phase=f"awaiting the call that raises {exc}")
        await lease.run(raiser)
        print("NOT RAISED", flush=True)
        await asyncio.gather(*others)
    finally:
        if stop:
            STATUS.update(phase="stop() in finally")
            await manager.stop()
        STATUS.update(phase="leaving main()")


def scenario_interrupt(opts: Options, problems: Problems) -> None:
    children = _Children(opts, problems)
    combos = [
        (backend, loop, exc, stop)
        for backend in BACKENDS
        for loop in LOOPS
        for exc in ("KeyboardInterrupt", "SystemExit")
        for stop in (True, False)
    ]
    for r in range(opts.rounds):
        for backend, loop, exc, stop in combos:
            label = f"interrupt round={r} backend={backend} loop={loop} raise={exc} stop={stop}"
            args = ["interrupt", "--backend", backend, "--loop", loop, "--raise", exc]
            child = children.run(label, [*args, "--stop", "yes" if stop else "no"])
            if child is None or child.hung:
                continue
            expected = (-signal.SIGINT, 128 + signal.SIGINT) if exc == "KeyboardInterrupt" else (3,)
            if _raised(child.stdout) != exc:
                problems.add("not-raised", f"expected {exc} from asyncio.run\n{child.describe()}")
            elif child.returncode not in expected:
                problems.add("exit-status", f"expected {expected}\n{child.describe()}")
    children.finish(opts.rounds * len(combos))


# --------------------------------------------------------------------- sigint


async def _sigint_main(backend: str, stop: bool, workdir: Path) -> None:
    manager = LeasedExecutorManager(backend=backend, max_pools=2, workers_per_pool=2)
    await manager.start()
    try:
        leases = [
            await manager.acquire(owner=f"sigint-{i}", lease_seconds=LEASE_SECONDS)
            for i in range(2)
        ]
        batch = 0
        while True:  # calls keep running until the signal arrives
            path = workdir / f"batch-{batch}"
            calls: list[Any] = [
                lease.run(f.record_then_sleep, str(path), f"long{i}", 0.2)
                for i, lease in enumerate(leases)
            ]
            calls += [lease.run(f.add, i, 1) for i in range(100) for lease in leases]
            STATUS.update(phase=f"calls, batch {batch}")
            if batch == 0:
                await wait_for_path(path)
                print("READY", flush=True)
            await asyncio.gather(*calls)
            batch += 1
    finally:
        if stop:
            STATUS.update(phase="stop() in finally")
            await manager.stop()
        STATUS.update(phase="leaving main()")


def scenario_sigint(opts: Options, problems: Problems) -> None:
    rng = random.Random(opts.seed)
    children = _Children(opts, problems)
    combos = [
        (backend, loop, target, stop)
        for backend in BACKENDS
        for loop in LOOPS
        for target in (("pid",) if backend == "thread" else ("pid", "group"))
        for stop in (True, False)
    ]
    for r in range(opts.rounds):
        for backend, loop, target, stop in combos:
            jitter = rng.choice((0.0, 0.001, 0.01, 0.05))
            label = (
                f"sigint round={r} backend={backend} loop={loop} to={target} stop={stop} "
                f"jitter={jitter}"
            )
            args = ["sigint", "--backend", backend, "--loop", loop]
            args += ["--stop", "yes" if stop else "no"]
            child = children.run(label, args, interrupt=target, jitter=jitter)
            if child is None or child.hung:
                continue
            if _raised(child.stdout) != "KeyboardInterrupt":
                problems.add("not-raised", f"expected KeyboardInterrupt\n{child.describe()}")
            elif child.returncode not in (-signal.SIGINT, 128 + signal.SIGINT):
                problems.add("exit-status", f"expected -SIGINT\n{child.describe()}")
    children.finish(opts.rounds * len(combos))


SCENARIOS: dict[str, Callable[[Options, Problems], None]] = {
    "crash": scenario_crash,
    "resilience": scenario_resilience,
    "churn": scenario_churn,
    "calls": scenario_calls,
    "admission": scenario_admission,
    "grinder": scenario_grinder,
    "stop": scenario_stop,
    "interrupt": scenario_interrupt,
    "sigint": scenario_sigint,
}
#: Rounds per run when --rounds is not given (scripts/stress.sh uses these too).
DEFAULT_ROUNDS = {
    "crash": 500,
    "resilience": 300,
    "churn": 300,
    "calls": 500,
    "admission": 400,
    "grinder": 300,
    "stop": 10,
    "interrupt": 2,
    "sigint": 2,
}


# ----------------------------------------------------------------------- main


def _child_main(args: argparse.Namespace, workdir: Path) -> int:
    """A child process of the stop/interrupt/sigint scenarios."""
    if args.child == "stop":
        problems = run_on(args.loop, _stop_child(args.backend, args.rounds, workdir))
        if problems:
            print(f"RESULT failed: {problems.summary()}", flush=True)
            return EXIT_FAIL
        print("CLEAN", flush=True)
        return EXIT_OK
    if args.child == "interrupt":
        main = _interrupt_main(args.backend, args.raise_, args.stop == "yes")
    else:
        # Ctrl-C raises KeyboardInterrupt, as in a terminal, whatever the disposition
        # this process inherited (a shell starting the test run with `&` hands SIGINT
        # down ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        main = _sigint_main(args.backend, args.stop == "yes", workdir)
    STATUS.update(scenario=args.child, backend=args.backend, loop=args.loop, stop=args.stop)
    try:
        run_on(args.loop, main)
    except BaseException as exc:
        print(f"RAISED {type(exc).__name__}", flush=True)
        STATUS.update(phase=f"interpreter exit after {type(exc).__name__}")
        raise  # the interpreter exits as it would for the application
    print("RETURNED", flush=True)
    return EXIT_OK


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # run_child's cleanup (kill the child's process group) runs on the way out.
    raise SystemExit(128 + signum)


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for this process")
    parser.add_argument("--child-deadline", type=float, default=30.0, help="seconds per child")
    parser.add_argument(
        "--max-hangs", type=int, default=3, help="hung children after which a scenario stops"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--loop", choices=sorted(LOOPS), default="asyncio")
    parser.add_argument("--workdir", type=Path, default=None)
    # Internal: the child processes of the stop/interrupt/sigint scenarios.
    parser.add_argument("--child", choices=("stop", "interrupt", "sigint"), help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=BACKENDS, default="process", help=argparse.SUPPRESS)
    parser.add_argument(
        "--raise", dest="raise_", default="KeyboardInterrupt", help=argparse.SUPPRESS
    )
    parser.add_argument("--stop", choices=("yes", "no"), default="yes", help=argparse.SUPPRESS)
    args = parser.parse_args(None if argv is None else list(argv))
    if args.child is None and args.scenario is None:
        parser.error("a scenario is required")
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    # A hang anywhere (also at interpreter exit) prints every thread's stack and ends
    # the process (status 1, "Timeout (h:mm:ss)!" on stderr).
    faulthandler.enable()
    faulthandler.dump_traceback_later(args.deadline, exit=True)
    arm_watchdog(args.deadline)
    with tempfile.TemporaryDirectory(prefix="leasepool-stress-") as tmp:
        workdir = args.workdir or Path(tmp)
        if args.child is not None:
            if args.rounds is None:
                args.rounds = 1
            return _child_main(args, workdir)
        signal.signal(signal.SIGTERM, _on_sigterm)
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
        rounds = args.rounds if args.rounds is not None else DEFAULT_ROUNDS[args.scenario]
        opts = Options(
            rounds, args.deadline, seed, args.loop, args.child_deadline, args.max_hangs, workdir
        )
        print(
            f"stress {args.scenario}: rounds={rounds} seed={seed} loop={args.loop} "
            f"deadline={args.deadline} python={sys.version.split()[0]}",
            flush=True,
        )
        problems = Problems()
        try:
            SCENARIOS[args.scenario](opts, problems)
        except Exception as exc:
            problems.add("error", f"the scenario raised {exc!r}")
            raise
        finally:
            if problems:
                verdict = "hung" if problems.hung else "failed"
                print(f"RESULT {args.scenario} {verdict}: {problems.summary()}", flush=True)
            else:
                print(f"RESULT {args.scenario} passed", flush=True)
    if problems.hung:
        return EXIT_HANG
    return EXIT_FAIL if problems else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
