//! What the manager needs from a leased executor, whatever runs the calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::bridge::LoopTask;
use crate::job::Job;

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

    /// Reaps the pool's threads or processes after a drain (stop()).
    fn join_threads(&self, py: Python<'_>);
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
