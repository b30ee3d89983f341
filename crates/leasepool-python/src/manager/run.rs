//! `manager.run(fn, *args)`: the one-call path. The call leases one worker *slot*
//! (engine `manager` docs, "Call slots"), not a whole pool, and gives it back when
//! the job is finished with. No `ExecutorLease` object exists; the returned
//! `LeaseFuture` is the call's outcome.
//!
//! A call that must wait is queued in the engine's FIFO with its job already built
//! (the caller's `contextvars` context copied at the call, as `asyncio.to_thread`
//! does); the thread that frees a slot submits it straight to the pool, so a queued
//! call costs no extra loop round trip when its turn comes.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use leasepool::waiters::Ticket;
use leasepool::LeaseKey;
use pyo3::prelude::*;

use super::{ManagerCore, Pool};
use crate::aio::{FutureHook, Outcome, PyLeaseFuture};
use crate::job::{CallCounter, Job};

/// A queued `run()`: its call, ready to submit, and the future it settles.
pub(crate) struct QueuedCall {
    pub(crate) job: Job,
    pub(crate) future: Py<PyLeaseFuture>,
}

impl QueuedCall {
    /// Whether the call still has a taker. Not a claim: the future stays cancellable
    /// until a worker starts the call (which skips it if it was cancelled meanwhile).
    pub(crate) fn is_wanted(&self) -> bool {
        self.future.get().is_pending()
    }
}

/// Ties a job to its call slot: when the job is finished with (run, failed or
/// cancelled), the slot goes back to the manager.
pub(crate) struct SlotLink {
    /// Weak: a queued job must not keep a dropped manager alive.
    pub(crate) core: Weak<ManagerCore>,
    pub(crate) key: LeaseKey,
    pub(crate) pool: Pool,
}

impl CallCounter for SlotLink {
    fn call_ended(&self, py: Python<'_>) {
        if let Some(core) = self.core.upgrade() {
            core.end_slot(py, self.key, self.pool.is_broken());
        }
    }
}

/// The part of a waiting `run()` the manager and its timer share.
pub(crate) struct WaitingCall {
    pub(crate) core: Weak<ManagerCore>,
    pub(crate) ticket: OnceLock<Ticket>,
    pub(crate) timer: Mutex<Option<Py<PyAny>>>,
}

impl WaitingCall {
    pub(crate) fn new(core: &Arc<ManagerCore>) -> Arc<Self> {
        Arc::new(Self {
            core: Arc::downgrade(core),
            ticket: OnceLock::new(),
            timer: Mutex::new(None),
        })
    }

    /// Takes the call out of the queue (`timed_out`: its `timeout` passed): `true`
    /// if it was still waiting (it never got a slot), `false` if a slot was granted
    /// (or it already left).
    fn withdraw(&self, py: Python<'_>, timed_out: bool) -> bool {
        let (Some(core), Some(ticket)) = (self.core.upgrade(), self.ticket.get()) else {
            return false;
        };
        if timed_out {
            core.time_out_waiter(py, *ticket)
        } else {
            core.withdraw_waiter(py, *ticket)
        }
    }
}

/// Keeps a waiting call's queue entry and timer consistent with its future.
pub(crate) struct WaitingCallHook(pub(crate) Arc<WaitingCall>);

impl FutureHook for WaitingCallHook {
    fn on_cancel(&self, py: Python<'_>) {
        self.0.withdraw(py, false);
    }

    fn on_settled(&self, py: Python<'_>) {
        let timer = crate::sync::lock(&self.0.timer).take();
        if let (Some(timer), Some(core)) = (timer, self.0.core.upgrade()) {
            core.cancel_timer(py, timer);
        }
    }

    fn on_discard(&self, _py: Python<'_>, _value: &Py<PyAny>) {}
}

/// `run(timeout=...)`: fails the call with `LeaseAcquireTimeoutError` if it is still
/// waiting for a slot. A call already granted one is never touched: the timeout
/// bounds the wait, not the call (`lease_seconds` bounds that).
#[pyclass(module = "leasepool._engine", frozen)]
pub(crate) struct RunTimeout {
    pub(crate) waiting: Arc<WaitingCall>,
    pub(crate) future: Py<PyLeaseFuture>,
    pub(crate) message: String,
    pub(crate) lease_seconds: f64,
}

#[pymethods]
impl RunTimeout {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool run timeout", || {
            // The estimate first: it counts this call among the callers still queued.
            let err = match self.waiting.core.upgrade() {
                Some(core) => {
                    core.timeout_error(py, self.message.clone(), true, self.lease_seconds)
                }
                None => crate::manager::acquire_timeout_error(py, self.message.clone()),
            };
            if self.waiting.withdraw(py, true) {
                PyLeaseFuture::abort(&self.future, py, Outcome::Error(err));
            }
        });
    }
}
