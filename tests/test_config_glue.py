"""The typed Python glue the engine calls on its cold paths: `leasepool._config`
(constructor checks) and `leasepool._process_backend` (executor arguments, crash
forensics). The integration suites exercise them through the manager; these pin each
function's contract directly."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from leasepool import ExecutorBackend, ProcessLoggingConfig
from leasepool._config import process_logging_config, thread_pool_settings
from leasepool._process_backend import (
    describe_exit,
    executor_processes,
    executor_threads,
    resolve_executor_settings,
    stop_broken_processes,
    wait_for_teardown,
)
from leasepool._process_worker import initialize as worker_initialize


def test_thread_pool_settings_take_what_thread_pool_executor_takes() -> None:
    def init(x: int) -> None:
        del x

    settings = thread_pool_settings({"initializer": init, "initargs": [1], "thread_name_prefix": 7})
    assert settings == (init, (1,), "7")
    assert thread_pool_settings({}) == (None, None, None)
    with pytest.raises(TypeError) as raised:
        thread_pool_settings({"max_tasks_per_child": 3})
    # The very message ThreadPoolExecutor itself gives.
    with pytest.raises(TypeError) as stdlib:
        unknown: dict[str, Any] = {"max_tasks_per_child": 3}
        ThreadPoolExecutor(1, **unknown)
    assert str(raised.value).split("() ")[1] == str(stdlib.value).split("() ")[1]
    with pytest.raises(TypeError):
        thread_pool_settings({"initargs": 5})


def test_process_logging_from_legacy_arguments() -> None:
    target = logging.getLogger("tests.glue")
    config = process_logging_config("process", None, True, "DEBUG", target, False)
    assert config == ProcessLoggingConfig(
        enabled=True, level="DEBUG", target_logger=target, clear_child_handlers=False
    )


@pytest.mark.parametrize(
    "legacy",
    [
        {"forward_process_logs": True},
        {"process_log_level": logging.DEBUG},
        {"process_log_target_logger": logging.getLogger("x")},
        {"clear_process_log_handlers": False},
    ],
)
def test_process_logging_refuses_both_forms(legacy: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "forward_process_logs": False,
        "process_log_level": logging.INFO,
        "process_log_target_logger": None,
        "clear_process_log_handlers": True,
    }
    arguments.update(legacy)
    with pytest.raises(ValueError, match="either process_logging or"):
        process_logging_config("process", ProcessLoggingConfig(), *arguments.values())


def test_process_logging_checks_backend_and_level() -> None:
    enabled = ProcessLoggingConfig(enabled=True)
    with pytest.raises(ValueError, match="only supported for process backend"):
        process_logging_config("thread", enabled, False, logging.INFO, None, True)
    with pytest.raises(ValueError, match="Invalid logging level"):
        process_logging_config("process", None, False, "LOUD", None, True)
    given = ProcessLoggingConfig(level=logging.WARNING)
    assert process_logging_config("thread", given, False, logging.INFO, None, True) is given


def test_describe_exit() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == f"signal {int(signal.SIGKILL)} (SIGKILL)"
    assert describe_exit(-250) == "signal 250"


def test_process_settings_compose_the_worker_initializer() -> None:
    def init() -> None:
        pass

    logger = logging.getLogger("tests.glue")
    settings = resolve_executor_settings(
        "process",
        ExecutorBackend.PROCESS,
        1,
        "lp",
        {"initializer": init, "max_tasks_per_child": 2},
        ProcessLoggingConfig(enabled=True, level="WARNING"),
        logger,
    )
    assert settings.executor_cls is ProcessPoolExecutor
    assert "initializer" not in settings.kwargs
    assert settings.one_call_per_task
    # With max_tasks_per_child and no mp_context: spawn, as ProcessPoolExecutor picks.
    assert settings.kwargs["mp_context"].get_start_method() == "spawn"
    log_setup, user_initializer, user_initargs, nice, auto, memory = settings.initargs_tail
    assert (nice, auto, memory) == (0, False, None)
    assert log_setup[1:] == (logging.WARNING, True)
    assert (user_initializer, user_initargs) == (init, ())
    assert settings.log_target is logger
    settings.log_queue.close()


def test_process_settings_raise_what_the_executor_raises() -> None:
    with pytest.raises(TypeError):
        resolve_executor_settings(
            "process",
            ExecutorBackend.PROCESS,
            1,
            "lp",
            {"no_such_argument": 1},
            ProcessLoggingConfig(),
            logging.getLogger("tests.glue"),
        )
    with pytest.raises(ValueError):
        resolve_executor_settings(
            "process",
            ExecutorBackend.PROCESS,
            0,
            "lp",
            {},
            ProcessLoggingConfig(),
            logging.getLogger("tests.glue"),
        )


def test_process_settings_keep_the_worker_initializer_importable() -> None:
    settings = resolve_executor_settings(
        "process",
        ExecutorBackend.PROCESS,
        1,
        "lp",
        {},
        ProcessLoggingConfig(),
        logging.getLogger("tests.glue"),
    )
    assert settings.initargs_tail == (None, None, (), 0, False, None)
    assert worker_initialize.__module__ == "leasepool._process_worker"


def _exit_now(code: int) -> None:
    os._exit(code)


def test_crash_forensics_on_a_real_broken_executor() -> None:
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(2, mp_context=context)
    try:
        executor.submit(abs, 1).result()
        processes = executor_processes(executor)
        assert len(processes) >= 1
        assert executor_threads(executor), "the management thread"
        crashed = executor.submit(_exit_now, 7)
        with pytest.raises(Exception, match="terminated abruptly"):
            crashed.result()
        wait_for_teardown(executor, 5.0)
        dead, all_reaped = stop_broken_processes(executor, 5.0)
        assert all_reaped
        assert 7 in dict(dead).values(), dead
        assert all(process.exitcode is not None for process in processes)
    finally:
        executor.shutdown(wait=True)
