"""Forwarding of worker-process log records into the parent's loggers."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _proc_funcs as f
import pytest

from leasepool import LeasedExecutorManager, ProcessLoggingConfig

WORKER_LOGGER = "lp.test.worker"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@contextmanager
def target_logger(
    name: str, level: int = logging.DEBUG
) -> Iterator[tuple[logging.Logger, Collect]]:
    logger = logging.getLogger(name)
    handler = Collect()
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


async def run_logging_calls(calls: list[tuple[int, str]], **kwargs: Any) -> None:
    kwargs.setdefault("max_pools", 1)
    kwargs.setdefault("workers_per_pool", 2)
    manager = LeasedExecutorManager(backend="process", **kwargs)
    await manager.start()
    try:
        async with await manager.acquire() as lease:
            await asyncio.gather(*(lease.run(f.log, WORKER_LOGGER, lvl, msg) for lvl, msg in calls))
    finally:
        # stop() joins the workers, then the listener: every record is handled by now.
        await manager.stop()


def test_records_reach_the_target_logger_with_their_origin() -> None:
    with target_logger("lp.test.target") as (logger, seen):
        asyncio.run(
            run_logging_calls(
                [(logging.INFO, f"hello {i}") for i in range(5)],
                process_logging=ProcessLoggingConfig(enabled=True, target_logger=logger),
            )
        )
    assert sorted(seen.messages()) == [f"hello {i}" for i in range(5)]
    assert {r.name for r in seen.records} == {WORKER_LOGGER}
    assert all(r.processName != "MainProcess" for r in seen.records)


def test_default_target_is_the_managers_logger_and_its_levels_apply() -> None:
    with target_logger("lp.test.manager", level=logging.WARNING) as (logger, seen):
        asyncio.run(
            run_logging_calls(
                [
                    (logging.INFO, "info is below the manager logger's level"),
                    (logging.WARNING, "warning passes"),
                ],
                logger=logger,
                forward_process_logs=True,
                process_log_level="DEBUG",
            )
        )
    assert seen.messages() == ["warning passes"]


def test_process_log_level_filters_in_the_worker() -> None:
    with target_logger("lp.test.level") as (logger, seen):
        asyncio.run(
            run_logging_calls(
                [(logging.DEBUG, "debug"), (logging.INFO, "info"), (logging.ERROR, "error")],
                forward_process_logs=True,
                process_log_level=logging.INFO,
                process_log_target_logger=logger,
            )
        )
    assert sorted(seen.messages()) == ["error", "info"]


def test_user_initializer_runs_after_forwarding_is_installed() -> None:
    with target_logger("lp.test.init") as (logger, seen):
        asyncio.run(
            run_logging_calls(
                [(logging.INFO, "call")],
                workers_per_pool=1,
                process_logging=ProcessLoggingConfig(enabled=True, target_logger=logger),
                initializer=f.log_in_initializer,
                initargs=(WORKER_LOGGER, "from initializer"),
            )
        )
    assert seen.messages() == ["from initializer", "call"]


def test_max_tasks_per_child_uses_spawn_for_queue_and_workers() -> None:
    async def main(logger: logging.Logger) -> None:
        manager = LeasedExecutorManager(
            backend="process",
            max_pools=1,
            workers_per_pool=1,
            max_tasks_per_child=2,
            forward_process_logs=True,
            process_log_target_logger=logger,
        )
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                kinds = [await lease.run(f.process_kind) for _ in range(3)]
                await lease.run(f.log, WORKER_LOGGER, logging.WARNING, "spawned")
                assert kinds == ["SpawnProcess"] * 3
        finally:
            await manager.stop()

    with target_logger("lp.test.spawn") as (logger, seen):
        asyncio.run(main(logger))
    assert seen.messages() == ["spawned"]


def test_forwarding_without_mp_context_never_forks_the_workers() -> None:
    """As leasepool 0.1.3: the listener thread already runs in the parent, so the
    workers come from forkserver (where available, else spawn), not from fork."""
    expected = (
        "ForkServerProcess"
        if "forkserver" in multiprocessing.get_all_start_methods()
        else "SpawnProcess"
    )

    async def main(logger: logging.Logger) -> None:
        manager = LeasedExecutorManager(
            backend="process",
            max_pools=1,
            workers_per_pool=1,
            forward_process_logs=True,
            process_log_target_logger=logger,
        )
        await manager.start()
        try:
            async with await manager.acquire() as lease:
                assert await lease.run(f.process_kind) == expected
                await lease.run(f.log, WORKER_LOGGER, logging.WARNING, "not forked")
        finally:
            await manager.stop()

    with target_logger("lp.test.forkserver") as (logger, seen):
        asyncio.run(main(logger))
    assert seen.messages() == ["not forked"]


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("clear", [True, False], ids=["cleared", "kept"])
def test_clear_child_handlers_prevents_printing_twice(clear: bool, tmp_path: Path) -> None:
    """A forked worker inherits the parent's root handlers; cleared, each record is
    written once (by the parent); kept, the worker writes it too."""
    out = tmp_path / "log.txt"
    root = logging.getLogger()
    file_handler = logging.FileHandler(out)
    file_handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(file_handler)
    target = logging.getLogger("lp.test.fork")
    target.setLevel(logging.INFO)
    try:
        asyncio.run(
            run_logging_calls(
                [(logging.INFO, "only once please")],
                workers_per_pool=1,
                mp_context=multiprocessing.get_context("fork"),
                process_logging=ProcessLoggingConfig(
                    enabled=True, target_logger=target, clear_child_handlers=clear
                ),
            )
        )
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
        target.setLevel(logging.NOTSET)
    lines = out.read_text().splitlines()
    assert lines.count("only once please") == (1 if clear else 2), lines


def test_restart_keeps_forwarding() -> None:
    async def main(logger: logging.Logger) -> None:
        manager = LeasedExecutorManager(
            backend="process",
            max_pools=1,
            workers_per_pool=1,
            forward_process_logs=True,
            process_log_target_logger=logger,
        )
        for round_ in range(2):
            await manager.start()
            async with await manager.acquire() as lease:
                await lease.run(f.log, WORKER_LOGGER, logging.INFO, f"round {round_}")
            await manager.stop()

    with target_logger("lp.test.restart") as (logger, seen):
        asyncio.run(main(logger))
    assert seen.messages() == ["round 0", "round 1"]


def test_forwarding_is_refused_for_other_backends() -> None:
    with pytest.raises(ValueError, match="only supported for process backend"):
        LeasedExecutorManager(backend="thread", max_pools=1, forward_process_logs=True)
    assert sys.modules["leasepool"].ProcessLoggingConfig().enabled is False


def test_forwarding_start_is_logged_as_in_0_1_3() -> None:
    """0.1.3's DEBUG record on the manager's logger when forwarding starts."""
    with (
        target_logger("lp.test.forward.manager") as (manager_logger, manager_seen),
        target_logger("lp.test.forward.target") as (target, _),
    ):
        asyncio.run(
            run_logging_calls(
                [(logging.INFO, "hello")],
                logger=manager_logger,
                forward_process_logs=True,
                process_log_level="WARNING",
                process_log_target_logger=target,
            )
        )
    assert (
        "Process log forwarding started target_logger=lp.test.forward.target level=30"
        in manager_seen.messages()
    )
