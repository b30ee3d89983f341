"""Sizing a ``backend="dask"`` manager by its cluster.

A dask manager's pools are shares of the cluster: ``workers_per_pool`` concurrent
tasks each. :func:`cluster_threads` is the cluster's worker threads as the manager's
own client last heard them, a plain read that never blocks the event loop, so a
``size_provider`` can follow the cluster as workers join and leave::

    manager = LeasedExecutorManager(
        backend="dask",
        dask_address="tcp://scheduler:8786",
        max_pools=64,
        workers_per_pool=4,
        units_per_pool=4,  # one pool per four worker threads
        size_provider=lambda: cluster_threads(manager),
    )

The manager re-sizes as soon as a worker joins or leaves (its client sees the
scheduler's events and wakes the manager's checker), not only every
``check_interval``. Leased pools are never revoked by a shrink: they retire when
given back. Needs nothing beyond the ``leasepool[dask]`` extra the backend needs.
"""

from __future__ import annotations

from .. import LeasedExecutorManager

__all__ = ["cluster_threads"]


def cluster_threads(manager: LeasedExecutorManager) -> int:
    """The worker threads of ``manager``'s Dask cluster, as last heard (0 before the
    manager connected, or for a manager of another backend)."""
    connection = getattr(manager, "_dask_connection", None)
    if connection is None:
        return 0
    threads: int = connection.cluster_threads
    return threads
