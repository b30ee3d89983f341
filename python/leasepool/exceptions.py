"""Exception types raised by leasepool.

They are plain Python classes so that users can subclass and catch them exactly as
with leasepool 0.1.1; the engine raises these very classes.
"""

from __future__ import annotations

__all__ = [
    "LeaseAcquireTimeoutError",
    "LeaseExpiredError",
    "LeasePoolDrainingError",
    "LeasePoolError",
    "LeasePoolNotStartedError",
    "LeaseQueueFullError",
    "LeaseUnavailableError",
    "UnsupportedBackendError",
    "WorkerCrashLoopError",
    "WorkerLostError",
]


class LeasePoolError(Exception):
    """Base class of every error leasepool raises on purpose."""


class LeasePoolNotStartedError(LeasePoolError):
    """The manager is not started (or was stopped) when a lease was requested."""


class LeaseUnavailableError(LeasePoolError):
    """No executor could be leased without waiting (``wait=False``), or the queue is full.

    ``retry_after`` is the engine's estimate, in seconds, of when capacity is likely
    (finite, ``>= 0``; see docs/admission.md): what an HTTP service puts in its
    ``Retry-After`` header. ``None`` on an instance the engine did not raise.
    """

    retry_after: float | None = None


class LeaseQueueFullError(LeaseUnavailableError):
    """The caller would have waited, but ``max_waiters`` callers already wait (load shed)."""


class WorkerCrashLoopError(LeaseUnavailableError):
    """The manager's worker processes keep dying: its crash breaker is open
    (``crash_breaker=``), and calls fail fast instead of starting more workers.

    A :class:`LeaseUnavailableError`, so a service that answers those with 503 does so
    here too; ``retry_after`` is the time left in the breaker's cool-down (seconds).
    The call did not start.
    """


class LeaseExpiredError(LeasePoolError):
    """The lease was released, revoked, or passed its hard expiry."""


class UnsupportedBackendError(LeasePoolError):
    """The selected backend cannot run on this interpreter."""


class WorkerLostError(LeasePoolError):
    """The worker running a call died or left before the call finished (dask backend).

    The call was not run again: leasepool runs a call at most once. ``worker`` names
    the worker (its address), ``None`` on an instance the engine did not raise.
    """

    worker: str | None = None


class LeaseAcquireTimeoutError(LeasePoolError, TimeoutError):
    """``acquire(timeout=...)`` gave up waiting for an executor.

    A :class:`TimeoutError`, so ``except TimeoutError`` still catches it as in 0.1.x,
    but distinguishable from a timeout raised by the blocking call itself.
    ``retry_after`` is the engine's estimate, in seconds, of when capacity is likely.
    """

    retry_after: float | None = None


class LeasePoolDrainingError(LeasePoolNotStartedError):
    """The manager is draining (``await manager.drain(timeout)``): it grants nothing.

    Raised by ``acquire()``, ``run()`` and WorkGrinder batches that were queued when the
    drain began or that ask while it runs. A subclass of
    :class:`LeasePoolNotStartedError`, so code that handles a stopped manager handles a
    draining one the same way.
    """
