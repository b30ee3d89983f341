//! What the manager needs from a leased executor, whatever runs the calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leasepool::DrainReport;
use pyo3::prelude::*;

use crate::aio::LoopTask;
use crate::aio::{FutureHook, Outcome, PyLeaseFuture};
use crate::job::Job;
use crate::py_cache::background_reap;

/// One leased executor (a thread pool, a process pool, ...).
///
/// Creation must be cheap (it happens under the manager's lock); expensive resources
/// (threads, processes) start lazily on the first submission.
pub(crate) trait ExecutorPool: Send + Sync {
    /// Queues one call. Hands the job back, with the error to fail it with, if the pool
    /// no longer accepts work.
    fn submit(&self, py: Python<'_>, job: Job) -> Result<(), (Job, PyErr)>;

    /// Queues many calls at once (a WorkGrinder batch).
    fn submit_many(&self, py: Python<'_>, jobs: Vec<Job>) -> Result<(), (Vec<Job>, PyErr)>;

    /// Stops accepting work and cancels what has not started; running calls finish.
    /// `barrier` (if any) is told once nothing runs any more.
    fn shutdown(&self, py: Python<'_>, barrier: Option<Arc<DrainBarrier>>);

    /// The lease holding this pool passed its hard expiry and was revoked. A backend
    /// that can stop running calls (worker processes) does so; by default this is a
    /// plain [`shutdown`](Self::shutdown).
    fn revoke(&self, py: Python<'_>) {
        self.shutdown(py, None);
    }

    /// What this pool counted over its life for a graceful drain: calls `finished`
    /// (ran to completion, not abandoned) and calls `cancelled` after [`abort`]
    /// (dequeued just before it, refused just after). A drain reports the difference
    /// between two readings.
    ///
    /// [`abort`]: Self::abort
    fn tally(&self) -> DrainReport;

    /// A graceful drain's deadline passed: cancel the calls not started and stop the
    /// running ones: terminate (then kill) the worker processes running them, or, where
    /// a call cannot be stopped (a thread, a sub-interpreter), abandon it: it finishes
    /// in the background and a later [`shutdown`](Self::shutdown) does not wait for it.
    /// Returns the calls `cancelled` and `killed` (stopped or abandoned).
    fn abort(&self, py: Python<'_>) -> DrainReport;

    /// Whether the pool can never run a call again (an initializer failed): it is
    /// retired with its lease, never handed to another one.
    fn is_broken(&self) -> bool {
        false
    }

    /// The error a broken pool fails calls with (for the retirement's log record).
    fn broken_error(&self, py: Python<'_>) -> PyErr {
        crate::errors::lease_error(py, &leasepool::LeaseError::Inactive)
    }

    /// What a `lease.run` future of this pool does when its caller gives up, besides
    /// the default (a call not started never starts): the dask backend cancels the
    /// call's task on the cluster.
    fn cancel_hook(&self) -> Option<Box<dyn FutureHook>> {
        None
    }

    /// Hands over what must be joined once the pool drained (`stop()`).
    fn take_reapable(&self) -> Reapable;
}

/// Where a call goes that a process pool cannot ship (`backend="auto"`: its pool's
/// threads): the call, or its callable, cannot be pickled.
pub(crate) trait Reroute: Send + Sync {
    /// Runs `job` elsewhere; `err` is why it could not be pickled.
    fn reroute(&self, py: Python<'_>, job: Job, err: PyErr);
}

/// What a drained pool leaves to join: its threads, and the processes they wait for.
#[derive(Default)]
pub(crate) struct Reapable {
    pub(crate) threads: Vec<Py<PyAny>>,
    pub(crate) processes: Vec<Py<PyAny>>,
}

impl Reapable {
    pub(crate) fn extend(&mut self, other: Reapable) {
        self.threads.extend(other.threads);
        self.processes.extend(other.processes);
    }
}

/// Joins `reapable` on a `threading.Thread` (`_background.reap`), never on the event
/// loop: a worker process that was stopped (SIGSTOP) or hangs would block the loop.
/// If the threads are still alive after [`REAP_GRACE`], the processes are killed
/// (their calls already finished). `done` is settled from that thread when it is over.
pub(crate) fn reap_in_background(
    py: Python<'_>,
    reapable: Reapable,
    done: &Py<PyLeaseFuture>,
) -> PyResult<()> {
    let callback = Py::new(
        py,
        ReapDone {
            future: done.clone_ref(py),
        },
    )?;
    background_reap(py)?.call1((
        reapable.threads,
        reapable.processes,
        REAP_GRACE.as_secs_f64(),
        callback,
    ))?;
    Ok(())
}

/// How long `stop()` waits for a drained pool's threads before killing the processes
/// they wait for.
pub(crate) const REAP_GRACE: Duration = Duration::from_secs(5);

/// Settles the future `stop()` awaits once the pools were reaped.
#[pyclass(module = "leasepool._engine", frozen)]
struct ReapDone {
    future: Py<PyLeaseFuture>,
}

#[pymethods]
impl ReapDone {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool reap", || {
            PyLeaseFuture::settle(&self.future, py, Outcome::Value(py.None()));
        });
    }
}

/// Counts down pool drains; runs its action once everything has drained.
pub(crate) struct DrainBarrier {
    remaining: AtomicUsize,
    action: Mutex<Option<LoopTask>>,
}

impl DrainBarrier {
    /// A barrier that needs `parts + 1` arrivals; the extra one is the creator's,
    /// given with [`arrive`](Self::arrive) once every part is registered.
    pub(crate) fn new(parts: usize, action: LoopTask) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(parts + 1),
            action: Mutex::new(Some(action)),
        })
    }

    pub(crate) fn arrive(&self, py: Python<'_>) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let action = match self.action.lock() {
                Ok(mut g) => g.take(),
                Err(p) => p.into_inner().take(),
            };
            if let Some(action) = action {
                action(py);
            }
        }
    }
}
