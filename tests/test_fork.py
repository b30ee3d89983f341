"""A forked child disowns the parent's engine threads and can start the manager again."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from leasepool import LeasedExecutorManager

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def add(a: int, b: int) -> int:
    return a + b


async def _child_round_trip(manager: LeasedExecutorManager) -> int:
    assert manager.total_count == 0, "the child must not see the parent's pools"
    await manager.start()
    lease = await manager.acquire()
    result = await lease.run(add, 2, 3)
    await manager.stop()
    return result


def test_fork_child_restarts_manager_and_parent_keeps_working() -> None:
    async def main() -> None:
        manager = LeasedExecutorManager(max_pools=1, name_prefix="forked")
        await manager.start()
        lease = await manager.acquire()
        assert await lease.run(add, 1, 2) == 3
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                loop = asyncio.new_event_loop()
                result = loop.run_until_complete(_child_round_trip(manager))
                os.write(write_fd, str(result).encode())
                code = 0
            finally:
                sys.stdout.flush()
                os._exit(code)
        os.close(write_fd)
        _, status = os.waitpid(pid, 0)  # noqa: ASYNC222 - the child is short-lived
        reported = os.read(read_fd, 16)
        os.close(read_fd)
        assert os.waitstatus_to_exitcode(status) == 0
        assert reported == b"5"
        assert await lease.run(add, 3, 4) == 7
        await lease.release()
        await manager.stop()

    with pytest.warns(DeprecationWarning) if sys.version_info >= (3, 12) else _null():
        asyncio.run(main())


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
