"""Process workers that run for months: memory recycling (``max_worker_memory``), the
crash breaker (``crash_breaker``), retries of idempotent calls, context variables copied
into workers (``context_vars``). Real worker processes, real ``os._exit``/SIGKILL; the
breaker's cool-down is driven through the engine's clock seam."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import _resilience_funcs as rf
import pytest
from _support import eventually, started_manager

from leasepool import (
    LeasedExecutorManager,
    LeaseExpiredError,
    LeaseUnavailableError,
    WorkerCrashLoopError,
)
from leasepool.offload import cpu_bound
from leasepool.resilience import CrashBreaker, idempotent, retry_budget

MiB = 1 << 20


def process_manager(**kwargs: Any) -> AbstractAsyncContextManager[LeasedExecutorManager]:
    """A started process-backend manager (one pool of one worker unless given)."""
    kwargs.setdefault("workers_per_pool", 1)
    kwargs.setdefault("backend", "process")
    return started_manager(**kwargs)


def forwarding_manager(**kwargs: Any) -> AbstractAsyncContextManager[LeasedExecutorManager]:
    """``process_manager`` with ``request_id`` copied into workers and their WARNING
    records forwarded to the ``resilience`` logger."""
    return process_manager(
        context_vars=[rf.request_id],
        forward_process_logs=True,
        process_log_level=logging.WARNING,
        process_log_target_logger=logging.getLogger("resilience"),
        **kwargs,
    )


# ------------------------------------------------------------------ memory recycling


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "all-at-once"])
def test_a_leaking_worker_is_recycled_and_no_call_is_lost(
    together: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Each call keeps 8 MiB for good. Past the limit the worker leaves after its call
    (all-at-once: in the middle of a chunk, whose unstarted calls come back) and a
    fresh one takes over: every call returns once, and no worker grows past the limit
    by more than the call that crossed it."""
    limit, leak, calls = 96 * MiB, 8, 40
    caplog.set_level(logging.INFO, logger="leasepool.manager")

    async def main() -> list[tuple[int, int, int]]:
        async with (
            process_manager(max_worker_memory="96MiB", workers_per_pool=2) as manager,
            await manager.acquire() as lease,
        ):
            if together:
                jobs = [lease.run(rf.leak, leak, i) for i in range(calls)]
                results = list(await asyncio.gather(*jobs))
            else:
                results = [await lease.run(rf.leak, leak, i) for i in range(calls)]
            metrics = manager.metrics()
        assert metrics.workers_recycled >= 2
        assert metrics.calls_finished == calls and metrics.calls_failed == 0
        return results

    results = asyncio.run(main())
    assert sorted(tag for tag, _, _ in results) == list(range(calls))
    assert len({pid for _, pid, _ in results}) >= 3
    assert max(rss for _, _, rss in results) <= limit + (leak + 2) * MiB
    recycled = [r for r in caplog.records if r.getMessage().startswith("Worker process recycled")]
    assert recycled and all(r.levelno == logging.INFO for r in recycled)


