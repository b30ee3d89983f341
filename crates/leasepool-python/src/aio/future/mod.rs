//! `LeaseFuture`: the awaitable every engine operation returns.
//!
//! It speaks both asyncio protocols at once:
//!
//! * **future** — `_asyncio_future_blocking`, `get_loop`, `add_done_callback`,
//!   `result`, `cancel`, ... — so `await`, `asyncio.gather` (no Task per call),
//!   `wait_for`, `wait` and `shield` treat it as a native future;
//! * **coroutine** — `send`/`throw`/`close`, registered with
//!   `collections.abc.Coroutine` — so `asyncio.create_task`, `TaskGroup.create_task`
//!   and `asyncio.run` accept it where leasepool 0.1.1 returned a coroutine.
//!
//! # States
//!
//! The engine's [`ClaimFlag`]: `Pending → Claimed → Done`. Whoever wins the claim (a
//! worker with a result, the manager handing over a pool, `cancel()`, a timeout) is
//! the only one allowed to set the outcome. It is lock-free so the manager can claim
//! a waiter under its own lock without touching Python; the loom models check this
//! very type.
//!
//! # Hooks
//!
//! An acquire future carries a [`FutureHook`]: cancelling a queued waiter removes it
//! from the manager's queue, and a granted lease that nobody will ever see (the task
//! was cancelled after the grant, or the awaitable was dropped unawaited) is released
//! so the pool is handed on instead of leaking.
//!
//! Files: this one (state, settling, drop), `callbacks.rs` (done-callbacks),
//! `awaiting.rs` (the await protocol and `am_send`), `python.rs` (the Python methods).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use leasepool::{Claim, ClaimFlag};

use crate::aio::{Completion, LoopBridge};
use crate::py_cache::{cancelled_error, invalid_state_error};

/// Final state of a future.
pub(crate) enum Outcome {
    Value(Py<PyAny>),
    Error(PyErr),
    Cancelled(Option<Py<PyAny>>),
}

