"""What the dask backend installs on the scheduler: at most one run per call.

Imported (unpickled) by the Dask scheduler, so it needs ``leasepool`` installed there;
the manager's client registers it at every connection and carries on without it
(logging a WARNING) where the scheduler cannot import it.

When a worker dies, the scheduler runs each task it was processing again elsewhere,
up to ``distributed.scheduler.allowed-failures`` times. leasepool's promise is that a
call runs at most once unless its caller asks otherwise, so for the manager's chunk
tasks the plugin starts that count at its limit: the first death ends the task as
``KilledWorker`` instead of starting it again (the manager fails its calls with
``WorkerLostError`` first). Other tasks on the cluster are untouched.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

CHUNK_PREFIX = "leasepool-chunk-"
PLUGIN_NAME = "leasepool-at-most-once"


class AtMostOncePlugin(SchedulerPlugin):
    """Marks the manager's chunk tasks as already at their allowed failures."""

    name = PLUGIN_NAME
    idempotent = True

    def update_graph(self, scheduler: Any, *, keys: Any = (), **kwargs: Any) -> None:
        limit = scheduler.allowed_failures
        tasks = scheduler.tasks
        for key in keys:
            if isinstance(key, str) and key.startswith(CHUNK_PREFIX):
                state = tasks.get(key)
                if state is not None and state.suspicious < limit:
                    state.suspicious = limit
