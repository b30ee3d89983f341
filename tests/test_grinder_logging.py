"""WorkGrinder log records: 0.1.1's logger, messages and levels (or the given logger)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from _grinder_funcs import GRINDER_LOGGER, grinder_env, unique_prefix

from leasepool import LeasedExecutorManager, LeasePoolNotStartedError, WorkGrinder


def records(caplog: pytest.LogCaptureFixture, name: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name and r.levelno == level]


def info_messages(caplog: pytest.LogCaptureFixture, name: str = GRINDER_LOGGER) -> list[str]:
    return [r.getMessage() for r in records(caplog, name, logging.INFO)]


async def test_lifecycle_and_batch_messages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=GRINDER_LOGGER)
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=2, lease_seconds=45) as (
        _,
        grinder,
    ):
        assert list(await asyncio.gather(grinder.submit(abs, -1), grinder.submit(abs, -2))) == [
            1,
            2,
        ]
        assert list(await asyncio.gather(grinder.submit(abs, -3), grinder.submit(abs, -4))) == [
            3,
            4,
        ]
        await grinder.stop()
    assert info_messages(caplog) == [
        "WorkGrinder started max_wait_seconds=30.0 batch_size_threshold=2 lease_seconds=45.0",
        "Processing batch batch_id=1 size=2 lease_seconds=45.0",
        "Finished batch batch_id=1 size=2",
        "Processing batch batch_id=2 size=2 lease_seconds=45.0",
        "Finished batch batch_id=2 size=2",
        "WorkGrinder stopped",
    ]


async def test_drained_batch_is_logged_before_stopped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=GRINDER_LOGGER)
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=10) as (_, grinder):
        futures = [await grinder.enqueue(abs, -i) for i in range(3)]
        await grinder.stop()
        assert [f.result() for f in futures] == [0, 1, 2]
    assert info_messages(caplog)[1:] == [
        "Processing batch batch_id=1 size=3 lease_seconds=60.0",
        "Finished batch batch_id=1 size=3",
        "WorkGrinder stopped",
    ]


async def test_custom_logger_receives_the_records(caplog: pytest.LogCaptureFixture) -> None:
    custom = logging.getLogger("tests.grinder.custom")
    caplog.set_level(logging.INFO)
    async with grinder_env(logger=custom, max_wait_seconds=30.0, batch_size_threshold=1) as (
        _,
        grinder,
    ):
        assert await grinder.submit(abs, -5) == 5
        await grinder.stop()
    assert info_messages(caplog, custom.name) == [
        "WorkGrinder started max_wait_seconds=30.0 batch_size_threshold=1 lease_seconds=60.0",
        "Processing batch batch_id=1 size=1 lease_seconds=60.0",
        "Finished batch batch_id=1 size=1",
        "WorkGrinder stopped",
    ]
    assert records(caplog, GRINDER_LOGGER, logging.INFO) == []


async def test_queued_work_debug_records(caplog: pytest.LogCaptureFixture) -> None:
    """One DEBUG record per item with a 32-hex work id, its owner and the pending count
    including the item just queued (so the item that fills a batch reports the
    threshold, as in 0.1.1)."""
    caplog.set_level(logging.DEBUG, logger=GRINDER_LOGGER)
    async with grinder_env(max_wait_seconds=30.0, batch_size_threshold=3) as (_, grinder):
        await asyncio.gather(
            grinder.submit(abs, 1, owner="item-1"),
            grinder.submit(abs, 2),
            grinder.submit(abs, 3, owner="item-3"),
        )
    queued = [
        r.getMessage()
        for r in records(caplog, GRINDER_LOGGER, logging.DEBUG)
        if r.getMessage().startswith("Queued work")
    ]
    pattern = re.compile(r"^Queued work work_id=([0-9a-f]{32}) owner=(\S+) pending=(\d+)$")
    matches = [pattern.match(message) for message in queued]
    assert all(matches), queued
    fields = [(m.group(2), m.group(3)) for m in matches if m]
    assert fields == [("item-1", "1"), ("None", "2"), ("item-3", "3")]
    assert len({m.group(1) for m in matches if m}) == 3


async def test_failed_batch_logs_error_with_exception(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=GRINDER_LOGGER)
    manager = LeasedExecutorManager(max_pools=1, name_prefix=unique_prefix())
    grinder = WorkGrinder(executor_manager=manager, max_wait_seconds=30.0, batch_size_threshold=2)
    await grinder.start()
    try:
        outcomes = await asyncio.gather(
            grinder.submit(abs, 1), grinder.submit(abs, 2), return_exceptions=True
        )
    finally:
        await grinder.stop()
    assert all(isinstance(o, LeasePoolNotStartedError) for o in outcomes), outcomes
    (failed,) = records(caplog, GRINDER_LOGGER, logging.ERROR)
    assert failed.getMessage() == "Batch failed batch_id=1 size=2"
    assert failed.exc_info is not None
    assert failed.exc_info[0] is LeasePoolNotStartedError
    assert "Finished batch batch_id=1 size=2" not in info_messages(caplog)


async def test_level_changed_after_construction_is_honoured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Records follow the logger's current level, not the level at construction."""
    custom = logging.getLogger("tests.grinder.level_change")
    custom.setLevel(logging.WARNING)
    try:
        async with grinder_env(logger=custom, max_wait_seconds=30.0, batch_size_threshold=1) as (
            _,
            grinder,
        ):
            assert await grinder.submit(abs, -1) == 1
            assert info_messages(caplog, custom.name) == []
            custom.setLevel(logging.DEBUG)
            assert await grinder.submit(abs, -2) == 2
            debug = [r.getMessage() for r in records(caplog, custom.name, logging.DEBUG)]
            assert len(debug) == 1
            assert debug[0].startswith("Queued work work_id=")
            assert info_messages(caplog, custom.name) == [
                "Processing batch batch_id=2 size=1 lease_seconds=60.0",
                "Finished batch batch_id=2 size=1",
            ]
            custom.setLevel(logging.WARNING)
            assert await grinder.submit(abs, -3) == 3
            assert len(info_messages(caplog, custom.name)) == 2
    finally:
        custom.setLevel(logging.NOTSET)