/// Reactions to lifecycle events of a future (see module docs).
pub(crate) trait FutureHook: Send + Sync {
    /// The pending future was cancelled (or timed out).
    fn on_cancel(&self, _py: Python<'_>) {}
    /// The future settled (any outcome).
    fn on_settled(&self, _py: Python<'_>) {}
    /// A value was produced that no consumer will ever receive.
    fn on_discard(&self, _py: Python<'_>, _value: &Py<PyAny>) {}
}

struct Inner {
    outcome: Option<Outcome>,
    callbacks: Vec<(Py<PyAny>, Option<Py<PyAny>>)>,
    /// `result()`/`exception()` or the await protocol handed the outcome out.
    consumed: bool,
    /// The awaiting coroutine was thrown into or closed before the value was delivered.
    abandoned: bool,
    /// An exception is stored that nobody retrieved yet: logged at drop, as asyncio's
    /// "Future exception was never retrieved" (asyncio's `_log_traceback`).
    log_exception: bool,
}

#[pyclass(name = "LeaseFuture", module = "leasepool._engine", frozen, weakref)]
pub(crate) struct PyLeaseFuture {
    /// Who may settle it (see "States").
    claim: ClaimFlag,
    blocking: AtomicBool,
    inner: Mutex<Inner>,
    bridge: Arc<LoopBridge>,
    hook: Option<Box<dyn FutureHook>>,
}

use crate::sync::lock;

mod awaiting;
mod callbacks;
mod python;

pub(crate) use awaiting::{install_am_send, make_exception};

impl PyLeaseFuture {
    fn build(
        bridge: Arc<LoopBridge>,
        hook: Option<Box<dyn FutureHook>>,
        outcome: Option<Outcome>,
    ) -> Self {
        let log_exception = matches!(outcome, Some(Outcome::Error(_)));
        Self {
            claim: if outcome.is_some() {
                ClaimFlag::done()
            } else {
                ClaimFlag::new()
            },
            blocking: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                outcome,
                callbacks: Vec::new(),
                consumed: false,
                abandoned: false,
                log_exception,
            }),
            bridge,
            hook,
        }
    }

    /// A pending future bound to `bridge`'s loop.
    pub(crate) fn pending(
        py: Python<'_>,
        bridge: Arc<LoopBridge>,
        hook: Option<Box<dyn FutureHook>>,
    ) -> PyResult<Py<Self>> {
        Py::new(py, Self::build(bridge, hook, None))
    }

    /// An already-settled future: awaiting it costs no loop round trip.
    pub(crate) fn ready(
        py: Python<'_>,
        bridge: Arc<LoopBridge>,
        outcome: Outcome,
        hook: Option<Box<dyn FutureHook>>,
    ) -> PyResult<Py<Self>> {
        Py::new(py, Self::build(bridge, hook, Some(outcome)))
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.claim.is_pending()
    }

    /// Claims the right to settle the future. Lock-free and Python-free, so the
    /// manager can call it under its own lock.
    pub(crate) fn try_claim(&self) -> bool {
        self.claim.try_claim()
    }

    /// Stores the outcome of a claimed future and marks it done; returns whether the
    /// value must be discarded because its consumer already went away.
    fn store(&self, py: Python<'_>, outcome: Outcome) -> Option<Py<PyAny>> {
        let mut inner = lock(&self.inner);
        let discard = match (&outcome, inner.abandoned) {
            (Outcome::Value(v), true) => Some(v.clone_ref(py)),
            _ => None,
        };
        inner.log_exception = matches!(outcome, Outcome::Error(_));
        inner.outcome = Some(outcome);
        self.claim.finish();
        discard
    }

    /// Stores the outcome of a claimed future and tells the hook.
    fn finish(&self, py: Python<'_>, outcome: Outcome) {
        let discard = self.store(py, outcome);
        if let Some(hook) = &self.hook {
            hook.on_settled(py);
            if let Some(value) = discard {
                hook.on_discard(py, &value);
            }
        }
    }

    /// Settles a claimed future and gets its callbacks scheduled on the loop: right
    /// away when called on the loop thread, else through the bridge's queue.
    pub(crate) fn settle_claimed(slf: &Py<Self>, py: Python<'_>, outcome: Outcome) {
        let this = slf.get();
        this.finish(py, outcome);
        if this.bridge.on_loop_thread() {
            this.schedule_callbacks(py, slf);
        } else {
            this.bridge.push(Completion::Settled(slf.clone_ref(py)));
        }
    }

    /// Like [`settle_claimed`](Self::settle_claimed) from a worker thread, leaving the
    /// doorbell to the caller: returns whether it must be rung.
    pub(crate) fn settle_claimed_deferred(
        slf: &Py<Self>,
        py: Python<'_>,
        outcome: Outcome,
    ) -> bool {
        let this = slf.get();
        this.finish(py, outcome);
        this.bridge
            .push_deferred(Completion::Settled(slf.clone_ref(py)))
    }

    /// Claims and settles; `false` if someone else settled it first.
    pub(crate) fn settle(slf: &Py<Self>, py: Python<'_>, outcome: Outcome) -> bool {
        if !slf.get().try_claim() {
            return false;
        }
        Self::settle_claimed(slf, py, outcome);
        true
    }

    pub(crate) fn done_flag(&self) -> bool {
        self.claim.is_done()
    }

    pub(crate) fn mark_blocking(&self) {
        self.blocking.store(true, Ordering::Relaxed);
    }

    pub(crate) fn bridge(&self) -> &Arc<LoopBridge> {
        &self.bridge
    }
}

impl PyLeaseFuture {
    /// asyncio's report for a future whose exception nobody retrieved, sent to the
    /// loop's exception handler (on the loop's thread when the loop still runs).
    fn report_unretrieved(&self, py: Python<'_>, err: &PyErr) {
        let reported = (|| -> PyResult<()> {
            let context = PyDict::new(py);
            context.set_item("message", "LeaseFuture exception was never retrieved")?;
            context.set_item("exception", crate::errors::exception_value(py, err))?;
            let event_loop = self.bridge.event_loop().bind(py);
            let handler = event_loop.getattr(pyo3::intern!(py, "call_exception_handler"))?;
            if !self.bridge.on_loop_thread()
                && event_loop
                    .call_method1("call_soon_threadsafe", (&handler, &context))
                    .is_ok()
            {
                return Ok(());
            }
            handler.call1((context,))?;
            Ok(())
        })();
        if let Err(failure) = reported {
            crate::errors::report_unraisable(py, failure, None);
        }
    }
}

impl Drop for PyLeaseFuture {
    fn drop(&mut self) {
        if !self.claim.is_done() {
            return;
        }
        let inner = match self.inner.get_mut() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        let unretrieved = if inner.log_exception {
            match inner.outcome.take() {
                Some(Outcome::Error(err)) => Some(err),
                other => {
                    inner.outcome = other;
                    None
                }
            }
        } else {
            None
        };
        if self.hook.is_none() && unretrieved.is_none() {
            return;
        }
        let _ = crate::attach::attach_known_thread(|py| {
            if let Some(err) = unretrieved {
                self.report_unretrieved(py, &err);
            }
            // A granted lease dropped unawaited: hand the pool on instead of leaking it.
            if self.hook.is_some() {
                Self::discard_if_undelivered(self, py, true);
            }
        });
    }
}
