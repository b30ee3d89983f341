"""The quickstart on a Dask cluster: the same acquire() / lease.run() / WorkGrinder code,
with the calls running on the cluster's workers (needs ``pip install 'leasepool[dask]'``).

This script starts a LocalCluster of two worker processes on 127.0.0.1. Against a real
cluster, start ``dask scheduler`` on one machine and ``dask worker tcp://HOST:8786`` on
each of the others (with leasepool and your code installed), and pass
``dask_address="tcp://HOST:8786"`` instead.
"""

import asyncio
import os
import time

from distributed import LocalCluster

from leasepool import LeasedExecutorManager, WorkGrinder
from leasepool.integrations.dask import cluster_threads


def blocking_uppercase(value: str) -> str:
    time.sleep(0.2)
    return value.upper()


def square(x: int) -> int:
    return x * x


async def main(scheduler_address: str) -> None:
    manager = LeasedExecutorManager(
        backend="dask",
        dask_address=scheduler_address,
        max_pools=8,
        workers_per_pool=2,
        # One pool per two worker threads of the cluster, following it as workers
        # join and leave.
        units_per_pool=2,
        size_provider=lambda: cluster_threads(manager),
    )
    await manager.start()
    try:
        async with await manager.acquire(owner="quickstart") as lease:
            print(await lease.run(blocking_uppercase, "hello leasepool"))
            # Calls this small go to the cluster in chunks, not one task each.
            squares = await asyncio.gather(*(lease.run(square, i) for i in range(1000)))
            print("sum of squares:", sum(squares))
            worker_pids = await asyncio.gather(*(lease.run(os.getpid) for _ in range(8)))
            print("ran on", len(set(worker_pids)), "worker processes, not", os.getpid())

        grinder = WorkGrinder(executor_manager=manager, batch_size_threshold=64)
        await grinder.start()
        try:
            items = await asyncio.gather(*(grinder.submit(square, i) for i in range(500)))
            print("grinder sum:", sum(items))
        finally:
            await grinder.stop()
        print(
            f"cluster threads: {cluster_threads(manager)}, "
            f"desired pools: {manager.desired_executor_count()}"
        )
    finally:
        await manager.stop()


if __name__ == "__main__":  # worker processes import this file: start nothing there
    with LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # HTTP endpoints on a free local port
        worker_dashboard_address=None,
    ) as cluster:
        asyncio.run(main(cluster.scheduler_address))