def test_a_limit_below_what_a_worker_needs_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every worker passes a 1 MiB limit at its first call: each call still returns,
    on a fresh worker each time, and one WARNING says the limit is too low."""
    caplog.set_level(logging.INFO, logger="leasepool.manager")

    async def main() -> None:
        async with (
            process_manager(max_worker_memory="1MiB") as manager,
            await manager.acquire() as lease,
        ):
            pids = [await lease.run(rf.pid) for _ in range(4)]
            assert len(set(pids)) == 4
            assert manager.metrics().workers_recycled == 4

    asyncio.run(main())
    tight = [r for r in caplog.records if "after its first call" in r.getMessage()]
    assert len(tight) == 1 and tight[0].levelno == logging.WARNING


@pytest.mark.parametrize("workers", [2, 3])
def test_every_worker_that_retires_is_replaced(workers: int) -> None:
    """Workers retire now and then amid ordinary results: the executor's own count of
    idle workers (results minus submissions) would let such exits pass without a
    replacement until no worker is left and every queued call hangs."""

    async def main() -> None:
        async with (
            process_manager(max_worker_memory="40MiB", workers_per_pool=workers) as manager,
            await manager.acquire() as lease,
        ):
            for burst in range(40):
                # A partial per call: never measured, so one call per task, and the
                # executor's count drifts by a task per call.
                calls = [
                    lease.run(functools.partial(rf.leak), 1 + i % 4, burst * 100 + i)
                    for i in range(6)
                ]
                assert len(await asyncio.gather(*calls)) == 6
            assert manager.metrics().workers_recycled >= 10

    asyncio.run(main())


def test_memory_recycling_works_with_max_tasks_per_child() -> None:
    """Both graceful exits use the stdlib's ``exit_pid`` path (CPython 3.11 can hang
    there when the executor is shut down from a callback: the manager never does)."""

    async def main() -> None:
        async with (
            process_manager(
                max_worker_memory=64 * MiB, max_tasks_per_child=3, workers_per_pool=2
            ) as manager,
            await manager.acquire() as lease,
        ):
            results = await asyncio.gather(*(lease.run(rf.leak, 6, i) for i in range(24)))
        assert sorted(tag for tag, _, _ in results) == list(range(24))
        assert len({pid for _, pid, _ in results}) >= 8  # 3 calls per worker at most

    asyncio.run(main())


def test_the_auto_backends_process_half_recycles_and_breaks_too(tmp_path: Path) -> None:
    """``backend="auto"``: a call hinted CPU-bound runs on the process half, which takes
    ``max_worker_memory`` and ``crash_breaker`` like the process backend."""
    leaky = cpu_bound(functools.partial(rf.leak))
    dying = cpu_bound(functools.partial(rf.die))
    breaker = CrashBreaker(max_crashes=1, window_seconds=60, cooldown_seconds=60)

    async def main() -> None:
        async with (
            process_manager(
                backend="auto", max_worker_memory="80MiB", crash_breaker=breaker
            ) as manager,
            await manager.acquire() as lease,
        ):
            results = [await lease.run(leaky, 8, i) for i in range(20)]
            assert len({pid for _, pid, _ in results}) >= 2
            assert manager.metrics().workers_recycled >= 1
            with pytest.raises(BrokenProcessPool):
                await lease.run(dying, str(tmp_path / "runs"), "exit")
            with pytest.raises(WorkerCrashLoopError):
                await lease.run(leaky, 1, 0)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("lots", ValueError, "cannot read 'lots' as a memory size|cannot read \"lots\""),
        ("0MiB", ValueError, "at least 1 byte"),
        (0, ValueError, "at least 1 byte"),
        (True, TypeError, "number of bytes or a size"),
        (1.5, TypeError, "number of bytes or a size"),
    ],
)
def test_max_worker_memory_is_checked_at_construction(
    value: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LeasedExecutorManager(backend="process", max_pools=1, max_worker_memory=value)


@pytest.mark.parametrize("backend", ["thread", "interpreter", "dask"])
@pytest.mark.parametrize("option", ["max_worker_memory", "crash_breaker"])
def test_worker_process_options_are_refused_by_other_backends(backend: str, option: str) -> None:
    value: Any = "64MiB" if option == "max_worker_memory" else CrashBreaker()
    options: dict[str, Any] = {option: value}
    with pytest.raises(TypeError, match=f"{option} applies to the worker processes"):
        LeasedExecutorManager(backend=backend, max_pools=1, **options)


def test_max_worker_memory_refuses_the_fork_start_method() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(
            backend="process",
            max_pools=1,
            max_worker_memory="1GiB",
            mp_context=multiprocessing.get_context("fork"),
        )
        with pytest.raises(ValueError, match="incompatible with the 'fork' start method"):
            await manager.start()
        await manager.stop()

    asyncio.run(main())


# ------------------------------------------------------------------- crash breaker


def test_a_crash_storm_opens_the_breaker_and_calls_fail_fast(
    advance_clock: Callable[[float], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CrashBreaker(max_crashes=3, window_seconds=60, cooldown_seconds=30)
    runs = tmp_path / "runs"
    caplog.set_level(logging.INFO, logger="leasepool.manager")

    async def main() -> None:
        async with (
            process_manager(crash_breaker=breaker) as manager,
            await manager.acquire() as lease,
        ):
            for _ in range(3):
                with pytest.raises(BrokenProcessPool, match="exit code 3"):
                    await lease.run(rf.die, str(runs), "exit")
            stats = manager.stats()["crash_breaker"]
            assert stats["state"] == "open" and stats["recent_crashes"] == 3
            for _ in range(5):
                with pytest.raises(WorkerCrashLoopError) as refused:
                    await lease.run(rf.die, str(runs), "exit")
                assert isinstance(refused.value, LeaseUnavailableError)
                assert refused.value.retry_after is not None
                assert 0 < refused.value.retry_after <= 30
            # Refused calls never reached a worker.
            assert runs.read_text().count("run") == 3
            metrics = manager.metrics()
            assert (metrics.crash_breaker_opens, metrics.rejected_crash_loop) == (1, 5)
            # After the cool-down: on trial; a completed call closes the breaker.
            advance_clock(31)
            assert manager.stats()["crash_breaker"]["state"] == "half_open"
            assert await lease.run(rf.pid) > 0
            assert manager.stats()["crash_breaker"]["state"] == "closed"

    asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    opened = [m for m in messages if m.startswith("Crash breaker opened crashes=3")]
    assert len(opened) == 1
    assert any(m.startswith("Crash breaker half-open") for m in messages)
    assert any(m.startswith("Crash breaker closed") for m in messages)


def test_one_crash_while_half_open_reopens_the_breaker(
    advance_clock: Callable[[float], None], tmp_path: Path
) -> None:
    breaker = CrashBreaker(max_crashes=2, window_seconds=60, cooldown_seconds=10)
    runs = str(tmp_path / "runs")

    async def main() -> None:
        async with (
            process_manager(crash_breaker=breaker) as manager,
            await manager.acquire() as lease,
        ):
            for _ in range(2):
                with pytest.raises(BrokenProcessPool):
                    await lease.run(rf.die, runs, "kill")
            advance_clock(11)
            with pytest.raises(BrokenProcessPool, match="SIGKILL"):
                await lease.run(rf.die, runs, "kill")  # the trial call dies
            stats = manager.stats()["crash_breaker"]
            assert (stats["state"], stats["opened"]) == ("open", 2)
            with pytest.raises(WorkerCrashLoopError):
                await lease.run(rf.pid)

    asyncio.run(main())


def test_crashes_spread_wider_than_the_window_never_open_it(
    advance_clock: Callable[[float], None], tmp_path: Path
) -> None:
    breaker = CrashBreaker(max_crashes=2, window_seconds=5, cooldown_seconds=10)
    runs = str(tmp_path / "runs")

    async def main() -> None:
        async with (
            process_manager(crash_breaker=breaker) as manager,
            await manager.acquire() as lease,
        ):
            for _ in range(4):
                with pytest.raises(BrokenProcessPool):
                    await lease.run(rf.die, runs, "exit")
                advance_clock(6)
            assert await lease.run(rf.pid) > 0
            assert manager.stats()["crash_breaker"]["opened"] == 0

    asyncio.run(main())


def test_revoked_leases_and_python_exceptions_are_not_crashes(
    advance_clock: Callable[[float], None], tmp_path: Path
) -> None:
    import _proc_funcs as pf

    from leasepool import LeaseExpiredError

    breaker = CrashBreaker(max_crashes=1, window_seconds=60, cooldown_seconds=10)
    runs, marker = str(tmp_path / "runs"), tmp_path / "started"

    async def main() -> None:
        async with process_manager(crash_breaker=breaker, lease_grace_seconds=1) as manager:
            async with await manager.acquire() as lease:
                for _ in range(3):
                    with pytest.raises(ValueError, match="not a death"):
                        await lease.run(rf.raise_counted, runs)
            # A lease revoked at its hard expiry: its worker is terminated, not crashed.
            overrun = manager.run(pf.mark_then_sleep, str(marker), 600.0, lease_seconds=1)
            await eventually(marker.exists, what="the call started in its worker")
            advance_clock(10)
            manager.notify_scale_changed()
            with pytest.raises(LeaseExpiredError, match="expired and was revoked"):
                await overrun
            assert await manager.run(rf.pid) > 0  # on a fresh pool, breaker closed
            stats = manager.stats()["crash_breaker"]
            assert (stats["state"], stats["recent_crashes"], stats["opened"]) == ("closed", 0, 0)

    asyncio.run(main())


def test_stats_show_the_breaker_only_when_configured_and_stop_resets_it(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with process_manager() as plain:
            assert "crash_breaker" not in plain.stats()
        manager = LeasedExecutorManager(
            backend="process", max_pools=1, workers_per_pool=1, crash_breaker=True
        )
        await manager.start()
        try:
            stats = manager.stats()["crash_breaker"]
            assert stats == {
                "state": "closed",
                "recent_crashes": 0,
                "retry_after": 0.0,
                "opened": 0,
                "refused": 0,
                "max_crashes": 5,
                "window_seconds": 60.0,
                "cooldown_seconds": 30.0,
            }
        finally:
            await manager.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_crashes": 0}, ValueError, "max_crashes must be between 1 and 4294967295"),
        ({"max_crashes": 2**32}, ValueError, "max_crashes must be between 1 and 4294967295"),
        ({"window_seconds": 1e300}, ValueError, "window_seconds must be a finite"),
        ({"cooldown_seconds": 1e20}, ValueError, "cooldown_seconds must be a finite"),
        ({"max_crashes": 2.0}, TypeError, "max_crashes must be an int"),
        ({"window_seconds": 0}, ValueError, "window_seconds must be a finite"),
        ({"cooldown_seconds": float("inf")}, ValueError, "cooldown_seconds must be a finite"),
        ({"cooldown_seconds": "5"}, TypeError, "cooldown_seconds must be a number"),
    ],
)
def test_crash_breaker_settings_are_checked(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        CrashBreaker(**kwargs)


def test_crash_breaker_must_be_a_crash_breaker() -> None:
    with pytest.raises(TypeError, match="crash_breaker must be a leasepool.resilience"):
        LeasedExecutorManager(backend="process", max_pools=1, crash_breaker={"max_crashes": 1})


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_an_idempotent_call_whose_worker_dies_runs_again(how: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")

    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            fn = idempotent(functools.partial(rf.die_first_time))
            assert await lease.run(fn, marker, how) == "second run"
            metrics = manager.metrics()
            assert (metrics.calls_retried, metrics.worker_crashes) == (1, 1)

    asyncio.run(main())


def always_dying(retries: int) -> Any:
    """``rf.die`` marked idempotent through a partial: the module function stays
    unmarked for the other tests."""
    return idempotent(functools.partial(rf.die), retries=retries)


def test_retries_end_with_the_attempt_count_in_the_error(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # A breaker (not reached here) takes over from the rule that declares a pool whose
    # workers never complete anything unusable, so every attempt is made.
    breaker = CrashBreaker(max_crashes=10)

    async def main() -> None:
        async with (
            process_manager(crash_breaker=breaker) as manager,
            await manager.acquire() as lease,
        ):
            with pytest.raises(BrokenProcessPool, match=r"\(attempt 3 of 3\)") as failed:
                await lease.run(always_dying(2), str(runs), "kill")
            assert failed.value.attempts == 3  # type: ignore[attr-defined]
            assert manager.metrics().calls_retried == 2

    asyncio.run(main())
    assert runs.read_text().split() == ["run"] * 3


def test_a_pool_found_unusable_ends_the_retries(tmp_path: Path) -> None:
    """Without a breaker, three executors in a row that die before completing anything
    make the pool unusable: the retries stop there, and the error says so."""
    runs = tmp_path / "runs"

    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            with pytest.raises(
                BrokenProcessPool, match=r"\(attempt 3 of 6; not run again"
            ) as failed:
                await lease.run(always_dying(5), str(runs), "exit")
            assert failed.value.attempts == 3  # type: ignore[attr-defined]
            assert "functools.partial(_resilience_funcs.die)" in str(failed.value)
            assert "not usable anymore" in str(failed.value)
            with pytest.raises(LeaseExpiredError):  # a broken pool's lease is retired
                await lease.run(rf.pid)
            assert manager.metrics().calls_retried == 2

    asyncio.run(main())
    assert runs.read_text().split() == ["run"] * 3


def test_calls_stay_at_most_once_by_default_and_exceptions_never_retry(tmp_path: Path) -> None:
    died, raised = tmp_path / "died", tmp_path / "raised"

    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            with pytest.raises(BrokenProcessPool) as failed:
                await lease.run(rf.die, str(died), "exit")
            assert failed.value.attempts == 1  # type: ignore[attr-defined]
            assert "attempt" not in str(failed.value)
            with pytest.raises(ValueError):
                marked = idempotent(functools.partial(rf.raise_counted), retries=5)
                await lease.run(marked, str(raised))
            assert manager.metrics().calls_retried == 0

    asyncio.run(main())
    assert died.read_text().split() == ["run"]
    assert raised.read_text().split() == ["run"]


def test_retries_go_through_every_submission_path(tmp_path: Path) -> None:
    async def main() -> None:
        async with process_manager(max_pools=2) as manager:
            fn = idempotent(functools.partial(rf.die_first_time))
            assert await manager.run(fn, str(tmp_path / "a")) == "second run"
            async with await manager.acquire() as lease:
                future = lease.executor.submit(fn, str(tmp_path / "b"))
                assert await asyncio.wrap_future(future) == "second run"
                partial = functools.partial(fn, str(tmp_path / "c"))
                assert await lease.run(partial) == "second run"
            assert manager.metrics().calls_retried == 3

    asyncio.run(main())


def test_idempotent_forms_and_checks() -> None:
    @idempotent
    def plain() -> None: ...

    @idempotent(retries=3)
    def three(x: int) -> None: ...

    assert (retry_budget(plain), retry_budget(three)) == (1, 3)
    wrapped = idempotent(len, retries=2)  # a builtin takes no attributes
    assert retry_budget(wrapped) == 2 and wrapped([1, 2]) == 2
    assert retry_budget(functools.partial(three, 1)) == 3
    # Marking a partial marks that partial, not the function it wraps.
    marked = idempotent(functools.partial(rf.pid), retries=4)
    assert (retry_budget(marked), retry_budget(rf.pid)) == (4, 0)
    assert retry_budget(print) == 0
    with pytest.raises(ValueError, match="between 0 and 100"):
        idempotent(print, retries=101)
    with pytest.raises(TypeError, match="retries must be an int"):
        idempotent(print, retries=True)
    with pytest.raises(TypeError, match="expected a callable"):
        idempotent(3)  # type: ignore[call-overload]


# ----------------------------------------------------------------- context variables


async def test_context_variables_reach_the_worker_for_each_call(loop_kind: str) -> None:
    async with (
        process_manager(context_vars=[rf.request_id, "_resilience_funcs:tenant"]) as m,
        await m.acquire() as lease,
    ):
        assert await lease.run(rf.context_values) == ("<unset>", "<unset>")
        token = rf.request_id.set("req-1")
        rf.tenant.set({"name": "acme"})
        assert await lease.run(rf.context_values) == ("req-1", {"name": "acme"})
        # A value set inside a call stays in that call.
        assert await lease.run(rf.set_and_read, "inside") == "req-1"
        rf.request_id.reset(token)
        assert await lease.run(rf.set_and_read, "again") == "<unset>"

        # Each submission carries the context it was made in.
        async def in_task(value: str) -> Any:
            rf.request_id.set(value)
            return await lease.run(rf.context_values)

        seen = await asyncio.gather(*(in_task(f"t{i}") for i in range(6)))
        assert [s[0] for s in seen] == [f"t{i}" for i in range(6)]


def test_an_unpicklable_value_is_left_out_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with (
            process_manager(context_vars=[rf.request_id, rf.tenant]) as manager,
            await manager.acquire() as lease,
        ):
            rf.request_id.set("kept")
            rf.tenant.set(lambda: None)
            for _ in range(3):
                assert await lease.run(rf.context_values) == ("kept", "<unset>")

    contextvars.copy_context().run(asyncio.run, main())
    warnings = [r for r in caplog.records if "not copied into worker processes" in r.getMessage()]
    assert len(warnings) == 1 and "_resilience_funcs:tenant" in warnings[0].getMessage()


def test_forwarded_log_records_carry_the_context_variables(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience.worker")

    async def main() -> None:
        async with (
            forwarding_manager() as manager,
            await manager.acquire() as lease,
        ):
            rf.request_id.set("req-77")
            await lease.run(rf.log_in_worker, "with context")
            rf.request_id.set("req-78")
            await lease.run(rf.log_in_worker, "next call")

    contextvars.copy_context().run(asyncio.run, main())
    records = {r.getMessage(): r for r in caplog.records if r.name == "resilience.worker"}
    assert records["with context"].request_id == "req-77"  # type: ignore[attr-defined]
    assert records["next call"].request_id == "req-78"  # type: ignore[attr-defined]


def test_thread_backend_accepts_context_vars_and_sees_the_whole_context() -> None:
    async def main() -> None:
        async with (
            process_manager(backend="thread", context_vars=[rf.request_id]) as manager,
            await manager.acquire() as lease,
        ):
            rf.request_id.set("on a thread")
            assert await lease.run(rf.context_values) == ("on a thread", "<unset>")

    contextvars.copy_context().run(asyncio.run, main())


_not_a_module_attribute: contextvars.ContextVar[int] = contextvars.ContextVar("local")


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (["nocolon"], ValueError, "must read 'module:attribute'"),
        (["_resilience_funcs:missing"], ValueError, "cannot find context variable"),
        (["_resilience_funcs:pid"], TypeError, "not a ContextVar"),
        ([contextvars.ContextVar("nowhere")], ValueError, "is not a module attribute"),
        ([3], TypeError, "must be contextvars.ContextVar objects"),
        (3, TypeError, "context_vars must be a list"),
    ],
)
def test_context_vars_are_checked_at_construction(
    value: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LeasedExecutorManager(backend="process", max_pools=1, context_vars=value)


def test_context_vars_are_refused_by_the_interpreter_backend() -> None:
    with pytest.raises(TypeError, match="not supported by backend='interpreter'"):
        LeasedExecutorManager(backend="interpreter", max_pools=1, context_vars=[rf.request_id])


# ------------------------------------------------ regressions found by the review


def test_a_call_without_context_does_not_see_what_an_earlier_call_set() -> None:
    async def main() -> None:
        async with (
            process_manager(context_vars=[rf.request_id]) as manager,
            await manager.acquire() as lease,
        ):

            async def call(i: int) -> str:
                return await lease.run(rf.set_and_read, f"leak-{i}")

            results = []
            for i in range(4):
                # A task in a fresh context per call: none has the variable set.
                results.append(await contextvars.Context().run(asyncio.ensure_future, call(i)))
            assert results == ["<unset>"] * 4

    asyncio.run(main())


def test_a_call_that_raised_is_never_run_again(tmp_path: Path) -> None:
    """Calls of one chunk that raised, then a call that kills the worker: the exceptions
    died with the worker, but they were outcomes, so no retry runs them again."""
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    raiser = idempotent(functools.partial(rf.maybe_raise), retries=2)

    async def main() -> None:
        async with process_manager() as manager, await manager.acquire() as lease:
            for _ in range(20):  # measured fast: later calls share a chunk
                await lease.run(raiser, str(runs), "warm", False)
                await lease.run(rf.maybe_die, str(runs), False)
            # Two gated calls fill the pool's chunks in flight (two per worker; a
            # submission dispatches at once), so the next four wait in its queue and
            # leave together when the gate opens: the crash catches calls that raised.
            gated = [lease.run(rf.wait_for, str(gate)) for _ in range(2)]
            calls = [lease.run(raiser, str(runs), f"r{i}", True) for i in range(3)]
            calls.append(lease.run(rf.maybe_die, str(runs), True))
            gate.touch()
            await asyncio.gather(*gated)
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            assert isinstance(outcomes[3], BrokenProcessPool)
            lost = [o for o in outcomes[:3] if isinstance(o, BrokenProcessPool)]
            assert lost, f"no raised call shared the crash's chunk: {outcomes}"
            for outcome in outcomes[:3]:
                if isinstance(outcome, BrokenProcessPool):
                    assert "not run again: it had raised an exception" in str(outcome)
                else:
                    assert isinstance(outcome, ValueError), outcome
            assert manager.metrics().calls_retried == 0

    asyncio.run(main())
    tags = runs.read_text().split()
    assert sorted(t for t in tags if t.startswith("r")) == ["r0", "r1", "r2"]


def test_a_retry_is_held_back_while_the_breaker_is_open(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    breaker = CrashBreaker(max_crashes=1, window_seconds=60, cooldown_seconds=30)

    async def main() -> None:
        async with (
            process_manager(crash_breaker=breaker) as manager,
            await manager.acquire() as lease,
        ):
            with pytest.raises(BrokenProcessPool) as failed:
                await lease.run(always_dying(2), str(runs), "exit")
            message = str(failed.value)
            assert "(attempt 1 of 3; not run again: the crash breaker is open)" in message
            assert failed.value.attempts == 1  # type: ignore[attr-defined]
            assert manager.metrics().calls_retried == 0

    asyncio.run(main())
    assert runs.read_text().split() == ["run"]


def test_a_call_admitted_before_the_crashes_does_not_close_the_breaker(
    advance_clock: Callable[[float], None], tmp_path: Path
) -> None:
    """Half-open, a call admitted before the breaker opened completes (on a healthy
    pool): that proves nothing, the breaker stays half-open; the first call admitted
    since the cool-down that completes closes it."""
    breaker = CrashBreaker(max_crashes=2, window_seconds=60, cooldown_seconds=10)
    runs = str(tmp_path / "runs")
    old_gate, trial_gate = tmp_path / "old", tmp_path / "trial"

    async def main() -> None:
        async with process_manager(max_pools=2, crash_breaker=breaker) as manager:
            healthy, crashing = await manager.acquire(), await manager.acquire()
            old = asyncio.ensure_future(healthy.run(rf.wait_for, str(old_gate)))
            for _ in range(2):
                with pytest.raises(BrokenProcessPool):
                    await crashing.run(rf.die, runs, "exit")
            assert manager.stats()["crash_breaker"]["state"] == "open"
            advance_clock(11)
            trial = asyncio.ensure_future(crashing.run(rf.wait_for, str(trial_gate)))
            old_gate.touch()
            await old
            assert manager.stats()["crash_breaker"]["state"] == "half_open"
            trial_gate.touch()
            await trial
            assert manager.stats()["crash_breaker"]["state"] == "closed"
            await healthy.release()
            await crashing.release()

    asyncio.run(main())


def test_grinder_refusals_count_every_call(tmp_path: Path) -> None:
    from leasepool import WorkGrinder

    breaker = CrashBreaker(max_crashes=1, window_seconds=60, cooldown_seconds=30)

    async def main() -> None:
        async with process_manager(crash_breaker=breaker) as manager:
            lease = await manager.acquire()
            with pytest.raises(BrokenProcessPool):
                await lease.run(rf.die, str(tmp_path / "runs"), "exit")
            await lease.release()  # the grinder leases the only pool
            grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=5)
            await grinder.start()
            try:
                outcomes = await asyncio.gather(
                    *(grinder.submit(rf.pid) for _ in range(5)), return_exceptions=True
                )
            finally:
                await grinder.stop(cancel_pending=True)
            assert all(isinstance(o, WorkerCrashLoopError) for o in outcomes), outcomes
            assert manager.metrics().rejected_crash_loop == 5

    asyncio.run(main())


def test_a_context_value_a_worker_cannot_rebuild_leaves_the_variable_unset() -> None:
    async def main() -> None:
        async with (
            process_manager(context_vars=[rf.request_id, rf.tenant]) as manager,
            await manager.acquire() as lease,
        ):
            rf.request_id.set("kept")
            rf.tenant.set(rf.Unrebuildable())
            assert await lease.run(rf.context_values) == ("kept", "<unset>")

    contextvars.copy_context().run(asyncio.run, main())


def test_a_record_labelled_with_an_unpicklable_value_is_still_forwarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience.worker")

    async def main() -> None:
        async with (
            forwarding_manager() as manager,
            await manager.acquire() as lease,
        ):
            rf.request_id.set("outer")
            await lease.run(rf.set_unpicklable_then_log, "locked")

    contextvars.copy_context().run(asyncio.run, main())
    records = [r for r in caplog.records if r.getMessage() == "locked"]
    assert len(records) == 1
    assert "lock" in records[0].request_id  # type: ignore[attr-defined]


def test_mp_context_none_means_the_default_with_max_worker_memory() -> None:
    async def main() -> None:
        async with (
            process_manager(max_worker_memory="1GiB", mp_context=None) as manager,
            await manager.acquire() as lease,
        ):
            assert await lease.run(rf.pid) > 0

    asyncio.run(main())
